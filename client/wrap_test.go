package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

const wrappedAnswer = `{"wrap_info": {"token": "hvs.wrapping-token-1", "accessor": "acc-1", "ttl": 60,
	"creation_time": "2026-12-05T21:00:00Z", "creation_path": "pecreds/process/p/resolve/crm"}}`

// ResolveWrapped asks Vault to wrap the answer (X-Vault-Wrap-TTL, in whole seconds), keeps the
// options in the query, and answers the wrapping token, its TTL, accessor and path; printing it
// never shows the token.
func TestResolveWrappedAsksVaultToWrap(t *testing.T) {
	f := answering("/v1/pecreds/process/p/resolve/crm", 0, func() string { return wrappedAnswer })
	_, p := start(t, f)
	w, err := p.ResolveWrapped(context.Background(), "crm", 90*time.Second+500*time.Millisecond, client.WithType("password"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Token != "hvs.wrapping-token-1" || w.Accessor != "acc-1" || w.TTL != time.Minute ||
		w.CreationPath != "pecreds/process/p/resolve/crm" || !w.CreationTime.Equal(time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)) {
		t.Errorf("wrapped: %+v", *w)
	}
	last := f.requests()[len(f.requests())-1]
	if last.method != http.MethodGet || last.requestURI != "/v1/pecreds/process/p/resolve/crm?type=password" || last.header.Get("X-Vault-Wrap-TTL") != "90s" {
		t.Errorf("request: %s %s wrap ttl %q", last.method, last.requestURI, last.header.Get("X-Vault-Wrap-TTL"))
	}
	asJSON, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("handed on", "wrapped", w)
	for _, shown := range []string{fmt.Sprint(w), fmt.Sprintf("%v %+v %#v", *w, *w, *w), string(asJSON), logged.String()} {
		if strings.Contains(shown, "hvs.wrapping-token-1") || !strings.Contains(shown, "acc-1") {
			t.Errorf("printed: %s", shown)
		}
	}
	// Only the wrapped call asks for wrapping: the process's other calls do not.
	_, _ = p.Resolve(context.Background(), "other") // the stand-in answers it 204
	if last := f.requests()[len(f.requests())-1]; last.header.Get("X-Vault-Wrap-TTL") != "" {
		t.Errorf("a plain resolve asked for wrapping")
	}
}

// What ResolveWrapped refuses: a bad name or a TTL under a second before any call; an answer
// that came unwrapped (its credentials are dropped, never in the error); a 400 as Resolve's typed
// error. A plain Resolve that comes back wrapped is an error, not empty credentials.
func TestResolveWrappedRefusals(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/v1/pecreds/process/p/resolve/clear":
			_, _ = io.WriteString(w, `{"data": {"service": "clear", "type": "password", "username": "ann", "password": "in-the-clear"}}`)
		case "/v1/pecreds/process/p/resolve/nowhere":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"errors": ["no service \"nowhere\""]}`)
		case "/v1/pecreds/process/p/resolve/wrapped":
			_, _ = io.WriteString(w, wrappedAnswer)
		default:
			return false
		}
		return true
	}}
	_, p := start(t, f)
	ctx := context.Background()
	before := len(f.requests())
	_, err := p.ResolveWrapped(ctx, "../creds", time.Minute)
	wantBadRequest(t, err, "service")
	_, err = p.ResolveWrapped(ctx, "crm", 999*time.Millisecond)
	wantBadRequest(t, err, "wrap ttl")
	if got := f.requests()[before:]; len(got) != 0 {
		t.Errorf("refused calls reached the server: %+v", got)
	}
	if _, err := p.ResolveWrapped(ctx, "clear", time.Minute); err == nil || strings.Contains(err.Error(), "in-the-clear") || !strings.Contains(err.Error(), "without wrapping") {
		t.Errorf("an unwrapped answer: %v", err)
	}
	_, err = p.ResolveWrapped(ctx, "nowhere", time.Minute)
	wantBadRequest(t, err, "nowhere")
	if _, err := p.Resolve(ctx, "wrapped"); err == nil || !strings.Contains(err.Error(), "ResolveWrapped") {
		t.Errorf("a plain resolve answered wrapped: %v", err)
	}
}

// Unwrap sends the wrapping token as the request's only token (not the client's own, and not in
// the body), answers the credentials once, and a second unwrap is ErrWrappingTokenInvalid.
func TestUnwrapOnceWithTheWrappingTokenOnly(t *testing.T) {
	used := false
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/sys/wrapping/unwrap" {
			return false
		}
		if used || r.Header.Get("X-Vault-Token") != "hvs.wrapping-token-1" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"errors": ["wrapping token is not valid or does not exist"]}`)
			return true
		}
		used = true
		_, _ = io.WriteString(w, `{"data": {"service": "crm", "source": "definition:orders", "index": 1, "type": "password", "username": "ann", "password": "pw"}}`)
		return true
	}}
	c, _ := start(t, f)
	ctx := context.Background()
	creds, err := c.Unwrap(ctx, " hvs.wrapping-token-1\n")
	if err != nil || creds.Service != "crm" || creds.Source != "definition:orders" || creds.Index != 1 || creds.Fields["password"] != "pw" {
		t.Fatalf("unwrap: %+v %v", creds, err)
	}
	last := f.requests()[len(f.requests())-1]
	if last.method != http.MethodPut || last.header.Get("X-Vault-Token") != "hvs.wrapping-token-1" || len(last.body) != 0 {
		t.Errorf("request: %s token %q body %v", last.method, last.header.Get("X-Vault-Token"), last.body)
	}
	_, err = c.Unwrap(ctx, "hvs.wrapping-token-1")
	if !errors.Is(err, client.ErrWrappingTokenInvalid) || strings.Contains(err.Error(), "hvs.") {
		t.Errorf("a second unwrap: %v", err)
	}
	before := len(f.requests())
	_, err = c.Unwrap(ctx, "  ")
	wantBadRequest(t, err, "wrapping token")
	if len(f.requests()) != before {
		t.Errorf("an empty token reached the server")
	}
}

// An unwrap whose answer holds nothing is ErrNotFound; a server error stays Vault's error.
func TestUnwrapEmptyAndFailing(t *testing.T) {
	for status, want := range map[int]func(error) bool{
		http.StatusOK:                  func(err error) bool { return errors.Is(err, client.ErrNotFound) },
		http.StatusInternalServerError: func(err error) bool { return err != nil && !errors.Is(err, client.ErrWrappingTokenInvalid) },
	} {
		c, _ := start(t, answering("/v1/sys/wrapping/unwrap", status, func() string { return `{"errors": ["internal"]}` }))
		if _, err := c.Unwrap(context.Background(), "hvs.x"); !want(err) {
			t.Errorf("status %d: %v", status, err)
		}
	}
}

// A wrapping token that wraps anything but a resolve of this mount (one made with
// sys/wrapping/wrap, handed in place of the engine host's) is refused before it is unwrapped;
// the lookup carries the token in its body and no token of its own.
func TestUnwrapRefusesAForeignWrappingToken(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/sys/wrapping/lookup" {
			return false
		}
		_, _ = io.WriteString(w, `{"data": {"creation_path": "sys/wrapping/wrap", "creation_ttl": 60}}`)
		return true
	}}
	c, _ := start(t, f)
	before := len(f.requests())
	_, err := c.Unwrap(context.Background(), "hvs.someone-elses")
	if !errors.Is(err, client.ErrWrappingTokenForeign) || strings.Contains(err.Error(), "hvs.") {
		t.Fatalf("a foreign wrapping token: %v", err)
	}
	got := f.requests()[before:]
	if len(got) != 1 || got[0].header.Get("X-Vault-Token") != "" || got[0].body["token"] != "hvs.someone-elses" {
		t.Errorf("requests: %+v; want one lookup, the token in its body only", got)
	}
}
