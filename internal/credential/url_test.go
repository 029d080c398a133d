package credential

import (
	"strings"
	"testing"
)

func TestCheckOutboundURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://idp.example.com/oauth2/token": "",
		"HTTPS://idp.example.com:8443/t":       "",
		"http://127.0.0.1:8080/t":              "",
		"http://127.9.9.9/t":                   "",
		"http://[::1]:9/t":                     "",
		"http://localhost:9/t":                 "",
		"http://idp.example.com/t":             "plain http is allowed only to a loopback host",
		"http://169.254.169.254/latest":        "link-local, unspecified or multicast address",
		"https://169.254.169.254/latest":       "link-local, unspecified or multicast address",
		"https://[fe80::1%25eth0]/t":           "link-local, unspecified or multicast address",
		"https://[::ffff:169.254.169.254]/t":   "link-local, unspecified or multicast address",
		"https://0.0.0.0/t":                    "link-local, unspecified or multicast address",
		"https://[::]:8443/t":                  "link-local, unspecified or multicast address",
		"https://224.0.0.1/t":                  "link-local, unspecified or multicast address",
		"https://[ff02::1]/t":                  "link-local, unspecified or multicast address",
		"https://10.0.0.1/t":                   "",
		"https://169.254.example.com/t":        "",
		"http://10.0.0.1/t":                    "plain http is allowed only to a loopback host",
		"https://id:secret@idp.example.com/t":  "must not carry user info",
		"https://id@idp.example.com/t":         "must not carry user info",
		"https://idp.example.com/t?x=secret":   "must not carry a query",
		"https://idp.example.com/t?":           "must not carry a query",
		"https://idp.example.com/t#frag":       "must not carry a fragment",
		"ftp://idp.example.com/t":              "must be an absolute https URL",
		"/relative":                            "must be an absolute https URL",
		"https:opaque":                         "must be an absolute https URL",
		"":                                     "must be an absolute https URL",
	} {
		err := CheckOutboundURL("token_url", raw)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", raw, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want %q", raw, err, want)
		case err != nil && (strings.Contains(err.Error(), "secret") || !strings.HasPrefix(err.Error(), "token_url ")):
			t.Errorf("%q: the error %q echoes the URL or does not name the field", raw, err)
		}
	}
}

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "/", "/a/b/../c": "/a/c", "/a/./b": "/a/b", "/a/b/..": "/a/", "/a/.": "/a/",
		"/../a": "/a", "/a/%2e%2E/b": "/b", "/%7Euser": "/~user", "/%2f": "/%2F", "/a%20b": "/a%20b",
		"/a//b": "/a//b", "/%41%42": "/AB", "/x/%zz": "/x/%zz",
	} {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}
