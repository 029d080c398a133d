package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// startHostileEndpoint is a scripted token endpoint that ends with the test.
func startHostileEndpoint(t *testing.T, body string, hang bool) *tokenserver.Scripted {
	t.Helper()
	h := tokenserver.StartScripted(body, hang)
	t.Cleanup(h.Close)
	return h
}

func oauth2At(h *tokenserver.Scripted, client string) map[string]any {
	return map[string]any{"type": "oauth2", "token_url": h.TokenURL(), "client_id": client, "client_secret": client + "-secret"}
}

const goodToken = `{"access_token": "tok-%d", "token_type": "Bearer", "expires_in": 3600}`

// waitForToken polls until a technical credential's token is stored: its creation waits for it
// only as long as the token wait.
func waitForToken(t *testing.T, b *backend, s logical.Storage, name string) {
	t.Helper()
	waitUntil(t, 10*time.Second, func() bool {
		st, err := b.getTokenState(context.Background(), s, name)
		return err == nil && st != nil && st.AccessToken != ""
	})
}

// A token endpoint that hangs costs only the requests that need its credential, and those for a
// bounded wait: creating the credential, reading its creds, resolving a service that has nothing
// else, and reporting a failure of its token each answer after the token wait (a warning, or a
// retryable 503 naming it) and change no process; a service that lists a usable credential after
// it is answered at once; every request that does not need it is answered while it hangs —
// reports on processes that share lock stripes with the waiting ones included. Each hung
// endpoint is asked at most twice.
func TestHungEndpointCostsOnlyItsDependants(t *testing.T) {
	d := testDeps()
	d.tokenWait = 100 * time.Millisecond
	b, s := getTestBackendWith(t, d)
	slow := startHostileEndpoint(t, fmt.Sprintf(goodToken, 1), false) // answers once, then hangs
	dead := startHostileEndpoint(t, fmt.Sprintf(goodToken, 2), true)  // hangs from the start
	fast := startHostileEndpoint(t, fmt.Sprintf(goodToken, 3), false)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/slow", oauth2At(slow, "s"))
	waitForToken(t, b, s, "slow") // a loaded machine may take longer than the token wait
	slow.Hold()
	resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/dead", oauth2At(dead, "d"))
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "still in flight") {
		t.Fatalf("creating a credential whose endpoint hangs: warnings %v", resp.Warnings)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "technical/fast", oauth2At(fast, "f"))
	waitForToken(t, b, s, "fast")
	mustSucceed(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": `[
		{"name": "both", "credentials": [{"type": "technical", "name": "dead"}, {"type": "technical", "name": "fast"}]},
		{"name": "deadonly", "credentials": [{"type": "technical", "name": "dead"}]},
		{"name": "slowonly", "credentials": [{"type": "technical", "name": "slow"}]},
		{"name": "fastonly", "credentials": [{"type": "technical", "name": "fast"}]}]`})
	for i := range 40 {
		mustSucceed(t, b, s, logical.CreateOperation, fmt.Sprintf("process/p%d", i), map[string]any{"definition": "r"})
	}

	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p0/resolve/both", nil).Data; got["technical"] != "fast" {
		t.Errorf("a later usable credential is answered at once: %v", got)
	}
	for _, path := range []string{"technical/dead/creds", "process/p0/resolve/deadonly"} {
		if msg := mustFailCode(t, b, s, logical.ReadOperation, path, http.StatusServiceUnavailable); !strings.Contains(msg, `"dead"`) || !strings.Contains(msg, "in flight") {
			t.Errorf("%s: %s", path, msg)
		}
	}
	report := map[string]any{"service": "slowonly", "error": "auth_failed"}
	if code, msg := answerCode(t, b, s, logical.UpdateOperation, "process/p1/report", report); code != http.StatusServiceUnavailable || !strings.Contains(msg, `"slow"`) {
		t.Errorf("a report on the hung credential: %d %s", code, msg)
	}
	if p := mustSucceed(t, b, s, logical.ReadOperation, "process/p1", nil).Data; p["health"] != "running" {
		t.Errorf("a report that timed out changed the process: %v", p)
	}

	// Requests that wait on the hung endpoints for as long as they hang, beside requests that do
	// not need them: every one of the latter is answered while the former still wait.
	b.deps.tokenWait = time.Hour
	var waiting sync.WaitGroup
	for i := range 20 {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			op, path, data := logical.Operation(logical.ReadOperation), fmt.Sprintf("process/p%d/resolve/deadonly", i), map[string]any(nil)
			if i%2 == 1 {
				op, path, data = logical.UpdateOperation, fmt.Sprintf("process/p%d/report", i), map[string]any{"service": "slowonly", "error": "auth_failed"}
			}
			_, _ = b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Storage: s, Data: data})
		}()
	}
	for i := 20; i < 40; i++ {
		mustSucceed(t, b, s, logical.ReadOperation, fmt.Sprintf("process/p%d/resolve/fastonly", i), nil)
		mustSucceed(t, b, s, logical.UpdateOperation, fmt.Sprintf("process/p%d/report", i), map[string]any{"service": "fastonly", "error": "unavailable"})
		mustSucceed(t, b, s, logical.ReadOperation, "technical/fast/creds", nil)
		mustSucceed(t, b, s, logical.ReadOperation, "process/p0/resolve/slowonly", nil) // its token is still valid
	}
	slow.Release()
	dead.Release()
	waiting.Wait()
	if n, m := slow.Requests(), dead.Requests(); n > 2 || m > 2 {
		t.Errorf("the hung endpoints were asked %d and %d times, want at most 2 each", n, m)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p0/resolve/deadonly", nil).Data; got["technical"] != "dead" {
		t.Errorf("once it answers, its token serves: %v", got)
	}
}

// No request bypasses backoff: an endpoint that answers an expires_in of zero or less is a
// counted failure, and while it backs off reads and resolves answer 503 with the time to retry,
// asking nothing; a token too short-lived to serve is not asked for again sooner than the minimum
// interval.
func TestEveryFetchObeysBackoff(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now, d.minFetchInterval = clock.now, 2*time.Second
	b, s := getTestBackendWith(t, d)
	h := startHostileEndpoint(t, `{"access_token": "x", "token_type": "Bearer", "expires_in": -5}`, false)
	resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/neg", oauth2At(h, "n"))
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "expires_in") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": `[{"name": "svc", "credentials": [{"type": "technical", "name": "neg"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "r"})
	for range 20 {
		msg := mustFailCode(t, b, s, logical.ReadOperation, "technical/neg/creds", http.StatusServiceUnavailable)
		if !strings.Contains(msg, "expires_in") || !strings.Contains(msg, "retry after") {
			t.Fatalf("creds while backing off: %s", msg)
		}
		mustFailCode(t, b, s, logical.ReadOperation, "process/p/resolve/svc", http.StatusServiceUnavailable)
	}
	if n := h.Requests(); n != 1 {
		t.Errorf("40 demands during the backoff made %d token requests, want the first only", n)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/neg", nil).Data; got["failures"] != 1 {
		t.Errorf("failures %v", got["failures"])
	}
	clock.advance(5 * time.Second) // the first backoff is over: one more request, one more failure
	mustFailCode(t, b, s, logical.ReadOperation, "technical/neg/creds", http.StatusServiceUnavailable)
	mustFailCode(t, b, s, logical.ReadOperation, "technical/neg/creds", http.StatusServiceUnavailable)
	if n, f := h.Requests(), mustSucceed(t, b, s, logical.ReadOperation, "technical/neg", nil).Data["failures"]; n != 2 || f != 2 {
		t.Errorf("after the backoff: %d requests, %v failures", n, f)
	}

	// A token that lives too short to be served is a failure too; a write that fixes the
	// credential lifts the old backoff (the count starts again), and asks once.
	h.Answer(`{"access_token": "short", "token_type": "Bearer", "expires_in": 1}`)
	clock.advance(2 * time.Second) // past the minimum interval, within the second backoff (10s)
	before := h.Requests()
	resp = mustSucceed(t, b, s, logical.UpdateOperation, "technical/neg", map[string]any{"scopes": "a"})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "too short") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	for range 10 {
		mustFailCode(t, b, s, logical.ReadOperation, "technical/neg/creds", http.StatusServiceUnavailable)
	}
	if n, f := h.Requests()-before, mustSucceed(t, b, s, logical.ReadOperation, "technical/neg", nil).Data["failures"]; n != 1 || f != 1 {
		t.Errorf("a write and 10 reads: %d token requests (want the write's), failures %v (want the count started again)", n, f)
	}

	// A healthy answer after the backoff; then no request sooner than the minimum interval, not
	// even an operator's rotate.
	h.Answer(`{"access_token": "good", "token_type": "Bearer", "expires_in": 3600}`)
	clock.advance(5 * time.Second)
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/neg/creds", nil).Data; got["access_token"] != "good" {
		t.Fatalf("after the backoff: %v", got)
	}
	if msg := mustFailCode(t, b, s, logical.UpdateOperation, "technical/neg/rotate", http.StatusServiceUnavailable); !strings.Contains(msg, "less than 2s ago") {
		t.Errorf("rotate within the minimum interval: %s", msg)
	}
	if n := h.Requests() - before; n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	clock.advance(2 * time.Second)
	mustSucceed(t, b, s, logical.UpdateOperation, "technical/neg/rotate", nil)
	if n := h.Requests() - before; n != 3 {
		t.Errorf("after the minimum interval, rotate asks: %d token requests, want 3", n)
	}
}

// A hostile endpoint that answers tokens too short-lived to serve never makes the refresh
// scheduler spin: each request is a counted failure, and the next waits for the backoff.
func TestShortLivedTokensDoNotSpin(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now, d.minFetchInterval = clock.now, 2*time.Second
	b, s := getTestBackendWith(t, d)
	h := startHostileEndpoint(t, `{"access_token": "x", "token_type": "Bearer", "expires_in": 3}`, false)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"refresh_fraction": 0.5})
	mustSucceed(t, b, s, logical.CreateOperation, "technical/short", oauth2At(h, "s"))
	// Served: 3 s of life, 1 s kept back; its refresh point (1.5 s, less jitter) comes before the
	// minimum interval has passed, so the schedule holds it at 2 s: before that it is not due,
	// where a refresher popping it early would find it refused, and pop it again, and again.
	st, _ := b.getTokenState(t.Context(), s, "short")
	if st == nil || !st.Valid(clock.now()) || !st.NextRefresh.Before(clock.now().Add(2*time.Second)) {
		t.Fatalf("a 3-second token: %+v", st)
	}
	if name, _ := b.refresher.queue.PopDue(clock.now().Add(1900 * time.Millisecond)); name != "" {
		t.Errorf("the credential is due before the minimum interval has passed")
	}
	h.Answer(`{"access_token": "x", "token_type": "Bearer", "expires_in": 1}`)
	for range 5 {
		clock.advance(3 * time.Second)
		b.refresher.worker.poke()
	}
	waitUntil(t, 10*time.Second, func() bool { return h.Requests() >= 2 })
	if n := h.Requests(); n > 4 {
		t.Errorf("15 s of a 1-second-token endpoint made %d token requests", n)
	}
}

// A token_type that would break an Authorization header is a failure, not served.
func TestTokenTypeChecked(t *testing.T) {
	b, s := getTestBackend(t)
	h := startHostileEndpoint(t, `{"access_token": "x", "token_type": "Bearer\r\nX-Injected: 1", "expires_in": 60}`, false)
	resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/tt", oauth2At(h, "t"))
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "token_type") || strings.Contains(resp.Warnings[0], "Injected") {
		t.Errorf("warnings %v", resp.Warnings)
	}
	mustFailCode(t, b, s, logical.ReadOperation, "technical/tt/creds", http.StatusServiceUnavailable)
}

// answerCode is the HTTP status and message Vault would answer for a request, as its HTTP layer
// derives them.
func answerCode(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) (int, string) {
	t.Helper()
	req := &logical.Request{Operation: op, Path: path, Storage: s, Data: data}
	resp, err := b.HandleRequest(t.Context(), req)
	code, cerr := logical.RespondErrorCommon(req, resp, err)
	logical.AdjustErrorStatusCode(&code, err)
	if cerr == nil {
		return code, ""
	}
	return code, cerr.Error()
}

// A token asked with settings a write has since replaced — or for a credential deleted and made
// again meanwhile — is never stored nor served: the write's own request brings the token.
func TestStaleTokenNeverServed(t *testing.T) {
	d := testDeps()
	d.tokenWait = 200 * time.Millisecond
	b, s := getTestBackendWith(t, d)
	old := startHostileEndpoint(t, `{"access_token": "from-the-old-endpoint", "token_type": "Bearer", "expires_in": 315360000}`, true)
	fresh := startHostileEndpoint(t, `{"access_token": "from-the-new-endpoint", "token_type": "Bearer", "expires_in": 3600}`, false)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/x", oauth2At(old, "a")) // its request hangs
	mustSucceed(t, b, s, logical.UpdateOperation, "technical/x", map[string]any{"token_url": fresh.URL + "/token", "client_id": "b", "client_secret": "b-secret"})
	old.Release()
	waitUntil(t, 10*time.Second, func() bool {
		got := request(t, b, s, logical.ReadOperation, "technical/x/creds", nil)
		return got != nil && !got.IsError() && got.Data["access_token"] == "from-the-new-endpoint"
	})
	if st, _ := b.getTokenState(t.Context(), s, "x"); st.AccessToken != "from-the-new-endpoint" {
		t.Errorf("stored %q", st.AccessToken)
	}

	// Deleted and made again while the first one's request is in the air.
	gone := startHostileEndpoint(t, `{"access_token": "for-the-deleted-one", "token_type": "Bearer", "expires_in": 315360000}`, true)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/y", oauth2At(gone, "c"))
	mustSucceed(t, b, s, logical.DeleteOperation, "technical/y", nil)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/y", oauth2At(fresh, "d"))
	gone.Release()
	waitUntil(t, 10*time.Second, func() bool {
		b.flights.mu.Lock()
		defer b.flights.mu.Unlock()
		return gone.Requests() == 1 && len(b.flights.inAir) == 0
	})
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/y/creds", nil).Data; got["access_token"] != "from-the-new-endpoint" {
		t.Errorf("the credential made again serves %v", got["access_token"])
	}
}

// A reported failure of a technical token that has expired asks for a fresh one first (the
// engine retries), instead of breaking the process without a token request.
func TestReportOnExpiredTechnicalTokenRefreshesFirst(t *testing.T) {
	b, s := getTestBackend(t)
	h := startHostileEndpoint(t, fmt.Sprintf(goodToken, 1), false)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2At(h, "i"))
	mustSucceed(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": `[{"name": "svc", "credentials": [{"type": "technical", "name": "idp"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "r"})
	st, _ := b.getTokenState(t.Context(), s, "idp")
	expired := *st
	expired.ExpiresAt = time.Now().Add(-time.Minute)
	if err := b.putTokenState(t.Context(), s, "idp", &expired); err != nil {
		t.Fatal(err)
	}
	before := h.Requests()
	got := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "svc", "error": "credentials_expired"}).Data
	if got["action"] != "retry" || got["health"] != "running" || h.Requests() != before+1 {
		t.Errorf("a report on an expired token: %v, %d token requests", got, h.Requests()-before)
	}
}

// The refresh scheduler's timed path, on a fake clock: a token is re-created at its refresh
// point (refresh_fraction of its lifetime, less jitter), not before; a failed refresh keeps the
// old token served while valid and retries after the backoff.
func TestSchedulerRefreshesAtItsPoint(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	h := startHostileEndpoint(t, `{"access_token": "t", "token_type": "Bearer", "expires_in": 100}`, false)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2At(h, "i"))
	st, _ := b.getTokenState(t.Context(), s, "idp")
	// 0.67 × 100 s, pulled forward by at most 5 % of it.
	if at := st.NextRefresh.Sub(st.IssuedAt); at < 62*time.Second || at > 67*time.Second {
		t.Fatalf("refresh point %s after issue", at)
	}
	tick := func(d time.Duration) { clock.advance(d); b.refresher.worker.poke() }

	tick(60 * time.Second)            // before the point: nothing
	time.Sleep(50 * time.Millisecond) // a moment for a wrongly early refresh to show; nothing is awaited
	if n := h.Requests(); n != 1 {
		t.Fatalf("%d token requests before the refresh point", n)
	}
	tick(8 * time.Second)                      // past it: one refresh
	waitUntil(t, 10*time.Second, func() bool { // the request made, and its token stored
		st, _ := b.getTokenState(t.Context(), s, "idp")
		return h.Requests() == 2 && st.Generation == 2
	})

	h.Answer(`{"error": "temporarily_unavailable"}`)
	st, _ = b.getTokenState(t.Context(), s, "idp")
	tick(st.NextRefresh.Sub(clock.now()) + time.Second) // the next point: the refresh fails
	waitUntil(t, 10*time.Second, func() bool {
		st, _ := b.getTokenState(t.Context(), s, "idp")
		return st.Failures == 1
	})
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/idp/creds", nil).Data; got["access_token"] != "t" {
		t.Errorf("the old token is served while valid: %v", got)
	}
	tick(4 * time.Second) // within the 5 s backoff: no retry
	time.Sleep(50 * time.Millisecond)
	if n := h.Requests(); n != 3 {
		t.Errorf("%d token requests within the backoff, want 3", n)
	}
	h.Answer(`{"access_token": "t2", "token_type": "Bearer", "expires_in": 100}`)
	tick(2 * time.Second) // past it: the retry succeeds
	waitUntil(t, 10*time.Second, func() bool {
		got := request(t, b, s, logical.ReadOperation, "technical/idp/creds", nil)
		return got != nil && got.Data["access_token"] == "t2"
	})
}
