package hydra

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"
)

// Recorder stands in front of Hydra's token endpoint and follows each grant through its refreshes:
// a refresh token is known by its hash only (never kept, never logged), and each one Hydra answers
// belongs to the grant of the one it replaced. So a test sees, per grant, when it was last
// refreshed, whether a refresh token was sent again (spent already, or in the air in another
// request) and how Hydra judged it; and at any moment how many refreshes are in the air.
//
// It also makes Hydra's test store behave as a production one: the in-memory SQLite refuses a
// refresh that meets another's write (a 500, "Unable to serialize access due to a concurrent
// update", or a 400, "multiple concurrent requests using the same token", when no other request
// carries it), which a database that serializes its writers never does. Such a refusal rolled the
// refresh back — its refresh token is not spent — so the recorder asks again after a few
// milliseconds (counted as Busy), and the plugin sees one answer. Were the token spent after all,
// Hydra would answer a later try invalid_grant, and the test would see a grant refused with no
// refresh token sent twice.
type Recorder struct {
	target string // Hydra's token endpoint
	srv    *httptest.Server
	http   *http.Client

	mu       sync.Mutex
	inFlight int                    // guarded by mu
	tokens   map[[32]byte]*sentInfo // guarded by mu; by the refresh token's hash
	grants   map[int]*GrantRecord   // guarded by mu; by the caller's grant number
	totals   RecorderTotals         // guarded by mu
}

// sentInfo is what the recorder knows of one refresh token.
type sentInfo struct {
	grant     int
	sent      int  // refresh requests that carried it
	inAir     int  // those not answered yet
	succeeded bool // Hydra answered one of them with new tokens: it is spent
}

// GrantRecord is one grant's refreshes as the recorder saw them.
type GrantRecord struct {
	Refreshed     int       // refreshes Hydra answered with new tokens
	LastRefreshed time.Time // when the last of them was answered
	Resent        int       // refresh requests that carried a refresh token already spent, or in the air
	Refused       int       // invalid_grant answers
	LastRefused   time.Time
}

// RecorderTotals count every refresh request the recorder passed on.
type RecorderTotals struct {
	Requests  int // refresh_token grants sent
	Refreshed int // answered with new tokens
	Resent    int // carrying a refresh token already spent, or in the air in another request
	Refused   int // answered invalid_grant
	Failed    int // answered another error
	Busy      int // refused by Hydra's busy store, and asked again by the recorder
	Unknown   int // carrying a refresh token of no grant the test tracked
}

// NewRecorder starts a recorder in front of s's token endpoint, stopped by Close.
func (s *Server) NewRecorder() *Recorder {
	r := &Recorder{target: s.TokenURL(), http: &http.Client{Timeout: 30 * time.Second},
		tokens: map[[32]byte]*sentInfo{}, grants: map[int]*GrantRecord{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// TokenURL is the recorder's token endpoint, to give the plugin in Hydra's place.
func (r *Recorder) TokenURL() string { return r.srv.URL + "/oauth2/token" }

// Close stops the recorder.
func (r *Recorder) Close() { r.srv.Close() }

// Track says that refreshToken, handed to the plugin, is grant's.
func (r *Recorder) Track(grant int, refreshToken string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[sha256.Sum256([]byte(refreshToken))] = &sentInfo{grant: grant}
	r.grants[grant] = &GrantRecord{}
}

// InFlight is how many refresh requests are in the air: sent to Hydra and not yet answered.
func (r *Recorder) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight
}

// Grant is what the recorder saw of grant's refreshes.
func (r *Recorder) Grant(grant int) GrantRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.grants[grant]; ok {
		return *g
	}
	return GrantRecord{}
}

// Totals counts every refresh request so far.
func (r *Recorder) Totals() RecorderTotals {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.totals
}

// serve passes a token request on to Hydra and its answer back, noting a refresh on the way.
func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "reading the request", http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	var hash [32]byte
	refresh := form.Get("grant_type") == "refresh_token"
	if refresh {
		hash = sha256.Sum256([]byte(form.Get("refresh_token")))
		r.sent(hash)
	}
	// Once sent, a refresh is followed through to Hydra's verdict even if the plugin that sent it
	// dies meanwhile (a killed node): Hydra may have spent the refresh token, and the recorder
	// must know it, as the grant's next refresh will find out.
	ctx := context.WithoutCancel(req.Context())
	status, header, answer := r.forward(ctx, req, body)
	for try := 1; refresh && try < busyTries && r.storeBusy(hash, status, answer); try++ {
		r.mu.Lock()
		r.totals.Busy++
		r.mu.Unlock()
		// A pause of random length, so that the writes that met do not meet again.
		<-time.After(time.Duration(rand.Int64N(int64(10 * time.Millisecond))))
		status, header, answer = r.forward(ctx, req, body)
	}
	if refresh {
		r.answered(hash, status, answer)
	}
	for _, k := range []string{"Content-Type", "Cache-Control", "Pragma"} {
		if v := header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// busyTries bounds the tries of one refresh that Hydra's busy store refused.
const busyTries = 50

// storeBusy says whether Hydra refused a refresh because its in-memory store met another write:
// a 500 that says so, or — when no other request carries the same refresh token — the 400 that
// Hydra's refresh answers for a concurrent update, "multiple concurrent requests using the same
// token".
func (r *Recorder) storeBusy(hash [32]byte, status int, answer []byte) bool {
	switch {
	case status == http.StatusInternalServerError:
		return bytes.Contains(answer, []byte("Unable to serialize access"))
	case status == http.StatusBadRequest && bytes.Contains(answer, []byte("multiple concurrent requests")):
		r.mu.Lock()
		defer r.mu.Unlock()
		tok, ok := r.tokens[hash]
		return ok && tok.inAir == 1
	}
	return false
}

// forward sends the request to Hydra as it came and answers Hydra's status, headers and body;
// a Hydra that cannot be reached is a 502.
func (r *Recorder) forward(ctx context.Context, req *http.Request, body []byte) (int, http.Header, []byte) {
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target, bytes.NewReader(body))
	if err != nil {
		return http.StatusBadGateway, http.Header{}, nil
	}
	for _, k := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := req.Header.Get(k); v != "" {
			out.Header.Set(k, v)
		}
	}
	resp, err := r.http.Do(out)
	if err != nil {
		return http.StatusBadGateway, http.Header{}, nil
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, answer
}

func (r *Recorder) sent(hash [32]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight++
	r.totals.Requests++
	tok, ok := r.tokens[hash]
	if !ok {
		r.totals.Unknown++
		return
	}
	tok.sent++
	tok.inAir++
	if tok.succeeded || tok.inAir > 1 { // spent, or being spent by another request
		r.totals.Resent++
		r.grants[tok.grant].Resent++
	}
}

func (r *Recorder) answered(hash [32]byte, status int, answer []byte) {
	var a struct {
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
	}
	_ = json.Unmarshal(answer, &a)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	tok, ok := r.tokens[hash]
	if ok {
		tok.inAir--
	}
	now := time.Now()
	switch {
	case status == http.StatusOK && a.RefreshToken != "":
		r.totals.Refreshed++
		if ok {
			tok.succeeded = true
			g := r.grants[tok.grant]
			g.Refreshed++
			g.LastRefreshed = now
			r.tokens[sha256.Sum256([]byte(a.RefreshToken))] = &sentInfo{grant: tok.grant}
		}
	case a.Error == "invalid_grant":
		r.totals.Refused++
		if ok {
			g := r.grants[tok.grant]
			g.Refused++
			g.LastRefused = now
		}
	default:
		r.totals.Failed++
	}
}
