package main

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestCredentialsFromForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		form url.Values
		want map[string]any
		err  string
	}{
		{"password", url.Values{"kind": {"password"}, "username": {"ann"}, "password": {"pw"}},
			map[string]any{"type": "password", "username": "ann", "password": "pw"}, ""},
		{"token with an expiry", url.Values{"kind": {"token"}, "token": {"tk"}, "expires_at": {"2030-01-02T03:04:05+01:00"}},
			map[string]any{"type": "token", "token": "tk", "expires_at": "2030-01-02T02:04:05Z"}, ""},
		{"grant", url.Values{"kind": {"oauth2_user"}, "client": {"engine"}, "access_token": {"at"}, "refresh_token": {"rt"}, "expires_in": {"3600"}},
			map[string]any{"type": "oauth2_user", "client": "engine", "access_token": "at", "refresh_token": "rt", "expires_in": 3600}, ""},
		{"unknown kind", url.Values{"kind": {"certificate"}}, nil, "password, token or oauth2_user"},
		{"no password", url.Values{"kind": {"password"}, "username": {"ann"}}, nil, "the password is required"},
		{"a field twice", url.Values{"kind": {"password"}, "username": {"ann"}, "password": {"a", "b"}}, nil, "more than once"},
		{"a line break", url.Values{"kind": {"token"}, "token": {"a\nb"}}, nil, "holds characters"},
		{"a bad expiry", url.Values{"kind": {"token"}, "token": {"t"}, "expires_at": {"tomorrow"}}, nil, "2030-01-02T15:04:05Z"},
		{"a client with a path", url.Values{"kind": {"oauth2_user"}, "client": {"../x"}, "access_token": {"a"}, "expires_in": {"1"}}, nil, "technical credential"},
		{"a lifetime not a number", url.Values{"kind": {"oauth2_user"}, "client": {"e"}, "access_token": {"a"}, "expires_in": {"-5"}}, nil, "number of seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{PostForm: tc.form}
			got, err := credentialsFrom(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%v %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestAboutInPlainWords(t *testing.T) {
	for reason, want := range map[string]string{
		"auth_failed": `The service "crm" refused the credentials your process "p" uses`,
		"expiring":    `The credentials you gave your process "p" expire soon`,
		"lost":        `The credentials your process "p" kept for you are gone`,
		"teapot":      `Your process "p" needs new credentials for the service "crm" (teapot).`,
	} {
		if got := about(reason, "crm", "p"); !strings.Contains(got, want) {
			t.Errorf("%s: %q", reason, got)
		}
	}
}
