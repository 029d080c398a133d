package pecreds

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// This file holds the process lease (Renew, Revoke), and re-creates oauth2 technical tokens
// before they expire: a scheduler started in InitializeFunc on the active node, rebuilt from
// storage after every restart, swept by PeriodicFunc, and stopped by Clean.

// processSecretType is the secret type of a process's lease.
const processSecretType = "process"

func processSecret(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: processSecretType,
		Fields: map[string]*framework.FieldSchema{
			"id": {Type: framework.TypeString, Description: "The process id."},
		},
		Renew:  b.processRenew,
		Revoke: b.processRevoke,
	}
}

// leaseProcess is the process id and nonce a lease was issued for.
func leaseProcess(req *logical.Request) (id, nonce string, err error) {
	id, ok := req.Secret.InternalData["process_id"].(string)
	if !ok || id == "" {
		return "", "", fmt.Errorf("the lease carries no process id")
	}
	nonce, _ = req.Secret.InternalData["nonce"].(string)
	return id, nonce, nil
}

// processRenew extends a live process's lease by process_ttl (or the increment asked for);
// Vault caps it at process_max_ttl and the mount's limit.
func (b *backend) processRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, nonce, err := leaseProcess(req)
	if err != nil {
		return nil, err
	}
	p, err := b.getProcess(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if p == nil || (nonce != "" && p.Nonce != nonce) {
		return nil, fmt.Errorf("process %q has ended: its lease cannot be renewed", id)
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = cfg.ProcessTTL
	if req.Secret.Increment > 0 {
		resp.Secret.TTL = req.Secret.Increment
	}
	resp.Secret.MaxTTL = cfg.ProcessMaxTTL
	return resp, nil
}

// processRevoke ends the process. Idempotent: the process may already be deleted.
func (b *backend) processRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, nonce, err := leaseProcess(req)
	if err != nil {
		return nil, err
	}
	return nil, b.endProcess(ctx, req.Storage, id, nonce)
}

const technicalStatePrefix = "technical-state/"

// maxConcurrentRefreshes bounds the token requests the scheduler has in flight at once.
const maxConcurrentRefreshes = 16

// refresher schedules token refreshes: one timer for the earliest due refresh of a min-heap.
type refresher struct {
	b      *backend
	worker worker

	mu    sync.Mutex // guards queue and index
	queue refreshQueue
	index map[string]*refreshItem
}

func newRefresher(b *backend) *refresher {
	return &refresher{b: b, worker: newWorker(), index: map[string]*refreshItem{}}
}

// start rebuilds the schedule from storage and runs the scheduler until stop.
func (r *refresher) start(s logical.Storage) error {
	if err := r.rebuild(context.Background(), s); err != nil {
		return err
	}
	r.worker.run(func(ctx context.Context) { r.loop(ctx, s) })
	return nil
}

// stop ends the scheduler and waits for the refreshes in flight.
func (r *refresher) stop() { r.worker.stop() }

// rebuild schedules every oauth2 technical credential from what storage holds, so that a token
// that is still valid is reused, not fetched again.
func (r *refresher) rebuild(ctx context.Context, s logical.Storage) error {
	names, err := s.List(ctx, technicalStoragePrefix)
	if err != nil {
		return fmt.Errorf("listing technical credentials: %w", err)
	}
	for _, name := range names {
		e, err := r.b.getTechnical(ctx, s, name)
		if err != nil {
			return err
		}
		if e == nil || !e.rotates() {
			continue
		}
		st, err := r.b.getTokenState(ctx, s, name)
		if err != nil {
			return err
		}
		r.schedule(name, st)
	}
	return nil
}

// schedule (re)places a credential in the queue at its next refresh (or retry, after a failure);
// now, when it has no token yet; nowhere, when its token never expires.
func (r *refresher) schedule(name string, st *tokenState) {
	at := time.Now()
	switch {
	case st == nil:
	case !st.NextRefresh.IsZero():
		at = st.NextRefresh
	case st.valid(at):
		r.unschedule(name)
		return
	}
	r.scheduleAt(name, at)
}

func (r *refresher) scheduleAt(name string, at time.Time) {
	r.mu.Lock()
	if it, ok := r.index[name]; ok {
		it.at = at
		heap.Fix(&r.queue, it.pos)
	} else {
		it := &refreshItem{name: name, at: at}
		heap.Push(&r.queue, it)
		r.index[name] = it
	}
	r.mu.Unlock()
	r.worker.poke()
}

func (r *refresher) unschedule(name string) {
	r.mu.Lock()
	if it, ok := r.index[name]; ok {
		heap.Remove(&r.queue, it.pos)
		delete(r.index, name)
	}
	r.mu.Unlock()
	r.worker.poke()
}

// popDue takes the earliest item if it is due, else says how long until it is.
func (r *refresher) popDue(now time.Time) (name string, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return "", time.Hour
	}
	it := r.queue[0]
	if wait := it.at.Sub(now); wait > 0 {
		return "", wait
	}
	heap.Pop(&r.queue)
	delete(r.index, it.name)
	return it.name, 0
}

func (r *refresher) loop(ctx context.Context, s logical.Storage) {
	slots := make(chan struct{}, maxConcurrentRefreshes)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		name, wait := r.popDue(time.Now())
		if name == "" {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-r.worker.wake:
			case <-timer.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		r.worker.running.Add(1)
		go func() {
			defer func() { <-slots; r.worker.running.Done() }()
			r.refreshScheduled(ctx, s, name)
		}()
	}
}

// refreshScheduled refreshes one credential whose time has come, and schedules its next refresh.
func (r *refresher) refreshScheduled(ctx context.Context, s logical.Storage, name string) {
	e, err := r.b.getTechnical(ctx, s, name)
	if err == nil && (e == nil || !e.rotates()) {
		return // deleted, or no longer oauth2
	}
	var st *tokenState
	if err == nil {
		st, err = r.b.refreshToken(ctx, s, e, false)
	}
	switch {
	case ctx.Err() != nil:
		// stopped
	case err != nil:
		r.b.Logger().Error("scheduled token refresh failed", "technical", name, "error", err)
		r.scheduleAt(name, time.Now().Add(minBackoff))
	default:
		r.schedule(name, st)
	}
}

// refreshToken re-creates a credential's token when it is due (always when force), sharing one
// token request among concurrent callers. A failed request is recorded in the state, not
// returned: the error is for storage failures.
func (b *backend) refreshToken(ctx context.Context, s logical.Storage, e *technicalEntry, force bool) (*tokenState, error) {
	// A forced refresh never joins a flight that may answer "not due"; and the work outlives
	// the request that started it, since others wait on it.
	key := e.Name
	if force {
		key += "\x00force"
	}
	asked := time.Now()
	ctx = context.WithoutCancel(ctx)
	v, err, _ := b.tokenFlights.Do(key, func() (any, error) {
		// One refresh of a credential at a time (forced and scheduled flights included), so a
		// slow one never writes back over a newer token; a delete waits for it too.
		lock := locksutil.LockForKey(b.refreshLocks, e.Name)
		lock.Lock()
		defer lock.Unlock()
		cur, err := b.getTokenState(ctx, s, e.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case cur != nil && !force && !cur.due(time.Now()):
			return cur, nil // refreshed meanwhile
		case cur != nil && force && cur.LastRefresh.After(asked) && cur.valid(time.Now()):
			return cur, nil // a fresh token came while this one waited
		}
		var next tokenState
		if cur != nil {
			next = *cur
		}
		cfg, err := b.getConfig(ctx, s)
		if err != nil {
			return nil, err
		}
		// The request outlives the caller that started it (others share it); Clean ends it.
		tok, fetchErr := fetchToken(b.lifetime, b.httpClient, e.Credential)
		if b.lifetime.Err() != nil {
			return nil, errors.New("the plugin is stopping") // an interrupted request is no failure
		}
		now := time.Now()
		if fetchErr != nil {
			next = next.failed(fetchErr, now)
			b.Logger().Warn("token request failed", "technical", e.Name, "failures", next.Failures, "error", fetchErr)
		} else {
			next = next.succeeded(tok, cfg.RefreshFraction, now)
			b.Logger().Debug("token refreshed", "technical", e.Name, "generation", next.Generation, "expires_at", formatTime(next.ExpiresAt))
		}
		// A credential deleted meanwhile keeps no token in storage.
		if still, err := b.getTechnical(ctx, s, e.Name); err != nil || still == nil {
			return &next, err
		}
		if err := b.putTokenState(ctx, s, e.Name, &next); err != nil {
			return nil, err
		}
		if fetchErr != nil {
			b.emit(ctx, eventTechnicalRefreshFailed, "technical", e.Name, "error", next.LastError)
		} else {
			b.emit(ctx, eventTechnicalRefreshed, "technical", e.Name, "expires_at", formatTime(next.ExpiresAt))
		}
		return &next, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tokenState), nil
}

// validToken returns a token that may be served now, fetching one when none is valid.
func (b *backend) validToken(ctx context.Context, s logical.Storage, e *technicalEntry) (*tokenState, error) {
	st, err := b.getTokenState(ctx, s, e.Name)
	if err != nil {
		return nil, err
	}
	if st.valid(time.Now()) {
		return st, nil
	}
	if st, err = b.refreshToken(ctx, s, e, false); err != nil {
		return nil, err
	}
	if !st.valid(time.Now()) {
		return nil, logical.CodedError(http.StatusBadGateway,
			fmt.Sprintf("technical credential %q has no valid token: %s", e.Name, st.LastError))
	}
	b.refresher.schedule(e.Name, st)
	return st, nil
}

func (b *backend) getTokenState(ctx context.Context, s logical.Storage, name string) (*tokenState, error) {
	return cachedGet(ctx, b, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}

func (b *backend) putTokenState(ctx context.Context, s logical.Storage, name string, st *tokenState) error {
	return cachedPut(ctx, b, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name), st)
}

func (b *backend) deleteTokenState(ctx context.Context, s logical.Storage, name string) error {
	return cachedDelete(ctx, b, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}

// refreshItem is one credential in the refresh queue.
type refreshItem struct {
	name string
	at   time.Time
	pos  int
}

// refreshQueue is a min-heap of refresh times (container/heap).
type refreshQueue []*refreshItem

func (q refreshQueue) Len() int           { return len(q) }
func (q refreshQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q refreshQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].pos, q[j].pos = i, j
}
func (q *refreshQueue) Push(x any) {
	it, _ := x.(*refreshItem)
	it.pos = len(*q)
	*q = append(*q, it)
}
func (q *refreshQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
