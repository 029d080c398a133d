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
