package resolve

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// The fuzz targets: scripts/test.sh runs each for a bounded time. They check that decoding never
// panics, that what is accepted is consistent, and that no error carries a secret field's value.

func FuzzMatchURL(f *testing.F) {
	f.Add("https://crm.example.com/api", "", "https://crm.example.com/api/x", "")
	f.Add("https://h:8443/a/b", "EU", "https://H:8443/a/b/c?x#y", "EU")
	f.Add("http://[::1]/x", "", "http://[::1]:80/x", "")
	f.Add("postgres://db/orders", "", "postgres://db:5432/orders/t", "R")
	f.Add("https://h/public", "", "https://h/public/..%2Fadmin", "")
	f.Add("https://h/public", "", "https://h/public/%2e%2E%2fadmin", "")
	f.Add("https://h/public", "", "https://h/public/%252E%252E/admin", "")
	f.Add("https://h/public", "", "https://h/public/..%5cadmin", "")
	f.Fuzz(func(t *testing.T, serviceURL, serviceRealm, requestURL, realm string) {
		services := EffectiveServices([]Layer{{Source: "definition:d", Services: []credential.Service{
			{Name: "s", URL: serviceURL, Realm: serviceRealm, Credentials: []credential.Credential{{Type: "current"}}},
		}}})
		s, _, _, err := MatchURL(services, requestURL, realm)
		if err != nil {
			return
		}
		if realm != "" && serviceRealm != "" && serviceRealm != realm {
			t.Fatalf("a service of realm %q matched a request of realm %q", serviceRealm, realm)
		}
		// Nothing a server may decode into a separator or a dot segment is ever matched.
		if u, err := url.Parse(requestURL); err == nil {
			p := strings.ToUpper(u.EscapedPath())
			for _, bad := range []string{`\`, "%5C", "%2F", "%252E", "%252F", "%255C"} {
				if strings.Contains(p, bad) {
					t.Fatalf("%q matched although its path holds %s", requestURL, bad)
				}
			}
		}
		req, _ := ParseEndpoint(requestURL)
		svc, _ := ParseEndpoint(s.URL)
		// Normalized paths hold no dot segment, and normalizing again changes nothing.
		for _, seg := range strings.Split(req.path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q normalized to %q, which keeps a dot segment", requestURL, req.path)
			}
		}
		if again := credential.NormalizePath(req.path); again != req.path && again != req.path+"/" {
			t.Fatalf("normalizing %q again gives %q", req.path, again)
		}
		if req.host != svc.host || req.port != svc.port || req.scheme != svc.scheme || !pathCovers(svc.path, req.path) {
			t.Fatalf("%q matched %q", requestURL, s.URL)
		}
	})
}
