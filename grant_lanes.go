package pecreds

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Grants refresh in lanes, one for each provider — a grant's client, the oauth2 technical
// credential that names its token endpoint and client — each with grant_refresh_concurrency
// places. A refresh holds a place of its own lane while it is in the air, and nothing else: the
// scheduler's loop only hands it over. So a provider that is slow, or hangs until the request's
// timeout, holds back its own grants' refreshes and never another provider's (DESIGN.md "Outbound
// calls": a slow endpoint delays only the requests that need it), and no provider is sent more
// than grant_refresh_concurrency refreshes at once. A grant whose lane is full waits in the lane,
// off the schedule, and goes back to it, due at once, when a place frees.

// grantLanes are the lanes of the grant refreshes, by client name. A process's grant has one
// refresh in the air at most: popped again meanwhile (a new grant written, due at once), it goes
// back to the schedule when that refresh ends.
type grantLanes struct {
	mu      sync.Mutex
	busy    map[string]int      // client -> refreshes in the air
	waiting map[string][]string // client -> process ids waiting for a place, oldest first
	parked  map[string]bool     // the process ids in waiting
	inAir   map[string]bool     // the process ids whose refresh is in the air
	again   map[string]bool     // process ids popped while in the air
	calls   sync.WaitGroup      // the refreshes in the air
}

func newGrantLanes() *grantLanes {
	return &grantLanes{busy: map[string]int{}, waiting: map[string][]string{}, parked: map[string]bool{},
		inAir: map[string]bool{}, again: map[string]bool{}}
}

// enter takes a place in client's lane for process id's refresh, or answers false: its refresh
// is in the air already (id goes back to the schedule when it ends), or the lane's limit places
// are all taken (id waits in the lane).
func (l *grantLanes) enter(client, id string, limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.inAir[id]:
		l.again[id] = true
		return false
	case l.parked[id]:
		return false
	case l.busy[client] >= max(limit, 1):
		l.parked[id] = true
		l.waiting[client] = append(l.waiting[client], id)
		return false
	}
	l.busy[client]++
	l.inAir[id] = true
	return true
}

// leave ends process id's refresh in client's lane, and answers the processes to schedule again
// at once: id, when it was popped meanwhile, and the one that waited longest for a place.
func (l *grantLanes) leave(client, id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[client]--; l.busy[client] <= 0 {
		delete(l.busy, client)
	}
	delete(l.inAir, id)
	var out []string
	if l.again[id] {
		delete(l.again, id)
		out = append(out, id)
	}
	if q := l.waiting[client]; len(q) > 0 {
		out = append(out, q[0])
		delete(l.parked, q[0])
		if l.waiting[client] = q[1:]; len(q) == 1 {
			delete(l.waiting, client)
		}
	}
	return out
}

// dispatch hands a due grant's refresh to its provider's lane: it runs there in its own
// goroutine, or waits for a place. A grant the schedule no longer holds is not refreshed.
func (g *grantRefresher) dispatch(ctx context.Context, s logical.Storage, id string) {
	g.mu.Lock()
	plan, ok := g.plans[id]
	g.mu.Unlock()
	if !ok {
		return
	}
	if !g.lanes.enter(plan.client, id, g.b.grantRefreshConcurrency(ctx, s)) {
		return
	}
	g.lanes.calls.Add(1)
	go func() {
		defer g.lanes.calls.Done()
		defer func() {
			for _, next := range g.lanes.leave(plan.client, id) {
				g.queue.Schedule(next, g.b.deps.now())
			}
			g.worker.poke()
		}()
		if ctx.Err() != nil {
			return // stopping: no refresh starts now
		}
		call, done := withStopGrace(ctx, refreshStopGrace)
		defer done()
		g.refresh(call, s, parseGrantRef(id))
	}()
}

// refreshStopGrace is how long a grant refresh in the air when the plugin stops (a reload, a
// step-down) is given to be answered and kept. A provider that rotates refresh tokens has spent
// the old one once it answers: an answer dropped at a stop would leave the next plugin only a
// spent token, and end the grant at a strict provider. Stopping waits this long at most.
const refreshStopGrace = 5 * time.Second

// withStopGrace is a context for one call begun under ctx that outlives ctx's end by grace: the
// call finishes (its own timeouts still apply) unless it takes longer than that after the stop.
func withStopGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	call, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return call, func() { stop(); cancel() }
}

// waitingAll takes every process id out of the lanes' waiting lists.
func (l *grantLanes) waitingAll() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for client, q := range l.waiting {
		out = append(out, q...)
		delete(l.waiting, client)
	}
	clear(l.parked)
	return out
}

// reopenLanes puts the grants that wait in the lanes back on the schedule, due at once, and wakes
// it: after a config write, a grant_refresh_concurrency raised lets them in at once.
func (g *grantRefresher) reopenLanes() {
	now := g.b.deps.now()
	for _, id := range g.lanes.waitingAll() {
		g.queue.Schedule(id, now)
	}
	g.worker.poke()
}
