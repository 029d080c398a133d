package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// This file re-creates oauth2 technical tokens before they expire: a scheduler started in
// InitializeFunc on the active node, rebuilt from storage after every restart, swept by
// PeriodicFunc, and stopped by Clean. The process lease (Renew, Revoke) is path_process_lease.go;
// the token state's storage, store_technical.go.

// maxConcurrentRefreshes bounds the token requests the scheduler has in flight at once.
const maxConcurrentRefreshes = 16

// refresher re-creates tokens on time: schedule.Queue says which credential is due next; one loop
// on the active node waits for it and refreshes, a bounded number at once.
type refresher struct {
	b      *backend
	worker worker
	queue  *schedule.Queue
}

func newRefresher(b *backend) *refresher {
	return &refresher{b: b, worker: newWorker(), queue: schedule.NewQueue()}
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
	now := r.b.deps.now()
	at := now
	switch {
	case st == nil:
	case !st.NextRefresh.IsZero():
		at = st.NextRefresh
	case st.Valid(now):
		r.unschedule(name)
		return
	}
	// Never sooner than a token request may be made (the minimum interval, the backoff): a token
	// whose refresh point comes before that would otherwise be popped again at once, and again.
	if _, next := st.FetchAllowed(now, r.b.deps.minFetchInterval, 0); next.After(at) {
		at = next
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

// loop is the scheduler: runQueue hands each due credential to a bounded group of refreshes.
func (r *refresher) loop(ctx context.Context, s logical.Storage) {
	runQueue(ctx, r.queue, &r.worker, r.b.deps.now, func() int { return maxConcurrentRefreshes }, func(ctx context.Context, name string) {
		r.refreshScheduled(ctx, s, name)
	})
}

// runQueue is a scheduler's loop: a long-lived loop woken by the queue's next due time or a poke,
// which hands each due name to fn in its own goroutine, at most limit() at once (asked before
// each call, so a config change takes effect without a restart; a poke makes the loop look
// again). It returns when ctx ends, once the calls in flight are done.
func runQueue(ctx context.Context, q *schedule.Queue, w *worker, now func() time.Time, limit func() int, fn func(context.Context, string)) {
	var (
		running  sync.WaitGroup
		inFlight atomic.Int64
		finished = make(chan struct{}, 1) // a call ended: a place may be free
	)
	defer running.Wait() // stop waits for the calls in flight
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		if inFlight.Load() >= int64(max(limit(), 1)) {
			select {
			case <-ctx.Done():
			case <-finished:
			case <-w.wake:
			}
			continue
		}
		name, wait := q.PopDue(now())
		if name == "" {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-w.wake:
			case <-timer.C:
			}
			continue
		}
		inFlight.Add(1)
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() {
				inFlight.Add(-1)
				select {
				case finished <- struct{}{}:
				default:
				}
			}()
			fn(ctx, name)
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
	var cfg *configEntry
	if err == nil {
		cfg, err = r.b.getConfig(ctx, s)
	}
	if err == nil {
		f := r.b.demandToken(s, cfg, name, false)
		select {
		case <-f.done:
			st, err = f.st, f.err
		case <-ctx.Done():
			return
		}
	}
	switch {
	case ctx.Err() != nil:
		// stopped
	case err != nil:
		r.b.Logger().Error("scheduled token refresh failed", "technical", name, "error", err)
		r.scheduleAt(name, r.b.deps.now().Add(oauth.MinBackoff))
	case st != nil:
		r.schedule(name, st) // the flight scheduled what it stored; a token it did not ask for is placed here
	}
}

// outboundWording words an outbound call's failure in our own words (outbound.go).
var outboundWording = oauth.DescribeHTTP{Status: describeStatus, Transport: describeTransportError}

// fetchToken asks an oauth2 credential's token endpoint for a new token, the client
// authenticated by the credential's auth_method.
func fetchToken(ctx context.Context, client *http.Client, c Credential, now func() time.Time) (oauth.Token, error) {
	conf, err := clientOf(c)
	if err != nil {
		return oauth.Token{}, err
	}
	return oauth.Fetch(ctx, client, outboundWording, conf, now)
}

// clientOf is how an oauth2 credential asks its token endpoint: its URL, scopes and audience, and
// how its client authenticates.
func clientOf(c Credential) (oauth.Config, error) {
	conf := oauth.Config{
		TokenURL: c.Fields["token_url"], ClientID: c.Fields["client_id"], ClientSecret: c.Fields["client_secret"],
		Audience: c.Fields["audience"], Scopes: c.Lists["scopes"], AuthMethod: c.AuthMethod(),
	}
	if conf.AuthMethod == credential.AuthPrivateKeyJWT {
		key, err := credential.ParseSigningKey(c.Fields["private_key"]) // its error quotes nothing of the key
		if err != nil {
			return oauth.Config{}, err
		}
		conf.SigningKey, conf.KeyID = key, c.Fields["key_id"]
	}
	return conf, nil
}
