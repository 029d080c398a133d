package oauth

import (
	"context"
	"crypto/elliptic"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// TestRefreshRotates: a refresh authenticates its client by each auth_method, answers the
// rotated refresh token, and the endpoint (which detects reuse) never sees one sent twice.
func TestRefreshRotates(t *testing.T) {
	ts, err := tokenserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ecKey, _, err := testcert.ECKey(elliptic.P256(), false)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetClient("basic", "s1")
	ts.RequireMethod("basic", tokenserver.MethodBasic)
	ts.SetClient("post", "s2")
	ts.RequireMethod("post", tokenserver.MethodPost)
	ts.SetClientKey("jwt", ecKey.Public())
	ts.SetLifetime(time.Minute)
	now := time.Now
	for _, c := range []Config{
		{ClientID: "basic", ClientSecret: "s1"},
		{ClientID: "post", ClientSecret: "s2", AuthMethod: AuthClientSecretPost},
		{ClientID: "jwt", SigningKey: ecKey, AuthMethod: AuthPrivateKeyJWT},
	} {
		c.TokenURL, c.Scopes, c.Audience = ts.TokenURL(), []string{"not-sent"}, "not-sent"
		_, rt := ts.IssueGrant(c.ClientID)
		sent := map[string]bool{}
		for i := range 3 {
			sent[rt] = true
			got, err := Refresh(context.Background(), http.DefaultClient, plainWording, c, rt, now)
			if err != nil {
				t.Fatalf("%s refresh %d: %v", c.ClientID, i, err)
			}
			if !got.Rotated || sent[got.RefreshToken] || got.AccessToken == "" || got.TokenType != "Bearer" ||
				got.ExpiresAt.Before(got.IssuedAt.Add(59*time.Second)) {
				t.Fatalf("%s refresh %d: %+v", c.ClientID, i, got)
			}
			rt = got.RefreshToken
		}
		for _, is := range ts.Issues(c.ClientID) {
			if is.GrantType != "refresh_token" || is.Method != map[string]string{"": tokenserver.MethodBasic, AuthClientSecretPost: tokenserver.MethodPost,
				AuthPrivateKeyJWT: tokenserver.MethodPrivateKeyJWT}[c.AuthMethod] || is.Scopes != "" || is.Refused != "" {
				t.Errorf("%s: %+v", c.ClientID, is)
			}
		}
	}
	if ts.Reused() != 0 {
		t.Errorf("%d refresh tokens were sent twice", ts.Reused())
	}

	// Without rotation the refresh token sent is the one to keep.
	ts.SetRotation(false)
	c := Config{TokenURL: ts.TokenURL(), ClientID: "basic", ClientSecret: "s1"}
	_, rt := ts.IssueGrant("basic")
	got, err := Refresh(context.Background(), http.DefaultClient, plainWording, c, rt, now)
	if err != nil || got.Rotated || got.RefreshToken != rt {
		t.Fatalf("no rotation: %+v %v", got, err)
	}
}

// TestRefreshGrantEnded: a reused or revoked refresh token is ErrGrantEnded; an endpoint that is
// down or refuses the client is not (the grant may live on), and no error quotes the endpoint or
// carries the refresh token.
func TestRefreshGrantEnded(t *testing.T) {
	ts, err := tokenserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ts.SetClient("app", "s3cret")
	c := Config{TokenURL: ts.TokenURL(), ClientID: "app", ClientSecret: "s3cret"}
	refresh := func(rt string) (Refreshed, error) {
		return Refresh(context.Background(), http.DefaultClient, plainWording, c, rt, time.Now)
	}
	_, rt := ts.IssueGrant("app")
	next, err := refresh(rt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(rt); !errors.Is(err, ErrGrantEnded) || strings.Contains(err.Error(), rt) {
		t.Fatalf("reuse: %v", err)
	}
	// Reuse revoked the family: the rotated token is dead too.
	if _, err := refresh(next.RefreshToken); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("after reuse: %v", err)
	}
	_, rt = ts.IssueGrant("app")
	ts.RevokeGrant(rt)
	if _, err := refresh(rt); !errors.Is(err, ErrGrantEnded) {
		t.Fatalf("revoked: %v", err)
	}

	_, rt = ts.IssueGrant("app")
	ts.FailWith(http.StatusServiceUnavailable)
	if _, err := refresh(rt); err == nil || errors.Is(err, ErrGrantEnded) || err.Error() != "the token endpoint answered HTTP 503 (error temporarily_unavailable)" {
		t.Fatalf("down: %v", err)
	}
	ts.FailWith(0)
	c.ClientSecret = "wrong"
	if _, err := refresh(rt); err == nil || errors.Is(err, ErrGrantEnded) || err.Error() != "the token endpoint answered HTTP 401 (error invalid_client)" {
		t.Fatalf("bad client: %v", err)
	}
	c.ClientSecret = "s3cret"
	if _, err := refresh(rt); err != nil {
		t.Fatalf("the failures spent the refresh token: %v", err)
	}
	if _, err := refresh(""); err == nil {
		t.Error("refreshed without a refresh token")
	}
}

// TestRefreshRefusesUnservableAnswers: the answer is held to the client-credentials rules, and a
// refresh token that could not be sent again is refused; no error quotes the answer.
func TestRefreshRefusesUnservableAnswers(t *testing.T) {
	for _, body := range []string{
		`{"access_token": "tok", "token_type": "Bearer", "expires_in": 2, "refresh_token": "secret-rt"}`,
		`{"access_token": "tok", "token_type": "Bea rer", "expires_in": 60, "refresh_token": "secret-rt"}`,
		`{"access_token": "to\nk", "token_type": "Bearer", "expires_in": 60, "refresh_token": "secret-rt"}`,
		`{"access_token": "tok", "token_type": "Bearer", "expires_in": 60, "refresh_token": "secret\u0000rt"}`,
		`{"error": "invalid_request", "error_description": "secret-rt is bad"}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if strings.Contains(body, `"error"`) {
				w.WriteHeader(http.StatusBadRequest)
			}
			fmt.Fprint(w, body)
		}))
		c := Config{TokenURL: srv.URL, ClientID: "app", ClientSecret: "s3cret"}
		_, err := Refresh(context.Background(), srv.Client(), plainWording, c, "old-rt", time.Now)
		srv.Close()
		if err == nil || errors.Is(err, ErrGrantEnded) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "old-rt") {
			t.Errorf("%s: %v", body, err)
		}
	}
}
