package pecreds

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An endpoint that redirects: the client reports the 3xx and the other endpoint gets nothing.
func TestOutboundClientFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	defer elsewhere.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/steal", code)
		}))
		_, err := fetchToken(t.Context(), newOutboundClient(5*time.Second), Credential{Type: "oauth2", Fields: map[string]string{
			"token_url": redirector.URL + "/token", "client_id": "c", "client_secret": "the-client-secret",
		}}, time.Now)
		redirector.Close()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", code)) || !strings.Contains(err.Error(), "redirects are not followed") {
			t.Errorf("%d: %v", code, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target was reached %d times", n)
	}
}

// The dial guard refuses link-local, unspecified and multicast addresses before a packet leaves.
func TestOutboundClientRefusesAddresses(t *testing.T) {
	client := newOutboundClient(5 * time.Second)
	for _, u := range []string{"https://169.254.169.254/latest/meta-data", "https://[fe80::1]/x", "https://0.0.0.0/x", "https://[::]/x", "https://224.0.0.1/x", "https://[ff02::1]/x"} {
		_, err := client.Post(u, "text/plain", nil)
		if err == nil || !strings.Contains(describeTransportError(err), "is refused") {
			t.Errorf("%s: %v (%s)", u, err, describeTransportError(err))
		}
	}
	// The dial guard alone, as it judges the address a host name resolved to.
	dial := guardedDial(time.Second)
	for _, addr := range []string{"169.254.169.254:443", "[fe80::1]:443", "0.0.0.0:443", "[::]:443", "224.0.0.1:443", "[ff02::1]:443"} {
		if _, err := dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(describeTransportError(err), "is refused") {
			t.Errorf("dial %s: %v", addr, err)
		}
	}
	// A URL stored before the rule existed is refused when called.
	if _, err := client.Post("http://user:pw@127.0.0.1:9/x", "text/plain", nil); err == nil || strings.Contains(describeTransportError(err), "pw") {
		t.Errorf("user info: %v", err)
	}
}

func TestOutboundClientReadsAtMostOneMiB(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 3<<20)))
	}))
	defer srv.Close()
	resp, err := newOutboundClient(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if n != maxAnswerBytes {
		t.Errorf("read %d bytes, want %d", n, maxAnswerBytes)
	}
}

// A hostile token endpoint reflects the Authorization header everywhere it can: the body, the
// error code, error_description, the reason phrase, a malformed answer. None of it reaches the
// message.
func TestTokenErrorsNeverCarryEndpointText(t *testing.T) {
	const secret = "the-client-secret"
	basic := base64.StdEncoding.EncodeToString([]byte("c:" + secret))
	answers := map[string]func(w http.ResponseWriter, auth string){
		"body and description": func(w http.ResponseWriter, auth string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error": "invalid_client", "error_description": %q, "echo": %q}`, auth, auth)
		},
		"error code": func(w http.ResponseWriter, auth string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error": %q}`, auth)
		},
		"reason phrase": func(w http.ResponseWriter, auth string) {
			hijackWrite(w, "HTTP/1.1 401 "+auth+"\r\nContent-Length: 0\r\n\r\n")
		},
		"malformed": func(w http.ResponseWriter, auth string) { hijackWrite(w, "HTTP/1.1 "+auth+"\r\n\r\n") },
		"not json":  func(w http.ResponseWriter, auth string) { fmt.Fprint(w, auth) },
		"no token":  func(w http.ResponseWriter, auth string) { fmt.Fprintf(w, `{"token_type": %q}`, auth) },
	}
	for name, answer := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r.Header.Get("Authorization")) }))
		_, err := fetchToken(context.Background(), newOutboundClient(5*time.Second), Credential{Type: "oauth2", Fields: map[string]string{
			"token_url": srv.URL + "/token", "client_id": "c", "client_secret": secret,
		}}, time.Now)
		srv.Close()
		if err == nil || strings.Contains(err.Error(), basic) || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Basic") {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func hijackWrite(w http.ResponseWriter, raw string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString(raw)
	_ = buf.Flush()
	_, _ = bufio.NewReader(conn).Peek(1) // hold the connection until the client is done
}

func TestDescribeTokenErrorKeepsStandardCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error": "invalid_client", "error_description": "no such client"}`)
	}))
	defer srv.Close()
	_, err := fetchToken(context.Background(), newOutboundClient(5*time.Second), Credential{Type: "oauth2", Fields: map[string]string{
		"token_url": srv.URL, "client_id": "c", "client_secret": "s",
	}}, time.Now)
	if err == nil || err.Error() != "the token endpoint answered HTTP 401 Unauthorized (error invalid_client)" {
		t.Errorf("got %v", err)
	}
}
