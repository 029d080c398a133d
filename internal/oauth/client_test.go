package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
