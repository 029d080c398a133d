package pecreds

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Token requests (DESIGN.md "Outbound calls", "Technical token refresh"). Every token request of
// a credential, scheduled or on request, runs in the credential's one flight: a goroutine of its
// own, outside every lock a request needs, under the credential's backoff and minimum interval.
// A request that needs the token waits on the flight for at most deps.tokenWait and then answers
// "retry" without changing anything; the flight goes on and stores its outcome.

// tokenWant is what a demand needs of a flight: any token (the stored one if it is not due), or,
// forced, one newer than the generation after, asked with the credential's version or later.
type tokenWant struct {
	force   bool
	after   int
	version int
}

// satisfiedBy says whether a flight's outcome answers the demand: a forced demand is answered by
// a newer token, or by a state that allows no token request now (the caller reads why).
func (w tokenWant) satisfiedBy(st *oauth.State, now time.Time, minInterval time.Duration) bool {
	if !w.force || st == nil {
		return true
	}
	if st.Generation > w.after && st.ConfigVersion >= w.version {
		return true
	}
	ok, _ := st.FetchAllowed(now, minInterval, w.version)
	return !ok
}

// tokenFlight is one credential's token request in the air. Waiters select on done (with their
// own timer), so a waiter costs no goroutine; st and err are set before done is closed.
type tokenFlight struct {
	done chan struct{}
	st   *oauth.State
	err  error
}

// flights are the flights in the air, by credential name, with the demands for a fresh token
// (force) and when each credential's last token request ended (lastAttempt: kept in memory too,
// so that a state that could not be stored still throttles). Guarded by mu.
type flights struct {
	mu          sync.Mutex
	inAir       map[string]*tokenFlight
	force       map[string]bool
	lastAttempt map[string]time.Time
}

func newFlights() flights {
	return flights{inAir: map[string]*tokenFlight{}, force: map[string]bool{}, lastAttempt: map[string]time.Time{}}
}

// demandToken starts the credential's flight, or joins the one in the air.
func (b *backend) demandToken(s logical.Storage, cfg *configEntry, name string, force bool) *tokenFlight {
	b.flights.mu.Lock()
	defer b.flights.mu.Unlock()
	if force {
		b.flights.force[name] = true
	}
	if f := b.flights.inAir[name]; f != nil {
		return f
	}
	f := &tokenFlight{done: make(chan struct{})}
	b.flights.inAir[name] = f
	go func() {
		st, err := b.runFlight(s, cfg, name)
		b.flights.mu.Lock()
		delete(b.flights.inAir, name)
		b.flights.mu.Unlock()
		f.st, f.err = st, err
		close(f.done)
	}()
	return f
}

// forget drops what the flights keep of a deleted credential.
func (b *backend) forgetFlights(name string) {
	b.flights.mu.Lock()
	defer b.flights.mu.Unlock()
	delete(b.flights.force, name)
	delete(b.flights.lastAttempt, name)
}

// awaitToken demands a token and waits for the flight at most deps.tokenWait. pending says the
// wait ran out: st is then the stored state, and the flight goes on.
func (b *backend) awaitToken(ctx context.Context, s logical.Storage, cfg *configEntry, name string, want tokenWant) (st *oauth.State, pending bool, err error) {
	timer := time.NewTimer(b.deps.tokenWait)
	defer timer.Stop()
	// A forced demand that joined a flight begun before it may need one more flight.
	for attempt := 0; attempt < 2; attempt++ {
		f := b.demandToken(s, cfg, name, want.force)
		select {
		case <-f.done:
			if f.err != nil {
				return nil, false, f.err
			}
			if st = f.st; want.satisfiedBy(st, b.deps.now(), b.deps.minFetchInterval) {
				if want.force {
					b.flights.mu.Lock()
					delete(b.flights.force, name) // answered: the next flight need not fetch for it
					b.flights.mu.Unlock()
				}
				return st, false, nil
			}
		case <-timer.C:
			st, err = b.getTokenState(ctx, s, name)
			return st, true, err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return st, false, nil
}

// runFlight is the body of a credential's flight: it asks the token endpoint when the token is
// due (or a fresh one is wanted, or the credential changed since its token) and the backoff and
// minimum interval allow, and stores the outcome. It runs in its own goroutine, bounded by the
// plugin's lifetime, never under a lock. A flight that asks nothing places the credential in the
// refresh schedule at the time it may ask.
func (b *backend) runFlight(s logical.Storage, cfg *configEntry, name string) (*oauth.State, error) {
	ctx := b.lifetime
	b.flights.mu.Lock()
	force, last := b.flights.force[name], b.flights.lastAttempt[name]
	delete(b.flights.force, name)
	b.flights.mu.Unlock()

	e, err := b.getTechnical(ctx, s, name)
	if err != nil || e == nil || !e.rotates() {
		return nil, err
	}
	cur, err := b.getTokenState(ctx, s, name)
	if err != nil {
		return nil, err
	}
	now := b.deps.now()
	gate := cur
	if cur == nil || cur.LastAttempt.Before(last) {
		g := oauth.State{}
		if cur != nil {
			g = *cur
		}
		g.LastAttempt = last // a request whose outcome could not be stored counts too
		gate = &g
	}
	if ok, _ := gate.FetchAllowed(now, b.deps.minFetchInterval, e.Version); !ok {
		b.refresher.schedule(name, gate)
		return cur, nil
	}
	if cur != nil && !force && !cur.Due(now) && cur.ConfigVersion >= e.Version {
		return cur, nil
	}
	return b.fetchAndStore(ctx, s, cfg, e, cur)
}

// fetchAndStore requests a token and stores the outcome over cur: the new token, or the failure
// with its backoff (the old token kept while valid). Only the storage write is under a lock. An
// outcome for a credential rewritten or deleted meanwhile is dropped: what is stored then comes
// back, and the token asked with the old settings is never served.
func (b *backend) fetchAndStore(ctx context.Context, s logical.Storage, cfg *configEntry, e *technicalEntry, cur *oauth.State) (*oauth.State, error) {
	var next oauth.State
	if cur != nil {
		next = *cur
	}
	tok, fetchErr := fetchToken(ctx, b.deps.http, e.Credential, b.deps.now)
	if ctx.Err() != nil {
		return nil, errors.New("the plugin is stopping") // an interrupted request is no failure
	}
	now := b.deps.now()
	b.flights.mu.Lock()
	b.flights.lastAttempt[e.Name] = now
	b.flights.mu.Unlock()
	if next.ConfigVersion < e.Version {
		next.Failures = 0 // the failures were of the settings before this write: the count starts again
	}
	if fetchErr != nil {
		next = next.Failed(fetchErr, now)
		b.Logger().Warn("token request failed", "technical", e.Name, "failures", next.Failures, "error", fetchErr)
	} else {
		next = next.Succeeded(tok, cfg.RefreshFraction, rand.Float64(), now)
		b.Logger().Debug("token refreshed", "technical", e.Name, "generation", next.Generation, "expires_at", formatTime(next.ExpiresAt))
	}
	next.ConfigVersion = e.Version
	stored, err := b.storeTokenState(ctx, s, e, &next)
	if err != nil {
		return nil, err
	}
	if !stored {
		return b.getTokenState(ctx, s, e.Name)
	}
	b.refresher.schedule(e.Name, &next)
	if fetchErr != nil {
		b.emit(ctx, eventTechnicalRefreshFailed, "technical", e.Name, "error", next.LastError)
	} else {
		b.emit(ctx, eventTechnicalRefreshed, "technical", e.Name, "expires_at", formatTime(next.ExpiresAt))
	}
	return &next, nil
}

// storeTokenState stores a flight's outcome unless the credential it was asked for is no longer
// the one stored (deleted, re-created, rewritten, or no longer oauth2); the refresh lock orders it
// with a delete, and is held for storage calls only.
func (b *backend) storeTokenState(ctx context.Context, s logical.Storage, asked *technicalEntry, st *oauth.State) (bool, error) {
	lock := locksutil.LockForKey(b.refreshLocks, asked.Name)
	lock.Lock()
	defer lock.Unlock()
	still, err := b.getTechnical(ctx, s, asked.Name)
	if err != nil || still == nil || !still.rotates() || still.Version != asked.Version || !still.CreatedTime.Equal(asked.CreatedTime) {
		return false, err
	}
	return true, b.putTokenState(ctx, s, asked.Name, st)
}

// validToken returns a token that may be served now: the stored one while valid, else the
// outcome of the credential's flight, waited for a bounded time; a noMaterial saying why there is
// none, and when to retry.
func (b *backend) validToken(ctx context.Context, s logical.Storage, cfg *configEntry, e *technicalEntry) (*oauth.State, error) {
	st, err := b.getTokenState(ctx, s, e.Name)
	if err != nil || st.Valid(b.deps.now()) {
		return st, err
	}
	st, pending, err := b.awaitToken(ctx, s, cfg, e.Name, tokenWant{})
	if err != nil {
		return nil, err
	}
	if t := b.technicalAsResolved(e, st, b.deps.now(), b.tokenPlan(e, st, pending)); t.Material == nil {
		return nil, noMaterial{reason: t.Unusable, retryAt: t.RetryAt, pending: t.Pending}
	}
	return st, nil
}

// tokenPlan says what may happen next for a credential without a valid token (technicalAsResolved).
type tokenPlan int

const (
	planFetch   tokenPlan = iota // a token request may be made now
	planPending                  // one is in flight and was not waited for
	planWait                     // none may be made before the backoff or minimum interval ends
)

// tokenPlan is the plan for a credential's stored state; pending when a wait on its flight ran out.
func (b *backend) tokenPlan(e *technicalEntry, st *oauth.State, pending bool) tokenPlan {
	if pending {
		return planPending
	}
	if ok, _ := st.FetchAllowed(b.deps.now(), b.deps.minFetchInterval, e.Version); !ok {
		return planWait
	}
	return planFetch
}

// technicalAsResolved is a technical credential as resolution sees it: a static credential's
// fields unless expired; an OAuth2 credential's token while valid, else why not and what may come
// of it (plan): a token request may be made now (NeedsToken), one is in flight (Pending), or none
// before the backoff or minimum interval ends (RetryAt). The credential's name answers as
// technical.
func (b *backend) technicalAsResolved(e *technicalEntry, st *oauth.State, now time.Time, plan tokenPlan) resolve.Technical {
	var m map[string]any
	switch {
	case !e.rotates() && e.Credential.Expired(now):
		return resolve.Technical{Unusable: fmt.Sprintf("technical credential %q expired at %s: write a new token to technical/%s",
			e.Name, e.Credential.Fields["expires_at"], e.Name)}
	case !e.rotates():
		m = e.Credential.Material()
	case st.Valid(now):
		m = st.Material(e.Name, now)
		delete(m, "name")
	default:
		_, next := st.FetchAllowed(now, b.deps.minFetchInterval, e.Version)
		return unusableToken(e.Name, st, plan, next)
	}
	m["technical"] = e.Name
	return resolve.Technical{Material: m}
}

// unusableToken says why an OAuth2 credential has no token to serve, and when it may.
func unusableToken(name string, st *oauth.State, plan tokenPlan, next time.Time) resolve.Technical {
	why := fmt.Sprintf("technical credential %q has no valid token", name)
	if st != nil && st.LastError != "" {
		why += ": " + st.LastError
	}
	switch plan {
	case planPending:
		return resolve.Technical{Pending: true, Unusable: fmt.Sprintf("technical credential %q has no valid token yet: its token request is in flight", name)}
	case planWait:
		return resolve.Technical{RetryAt: next, Unusable: why + "; no token request before " + formatTime(next)}
	}
	return resolve.Technical{NeedsToken: true, Unusable: why}
}

// noMaterial says why a technical credential has no usable material now: a reason, not a
// failure. Callers choose their answer (creds: 400 or 502; resolve: a skipped entry).
type noMaterial struct {
	reason  string
	pending bool      // a token request is in flight
	retryAt time.Time // no token request before then (backoff)
}

// retryable: a token may come without anyone's act (else the stored credential expired).
func (n noMaterial) retryable() bool { return n.pending || !n.retryAt.IsZero() }

func (n noMaterial) Error() string { return n.reason }

// retryAnswer is the retryable answer to a request that needed a token it could not have now: a
// 503 naming the credential and when to retry; nothing was changed.
func retryAnswer(msg string) (*logical.Response, error) {
	return nil, logical.CodedError(http.StatusServiceUnavailable, msg)
}

// whenToRetry words a retry time for a message.
func whenToRetry(at, now time.Time) string {
	if at.IsZero() || !at.After(now) {
		return "retry in a few seconds"
	}
	return fmt.Sprintf("retry after %s (in %s)", formatTime(at), at.Sub(now).Round(time.Second))
}
