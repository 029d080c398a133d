package pecreds

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
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

// refresher re-creates tokens on time: oauth.Queue says which credential is due next; one loop
// on the active node waits for it and refreshes, a bounded number at once.
type refresher struct {
	b      *backend
	worker worker
	queue  *oauth.Queue
}

func newRefresher(b *backend) *refresher {
	return &refresher{b: b, worker: newWorker(), queue: oauth.NewQueue()}
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
func (r *refresher) schedule(name string, st *oauth.State) {
	at := time.Now()
	switch {
	case st == nil:
	case !st.NextRefresh.IsZero():
		at = st.NextRefresh
	case st.Valid(at):
		r.unschedule(name)
		return
	}
	r.scheduleAt(name, at)
}

func (r *refresher) scheduleAt(name string, at time.Time) {
	r.queue.Schedule(name, at)
	r.worker.poke()
}

func (r *refresher) unschedule(name string) {
	r.queue.Unschedule(name)
	r.worker.poke()
}

func (r *refresher) loop(ctx context.Context, s logical.Storage) {
	slots := make(chan struct{}, maxConcurrentRefreshes)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		name, wait := r.queue.PopDue(time.Now())
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
	var st *oauth.State
	if err == nil {
		st, err = r.b.refreshToken(ctx, s, e, false)
	}
	switch {
	case ctx.Err() != nil:
		// stopped
	case err != nil:
		r.b.Logger().Error("scheduled token refresh failed", "technical", name, "error", err)
		r.scheduleAt(name, time.Now().Add(oauth.MinBackoff))
	default:
		r.schedule(name, st)
	}
}

// refreshToken re-creates a credential's token when it is due (always when force), sharing one
// token request among concurrent callers. A failed request is recorded in the state, not
// returned: the error is for storage failures.
func (b *backend) refreshToken(ctx context.Context, s logical.Storage, e *technicalEntry, force bool) (*oauth.State, error) {
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
		case cur != nil && !force && !cur.Due(time.Now()):
			return cur, nil // refreshed meanwhile
		case cur != nil && force && cur.LastRefresh.After(asked) && cur.Valid(time.Now()):
			return cur, nil // a fresh token came while this one waited
		}
		return b.fetchAndStore(ctx, s, e, cur)
	})
	if err != nil {
		return nil, err
	}
	return v.(*oauth.State), nil
}

// fetchAndStore requests a token and stores the outcome over cur: the new token, or the failure
// with its backoff (the old token kept while valid). The caller holds the refresh lock.
func (b *backend) fetchAndStore(ctx context.Context, s logical.Storage, e *technicalEntry, cur *oauth.State) (*oauth.State, error) {
	var next oauth.State
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
		next = next.Failed(fetchErr, now)
		b.Logger().Warn("token request failed", "technical", e.Name, "failures", next.Failures, "error", fetchErr)
	} else {
		next = next.Succeeded(tok, cfg.RefreshFraction, rand.Float64(), now)
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
}

// validToken returns a token that may be served now, fetching one when none is valid; a
// noMaterial when none is to be had.
func (b *backend) validToken(ctx context.Context, s logical.Storage, e *technicalEntry) (*oauth.State, error) {
	st, err := b.getTokenState(ctx, s, e.Name)
	if err != nil {
		return nil, err
	}
	if st.Valid(time.Now()) {
		return st, nil
	}
	if st, err = b.refreshToken(ctx, s, e, false); err != nil {
		return nil, err
	}
	if !st.Valid(time.Now()) {
		return nil, noMaterial{reason: fmt.Sprintf("technical credential %q has no valid token: %s", e.Name, st.LastError), upstream: true}
	}
	b.refresher.schedule(e.Name, st)
	return st, nil
}

func (b *backend) getTokenState(ctx context.Context, s logical.Storage, name string) (*oauth.State, error) {
	return cachedGet(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}

func (b *backend) putTokenState(ctx context.Context, s logical.Storage, name string, st *oauth.State) error {
	return cachedPut(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name), st)
}

func (b *backend) deleteTokenState(ctx context.Context, s logical.Storage, name string) error {
	return cachedDelete(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}

// outboundWording words an outbound call's failure in our own words (outbound.go).
var outboundWording = oauth.DescribeHTTP{Status: describeStatus, Transport: describeTransportError}

// fetchToken asks an oauth2 credential's token endpoint for a new token.
func fetchToken(ctx context.Context, client *http.Client, c Credential) (oauth.Token, error) {
	return oauth.Fetch(ctx, client, outboundWording, oauth.Config{
		TokenURL: c.Fields["token_url"], ClientID: c.Fields["client_id"], ClientSecret: c.Fields["client_secret"],
		Audience: c.Fields["audience"], Scopes: c.Lists["scopes"],
	}, time.Now)
}
