package oauth

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

var plainWording = DescribeHTTP{
	Status:    func(code int) string { return fmt.Sprintf("HTTP %d", code) },
	Transport: func(error) string { return "the connection failed" },
}

func TestFetch(t *testing.T) {
	var form string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		_ = r.ParseForm()
		form = r.PostForm.Encode()
		w.Header().Set("Content-Type", "application/json")
		if id != "app" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error": "invalid_client", "error_description": "s3cret is wrong"}`)
			return
		}
		fmt.Fprint(w, `{"access_token": "tok", "token_type": "Bearer", "expires_in": 60}`)
	}))
	defer srv.Close()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	cfg := Config{TokenURL: srv.URL, ClientID: "app", ClientSecret: "s3cret", Audience: "crm", Scopes: []string{"a", "b"}}
	tok, err := Fetch(context.Background(), srv.Client(), plainWording, cfg, now)
	if err != nil || tok.AccessToken != "tok" || tok.TokenType != "Bearer" || tok.IssuedAt != t0 || tok.ExpiresAt.IsZero() {
		t.Fatalf("%+v %v", tok, err)
	}
	if !strings.Contains(form, "audience=crm") || !strings.Contains(form, "scope=a+b") || !strings.Contains(form, "grant_type=client_credentials") {
		t.Errorf("form %q", form)
	}
	cfg.ClientSecret = "wrong"
	_, err = Fetch(context.Background(), srv.Client(), plainWording, cfg, now)
	if err == nil || err.Error() != "the token endpoint answered HTTP 401 (error invalid_client)" {
		t.Errorf("a refused client: %v", err)
	}
	_, err = Fetch(context.Background(), srv.Client(), plainWording, Config{TokenURL: "http://127.0.0.1:1/t", ClientID: "c", ClientSecret: "s"}, now)
	if err == nil || err.Error() != "the token endpoint could not be reached: the connection failed" {
		t.Errorf("no endpoint: %v", err)
	}
}

// TestFetchRefusesUnservableAnswers: an answer that parses but could not be served is a failure
// (counted, backed off), never a token: a lifetime of zero or less, or not a number, or a
// token_type that would break an Authorization header. The error quotes nothing of the answer.
func TestFetchRefusesUnservableAnswers(t *testing.T) {
	t0 := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC) // far from the real clock: the lifetime counts from it
	for _, tc := range []struct {
		body, contentType, wantErr string
		life                       time.Duration
	}{
		{`{"access_token":"t","token_type":"Bearer","expires_in":60}`, "application/json", "", time.Minute},
		{`{"access_token":"t","token_type":"Bearer","expires_in":"90"}`, "application/json", "", 90 * time.Second},
		{`{"access_token":"t","token_type":"Bearer"}`, "application/json", "", 0},
		{`access_token=t&token_type=bearer&expires_in=30`, "application/x-www-form-urlencoded", "", 30 * time.Second},
		{`access_token=t&token_type=bearer`, "application/x-www-form-urlencoded", "", 0},
		{`{"access_token":"t","token_type":"Bearer","expires_in":-5}`, "application/json", "expires_in", 0},
		{`{"access_token":"t","token_type":"Bearer","expires_in":0}`, "application/json", "expires_in", 0},
		{`access_token=t&token_type=bearer&expires_in=-5`, "application/x-www-form-urlencoded", "expires_in", 0},
		{`access_token=t&token_type=bearer&expires_in=soon`, "application/x-www-form-urlencoded", "expires_in", 0},
		{`{"access_token":"t","token_type":"Bearer\r\nX-Evil: 1","expires_in":60}`, "application/json", "token_type", 0},
		{`{"access_token":"t","token_type":"Bearer x","expires_in":60}`, "application/json", "token_type", 0},
		{`{"access_token":"t","token_type":"Bearer","expires_in":2}`, "application/json", "too short", 0},
		{`{"access_token":"t\r\nX-Evil: 1","token_type":"Bearer","expires_in":60}`, "application/json", "access_token", 0},
		{`{"access_token":"` + strings.Repeat("a", MaxTokenBytes+1) + `","token_type":"Bearer","expires_in":60}`, "application/json", "access_token", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.contentType)
			fmt.Fprint(w, tc.body)
		}))
		tok, err := Fetch(context.Background(), srv.Client(), plainWording, Config{TokenURL: srv.URL, ClientID: "c", ClientSecret: "s"}, func() time.Time { return t0 })
		srv.Close()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.wantErr == "" && tc.life == 0 && !tok.ExpiresAt.IsZero():
			t.Errorf("%s: expires at %v, want no stated lifetime", tc.body, tok.ExpiresAt)
		case tc.wantErr == "" && tc.life != 0 && !tok.ExpiresAt.Equal(t0.Add(tc.life)):
			t.Errorf("%s: expires at %v, want %v", tc.body, tok.ExpiresAt, t0.Add(tc.life))
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one naming %s", tc.body, err, tc.wantErr)
		case err != nil && (strings.Contains(err.Error(), "Evil") || strings.Contains(err.Error(), "soon")):
			t.Errorf("%s: the error quotes the answer: %v", tc.body, err)
		}
	}
}

// seenRequest is what a token endpoint saw of one request's client authentication.
type seenRequest struct {
	basicID, basicSecret string
	hasBasic             bool
	form                 url.Values
}

// TestFetchAuthMethods: each auth_method authenticates the client its way and no other: Basic
// sends the secret in the header only, post in the body only, private_key_jwt no secret at all
// but a fresh assertion signed with the client's key, whose claims RFC 7523 asks for.
func TestFetchAuthMethods(t *testing.T) {
	var seen []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		var s seenRequest
		s.basicID, s.basicSecret, s.hasBasic = r.BasicAuth()
		s.form = r.PostForm
		seen = append(seen, s)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token": "tok", "token_type": "Bearer", "expires_in": 60}`)
	}))
	defer srv.Close()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	rsaKey, _, err := testcert.RSAKey(2048, false)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _, err := testcert.ECKey(elliptic.P256(), false)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(c Config) seenRequest {
		t.Helper()
		c.TokenURL, c.ClientID, c.Scopes = srv.URL+"/token", "app", []string{"a"}
		if _, err := Fetch(context.Background(), srv.Client(), plainWording, c, now); err != nil {
			t.Fatalf("%s: %v", c.AuthMethod, err)
		}
		return seen[len(seen)-1]
	}

	for _, method := range []string{"", AuthClientSecretBasic} {
		s := fetch(Config{AuthMethod: method, ClientSecret: "s3cret"})
		if !s.hasBasic || s.basicID != "app" || s.basicSecret != "s3cret" || s.form.Has("client_secret") || s.form.Has("client_assertion") {
			t.Errorf("basic (%q): header %v %q, form %v", method, s.hasBasic, s.basicID, s.form)
		}
	}
	s := fetch(Config{AuthMethod: AuthClientSecretPost, ClientSecret: "s3cret"})
	if s.hasBasic || s.form.Get("client_id") != "app" || s.form.Get("client_secret") != "s3cret" || s.form.Has("client_assertion") {
		t.Errorf("post: header %v, form %v", s.hasBasic, s.form)
	}

	for _, tc := range []struct {
		key crypto.Signer
		pub any
		alg string
		kid string
	}{
		{rsaKey, rsaKey.Public(), "RS256", "rsa-1"},
		{ecKey, ecKey.Public(), "ES256", ""},
	} {
		var jtis []string
		for range 2 {
			// A secret given by mistake is never sent with private_key_jwt.
			s := fetch(Config{AuthMethod: AuthPrivateKeyJWT, SigningKey: tc.key, KeyID: tc.kid, ClientSecret: "s3cret", Audience: "crm"})
			if s.hasBasic || s.form.Has("client_secret") || s.form.Get("client_id") != "app" || s.form.Get("audience") != "crm" ||
				s.form.Get("client_assertion_type") != ClientAssertionType {
				t.Fatalf("%s: header %v, form %v", tc.alg, s.hasBasic, s.form)
			}
			tok, err := jwt.ParseSigned(s.form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
			if err != nil {
				t.Fatalf("%s: the assertion does not parse: %v", tc.alg, err)
			}
			if h := tok.Headers[0]; h.KeyID != tc.kid || h.ExtraHeaders["typ"] != "JWT" {
				t.Errorf("%s: header %+v", tc.alg, h)
			}
			var claims jwt.Claims
			if err := tok.Claims(tc.pub, &claims); err != nil {
				t.Fatalf("%s: the assertion's signature does not verify: %v", tc.alg, err)
			}
			if claims.Issuer != "app" || claims.Subject != "app" || len(claims.Audience) != 1 || claims.Audience[0] != srv.URL+"/token" ||
				!claims.IssuedAt.Time().Equal(t0) || !claims.Expiry.Time().Equal(t0.Add(AssertionLifetime)) || len(claims.ID) < 20 {
				t.Errorf("%s: claims %+v", tc.alg, claims)
			}
			jtis = append(jtis, claims.ID)
		}
		if jtis[0] == jtis[1] {
			t.Errorf("%s: two requests sent the same jti", tc.alg)
		}
	}

	before := len(seen)
	for _, c := range []Config{{AuthMethod: "client_secret_jwt", ClientSecret: "s3cret"}, {AuthMethod: AuthPrivateKeyJWT}} {
		c.TokenURL, c.ClientID = srv.URL, "app"
		if _, err := Fetch(context.Background(), srv.Client(), plainWording, c, now); err == nil {
			t.Errorf("%q: fetched", c.AuthMethod)
		}
	}
	if len(seen) != before {
		t.Error("a request with no way to authenticate was sent")
	}
}
