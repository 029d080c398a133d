package pecreds

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// Keeping users' grants fresh (DESIGN.md "Technical token refresh", user grants): a process's
// current grant (oauth2_user with a refresh token) is refreshed at refresh_fraction of its access
// token's lifetime, less jitter, on the active node, by a scheduler of its own beside the technical
// tokens'. Each grant is in the queue once: popped, it is refreshed by one request in its
// provider's lane (grant_lanes.go), and the outcome places it again, so a grant has one refresh in
// the air at most. The request runs outside every
// lock; its outcome is kept under the process's lock by the lifecycle (GrantRefreshed), which drops
// it when the grant changed meanwhile. A rotated refresh token is stored there, with the new access
// token, before anything can serve that access token; the old one is never sent again, since the
// grant it belonged to is no longer held.

// grantRefresher schedules the refreshes of processes' grants, by grantRef key: each process's
// current grant, and the grants of its runtime layer (grant_runtime.go).
type grantRefresher struct {
	b           *backend
	worker      worker
	queue       *schedule.Queue
	lanes       *grantLanes
	mu          sync.Mutex
	plans       map[string]grantPlan // guarded by mu
	runtime     map[string][]string  // a process's runtime grants' keys; guarded by mu
	endedGrants map[string]uint64    // the grant a key held when its provider ended it; guarded by mu
}

// grantPlan is what the scheduler knows of a process's grant: which grant (a hash of its tokens,
// never the tokens), when it refreshes next, and the failures since its last refresh.
type grantPlan struct {
	key         uint64
	client      string // its lane (grant_lanes.go)
	next        time.Time
	failures    int
	lastError   string
	lastAttempt time.Time
}

func newGrantRefresher(b *backend) *grantRefresher {
	return &grantRefresher{b: b, worker: newWorker(), queue: schedule.NewQueue(), lanes: newGrantLanes(), plans: map[string]grantPlan{},
		runtime: map[string][]string{}, endedGrants: map[string]uint64{}}
}

func (g *grantRefresher) start(s logical.Storage) {
	g.worker.run(func(ctx context.Context) {
		limit := func() int { return g.b.grantRefreshConcurrency(ctx, s) }
		runQueue(ctx, g.queue, &g.worker, g.b.deps.now, limit, func(ctx context.Context, key string) {
			g.dispatch(ctx, s, key)
		})
	})
}

// stop ends the scheduler's loop, then waits for the refreshes in the air: each is given
// refreshStopGrace to be answered and kept, then cut short.
func (g *grantRefresher) stop() {
	g.worker.stop()
	g.lanes.calls.Wait()
}

// refreshable is the grant of cur when the plugin refreshes it: a grant with a refresh token.
func refreshable(cur *Credential) bool {
	return cur != nil && cur.Type == credential.GrantType && cur.Fields["refresh_token"] != ""
}

func grantKey(c *Credential) uint64 {
	h := fnv.New64a()
	for _, f := range []string{"client", "refresh_token", "access_token"} {
		_, _ = h.Write([]byte(c.Fields[f]))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// noteProcess places a stored process's grants in the schedule (putProcess, and the census's
// reading of every process when the plugin starts): a persistent process's current grant from its
// record, and the grants of its runtime layer. A process that failed has no grant to refresh; one
// that its current credentials broke, no current grant.
func (g *grantRefresher) noteProcess(p *lifecycle.Process, fraction float64) {
	switch {
	case p.Health == lifecycle.Failed || !p.HasCurrent || (p.Health == lifecycle.Broken && p.BrokenByCurrent):
		g.forget(p.ID)
	case p.KeepCredentials == lifecycle.KeepPersistent:
		g.note(p.ID, p.Current, fraction)
	}
	g.noteRuntime(p, fraction)
}

// note schedules the refresh of the grant a key names, unless that very grant is scheduled
// already (a write of the process that kept its grant moves nothing) or its provider ended it.
func (g *grantRefresher) note(id string, cur *Credential, fraction float64) {
	if !refreshable(cur) {
		g.forget(id)
		return
	}
	key := grantKey(cur)
	g.mu.Lock()
	defer g.mu.Unlock()
	prev, known := g.plans[id]
	if ended, ok := g.endedGrants[id]; (known && prev.key == key) || (ok && ended == key) {
		return
	}
	delete(g.endedGrants, id)
	now := g.b.deps.now()
	plan := grantPlan{key: key, client: cur.Fields["client"], next: refreshAt(cur, now, fraction, rand.Float64()), lastAttempt: prev.lastAttempt}
	if floor := prev.lastAttempt.Add(g.b.deps.minFetchInterval); known && plan.next.Before(floor) {
		plan.next = floor // no grant of a process is asked for sooner than the minimum interval
	}
	g.plans[id] = plan
	g.queue.Schedule(id, plan.next)
	g.worker.poke()
}

func (g *grantRefresher) forget(id string) {
	g.mu.Lock()
	delete(g.plans, id)
	g.mu.Unlock()
	g.queue.Unschedule(id)
}

// refreshAt is when a grant seen at now is refreshed: at fraction of what is left of its access
// token's life, pulled forward by jitter (in [0, 1)) times oauth.Jitter of it — a grant the plugin
// just refreshed has its whole life left, so this is fraction of its lifetime, as for technical
// tokens; one handed over part-used is refreshed early rather than late. An expired access token
// is refreshed now.
func refreshAt(cur *Credential, now time.Time, fraction, jitter float64) time.Time {
	exp, ok := cur.ExpiresAt()
	if !ok || !exp.After(now) {
		return now
	}
	left := exp.Sub(now)
	return now.Add(time.Duration(float64(left)*fraction) - time.Duration(jitter*oauth.Jitter*float64(left)))
}

// retryAt is when a process's grant is refreshed next, and why its last refresh failed (zero and
// "" when none failed): what a resolve that finds its access token expired answers.
func (g *grantRefresher) retryAt(id string) (time.Time, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	plan, ok := g.plans[id]
	if !ok {
		return time.Time{}, ""
	}
	return plan.next, plan.lastError
}

// refresh refreshes a grant whose time has come. The network call is made holding no lock; only
// the outcome's keeping takes the process's lock.
//
// The process is read from storage, not from the cache: a plugin whose Vault is gone (its node
// killed) fails here and sends nothing. From the cache it would go on refreshing for as long as it
// lives, spending refresh tokens whose answers it can no longer store and that the next active
// node still holds — with rotation and no grace period, each such grant would end. So only the
// refreshes already in the air when the node died can be lost.
func (g *grantRefresher) refresh(ctx context.Context, s logical.Storage, ref grantRef) {
	b := g.b
	id := ref.key()
	p, err := readJSON[lifecycle.Process](ctx, s, processStoragePrefix+ref.process, fmt.Sprintf("process %q", ref.process))
	var cur *Credential
	if err == nil && p != nil {
		cur, err = g.held(ctx, s, p, ref)
	}
	if err != nil {
		g.failed(id, nil, fmt.Errorf("reading the process: %w", err))
		return
	}
	g.mu.Lock()
	plan, ok := g.plans[id]
	g.mu.Unlock()
	if p == nil || !ok || !refreshable(cur) || plan.key != grantKey(cur) {
		return // ended, or its grant changed: a write placed the new one
	}
	refreshed, err := g.ask(ctx, s, cur)
	if ctx.Err() != nil {
		return // stopped and past its grace: an interrupted request is no failure, and the next plugin asks again
	}
	g.mu.Lock()
	if plan, ok := g.plans[id]; ok {
		plan.lastAttempt = b.deps.now()
		g.plans[id] = plan
	}
	g.mu.Unlock()
	switch {
	case errors.Is(err, oauth.ErrGrantEnded):
		if err := g.endedAt(ctx, s, ref, cur); err != nil {
			g.failed(id, cur, fmt.Errorf("keeping the grant's end: %w", err)) // asked again, and told again
		}
	case err != nil:
		g.failed(id, cur, err)
	default:
		if err := g.keepAt(ctx, s, ref, cur, refreshed); err != nil {
			// The rotated refresh token may be lost: the next refresh sends the old one, and the
			// provider's answer (its reuse grace, or invalid_grant) decides; never a silent loop.
			g.failed(id, cur, err)
		}
	}
}

// ask sends the refresh request of a grant through its client, an oauth2 technical credential.
func (g *grantRefresher) ask(ctx context.Context, s logical.Storage, cur *Credential) (*Credential, error) {
	b := g.b
	name := cur.Fields["client"]
	e, err := b.getTechnical(ctx, s, name)
	switch {
	case err != nil:
		return nil, err
	case e == nil || e.Credential.Type != "oauth2":
		return nil, fmt.Errorf("the grant's client, technical credential %q, is not an oauth2 credential", name)
	}
	conf, err := clientOf(e.Credential)
	if err != nil {
		return nil, err
	}
	tok, err := oauth.Refresh(ctx, b.deps.http, outboundWording, conf, cur.Fields["refresh_token"], b.deps.now)
	if err != nil {
		return nil, err
	}
	if tok.ExpiresAt.IsZero() {
		return nil, errors.New("the token endpoint answered no expires_in: a grant's access token must state its lifetime")
	}
	next := Credential{Type: cur.Type, Label: cur.Label, Fields: make(map[string]string, len(cur.Fields))}
	for k, v := range cur.Fields {
		next.Fields[k] = v
	}
	next.Fields["access_token"], next.Fields["token_type"] = tok.AccessToken, tok.TokenType
	// Whole seconds, cut: the stated expiry is never later than the real one.
	next.Fields["expires_at"] = tok.ExpiresAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	next.Fields["refresh_token"] = tok.RefreshToken
	return &next, nil
}

// keep stores a refreshed grant as the process's current credentials, through the lifecycle's
// writer under the process's lock; the write places it in the schedule again (putProcess,
// putCurrent). A grant that changed meanwhile keeps its own place.
func (g *grantRefresher) keep(ctx context.Context, s logical.Storage, id string, from, refreshed *Credential) error {
	b := g.b
	w, st, unlock, err := b.lockLife(ctx, s, id)
	defer unlock()
	if err != nil || st.Process == nil {
		return err
	}
	ev := lifecycle.Event{Kind: lifecycle.GrantRefreshed, RefreshedFrom: from, Credential: refreshed}
	if st.Process.KeepCredentials == lifecycle.KeepTransient {
		if ev.Held, err = b.getCurrent(ctx, s, st.Process); err != nil {
			return err
		}
	}
	next, err := w.change(ctx, st, ev)
	if err != nil {
		return fmt.Errorf("keeping the refreshed grant: %w", err)
	}
	held := next.Process.Current
	if next.Process.KeepCredentials == lifecycle.KeepTransient {
		if held, err = b.getCurrent(ctx, s, next.Process); err != nil {
			return err
		}
	}
	if !lifecycle.SameGrant(held, refreshed) {
		b.Logger().Debug("grant refresh dropped: the process's current credentials changed meanwhile", "process", id)
		return nil
	}
	b.Logger().Debug("grant refreshed", "process", id, "expires_at", refreshed.Fields["expires_at"])
	return nil
}

// failed backs a grant's refresh off after a failure that may pass (the endpoint unreachable,
// refusing the client, answering nonsense): the still-valid access token is served meanwhile.
func (g *grantRefresher) failed(id string, cur *Credential, err error) {
	g.mu.Lock()
	plan, ok := g.plans[id]
	if !ok || (cur != nil && plan.key != grantKey(cur)) {
		g.mu.Unlock()
		return
	}
	plan.failures++
	plan.lastError = err.Error()
	plan.next = g.b.deps.now().Add(oauth.Backoff.After(plan.failures))
	g.plans[id] = plan
	g.mu.Unlock()
	g.queue.Schedule(id, plan.next)
	g.worker.poke()
	ref := parseGrantRef(id)
	g.b.Logger().Warn("grant refresh failed", "process", ref.process, "runtime_service", ref.service, "failures", plan.failures, "error", err)
}

// refreshFraction is config's refresh_fraction; its default when config cannot be read (a grant
// is then refreshed at the default point, never later than the last moment).
func (b *backend) refreshFraction(ctx context.Context, s logical.Storage) float64 {
	cfg, err := b.getConfig(ctx, s)
	if err != nil || cfg == nil {
		return defaultRefreshFraction
	}
	return cfg.RefreshFraction
}

// grantRefreshConcurrency is config's grant_refresh_concurrency: how many grant refreshes may be
// in the air at once for each provider (the default when the config cannot be read).
func (b *backend) grantRefreshConcurrency(ctx context.Context, s logical.Storage) int {
	cfg, err := b.getConfig(ctx, s)
	if err != nil || cfg.GrantRefreshConcurrency < 1 {
		return defaultGrantRefreshConcurrency
	}
	return cfg.GrantRefreshConcurrency
}
