// Package tokenserver is a real OAuth2 token endpoint (client-credentials and refresh_token
// grants) on loopback, for
// tests and benchmarks: it counts requests per client, hands out tokens with a lifetime it is
// told, and can be told to fail, and its refreshes to be slow or to lie (faults.go). It records how each client authenticated, holds a client to the
// method it was registered for, and verifies private_key_jwt assertions with the client's public
// key, as a provider does.
package tokenserver

import (
	"crypto"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a running token endpoint. Its URL is TokenURL().
type Server struct {
	srv      *http.Server
	listener net.Listener

	mu       sync.Mutex
	clients  map[string]string // client id -> secret; a client not listed is accepted with any secret
	methods  map[string]string // client id -> the only auth method it may use; none listed: any
	keys     map[string]crypto.PublicKey
	jtis     map[string]bool // the assertion ids seen: a second use is a replay
	lifetime time.Duration
	failWith int // HTTP status to answer every request with; 0 answers tokens
	delay    time.Duration
	issued   map[string][]Issue
	seq      int
	grants   map[string]*grant    // refresh token -> what it refreshes
	expiry   map[string]time.Time // access token -> when it really expires
	fault    Fault                // the refreshes' fault, unless their grant has its own
	noRotate bool
	// noReuseDetection: a spent refresh token is refused, but its grant is not revoked.
	noReuseDetection bool
	hold             chan struct{} // while not nil, requests wait for it to close
	held             int
	reused           int
}

// Issue records one token request.
type Issue struct {
	At     time.Time
	Token  string // empty when the request failed
	Scopes string
	// Method is how the client authenticated: client_secret_basic, client_secret_post,
	// private_key_jwt, or "" for none or more than one.
	Method string
	// KeyID and Alg are a client assertion's kid and alg headers; Refused says why the
	// endpoint refused the client's authentication, in its own words ("" when it did not).
	KeyID, Alg, Refused string
	// GrantType is the request's grant_type; RefreshToken the refresh token a refresh_token
	// grant sent.
	GrantType, RefreshToken string
}

// Start listens on a free loopback port.
func Start() (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{listener: l, clients: map[string]string{}, methods: map[string]string{}, keys: map[string]crypto.PublicKey{},
		jtis: map[string]bool{}, lifetime: time.Hour, issued: map[string][]Issue{}, grants: map[string]*grant{},
		expiry: map[string]time.Time{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveToken), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// TokenURL is the endpoint's address.
func (s *Server) TokenURL() string { return "http://" + s.listener.Addr().String() + "/oauth2/token" }

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// SetClient makes the endpoint accept the client only with this secret.
func (s *Server) SetClient(id, secret string) { s.mu.Lock(); s.clients[id] = secret; s.mu.Unlock() }

// RequireMethod makes the endpoint accept the client only when it authenticates by method
// (client_secret_basic, client_secret_post or private_key_jwt), as a provider holds a client to
// its registered token_endpoint_auth_method.
func (s *Server) RequireMethod(id, method string) {
	s.mu.Lock()
	s.methods[id] = method
	s.mu.Unlock()
}

// SetClientKey registers the client's public key: it must authenticate by private_key_jwt with
// an assertion that this key verifies.
func (s *Server) SetClientKey(id string, pub crypto.PublicKey) {
	s.mu.Lock()
	s.keys[id] = pub
	s.methods[id] = MethodPrivateKeyJWT
	s.mu.Unlock()
}

// SetLifetime sets the expires_in of the tokens handed out from now on.
func (s *Server) SetLifetime(d time.Duration) { s.mu.Lock(); s.lifetime = d; s.mu.Unlock() }

// FailWith makes every request fail with the status; 0 heals the endpoint.
func (s *Server) FailWith(status int) { s.mu.Lock(); s.failWith = status; s.mu.Unlock() }

// SetDelay makes every answer wait, as a slow endpoint would.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Hold makes every request wait, from now on, until release is called: a test knows a request is
// in the air (Held) and decides when it lands.
func (s *Server) Hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.hold == ch {
			s.hold = nil
		}
		s.mu.Unlock()
		close(ch)
	}
}

// Held counts the requests that waited (or wait) on a Hold.
func (s *Server) Held() int { s.mu.Lock(); defer s.mu.Unlock(); return s.held }

// Issues returns the requests a client made, in order.
func (s *Server) Issues(client string) []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issue(nil), s.issued[client]...)
}

// Requests counts a client's requests, failed ones included.
func (s *Server) Requests(client string) int { return len(s.Issues(client)) }

// Clients lists every client that made a request.
func (s *Server) Clients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.issued))
	for c := range s.issued {
		out = append(out, c)
	}
	return out
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	grantType := ""
	if r.Method == http.MethodPost && r.ParseForm() == nil {
		grantType = r.PostForm.Get("grant_type")
	}
	if grantType != "client_credentials" && grantType != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	auth := s.authenticate(r, s.TokenURL())
	s.mu.Lock()
	delay, failWith, lifetime, hold := s.delay, s.failWith, s.lifetime, s.hold
	if hold != nil {
		s.held++
	}
	s.mu.Unlock()
	if grantType == "refresh_token" {
		rt := r.PostForm.Get("refresh_token")
		delay += s.faultFor(rt).Delay
		s.inFlight(rt, 1)
		defer s.inFlight(rt, -1)
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if hold != nil {
		<-hold
	}

	issue := Issue{At: time.Now(), Scopes: r.PostForm.Get("scope"), Method: auth.method, KeyID: auth.kid, Alg: auth.alg, Refused: auth.refused,
		GrantType: grantType, RefreshToken: r.PostForm.Get("refresh_token")}
	var (
		status int
		body   any
	)
	switch {
	case failWith != 0:
		status, body = failWith, map[string]any{"error": "temporarily_unavailable"}
	case auth.refused != "":
		status, body = auth.status, map[string]any{"error": auth.code}
	case grantType == "refresh_token":
		status, body = s.refresh(auth.id, issue.RefreshToken, lifetime, issue.At)
		if m, ok := body.(map[string]any); ok {
			issue.Token, _ = m["access_token"].(string)
		}
	default:
		s.mu.Lock()
		s.seq++
		issue.Token = fmt.Sprintf("tok-%s-%d", auth.id, s.seq)
		s.expiry[issue.Token] = issue.At.Add(lifetime)
		s.mu.Unlock()
		status, body = http.StatusOK, map[string]any{"access_token": issue.Token, "token_type": "Bearer", "expires_in": int(lifetime.Seconds())}
	}
	s.mu.Lock()
	s.issued[auth.id] = append(s.issued[auth.id], issue)
	s.mu.Unlock()
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if raw, ok := body.(rawBody); ok {
		_, _ = w.Write([]byte(raw))
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}
