package pecreds

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"

	"github.com/pecreds/vault-plugin-pecreds/internal/cache"
	"github.com/pecreds/vault-plugin-pecreds/internal/census"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// What a backend holds — its dependencies, locks, caches, indexes and background workers — and
// the worker that runs each background loop. backend.go builds it and ties it to Vault; each
// other file defines a part of what it does, so none of them needs the wiring.

// backend is one mount's pecreds backend.
type backend struct {
	*framework.Backend

	// registryLocks and technicalLocks serialise the read-modify-write of one object.
	registryLocks  []*locksutil.LockEntry
	technicalLocks []*locksutil.LockEntry
	processLocks   []*locksutil.LockEntry
	// refreshLocks serialise a credential's token refreshes with each other and its delete.
	refreshLocks []*locksutil.LockEntry
	// configLock serialises config writes.
	configLock sync.Mutex

	// cacheLock guards config (with cacheGen) and transientCurrent. The hot path is served from
	// memory, since every storage access is a gRPC round trip to Vault; the caches below keep
	// their own order (internal/cache).
	cacheLock sync.RWMutex
	// cacheGen grows with every config write and invalidation: a config read from storage is
	// kept only if nothing changed meanwhile, so a stale read never overwrites.
	cacheGen uint64
	config   *configEntry
	// The few objects an operator writes are held whole; processes, their current credentials
	// and tasks, of which there may be 100,000s, in bounded LRUs.
	registries  *cache.Whole[registryEntry]
	technicals  *cache.Whole[technicalEntry]
	tokenStates *cache.Whole[oauth.State]
	processes   *cache.Bounded[lifecycle.Process]
	// census keeps the counts status shows and the usage index, as processes change.
	census *census.Census
	tasks  *cache.Bounded[lifecycle.Task]

	// transientCurrent is the only copy of transient processes' current credentials: lost,
	// by design, when the plugin restarts. Guarded by cacheLock.
	transientCurrent map[string]*Credential

	deps deps
	// flights make concurrent demands for one token share one token request (token_fetch.go).
	flights   flights
	refresher *refresher
	// grants refreshes processes' current grants (grant_refresh.go).
	grants   *grantRefresher
	notifier *notifier
	// migration folds v0.1.0's current-credentials records into their processes (migrate.go);
	// migrated says it is done.
	// tasksIndexed: every closed task is in the stored retention index (tasks.go).
	tasksIndexed atomic.Bool
	// changes: the changes recorded in the write-ahead log and not done yet (changes.go).
	changes       *pendingChanges
	changesLoaded atomic.Bool
	// expiries: each process's own expiry, in time order (expiry.go).
	expiries  *schedule.Queue
	migration worker
	migrated  atomic.Bool
	// release hands back the memory of refused oversized requests (limits.go).
	release memoryRelease
	// lifetime ends when Vault unloads the backend (Clean); background work derives from it.
	lifetime    context.Context
	endLifetime context.CancelFunc
}

// worker is a background loop's life: started on the node that may write, stopped by Clean.
type worker struct {
	mu      sync.Mutex // guards cancel
	cancel  context.CancelFunc
	running sync.WaitGroup // the loop and whatever it starts
	wake    chan struct{}  // a poke makes the loop look again now
}

func newWorker() worker { return worker{wake: make(chan struct{}, 1)} }

// run starts fn in its own goroutine with a context that stop cancels.
func (w *worker) run(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		fn(ctx)
	}()
}

// stop cancels the loop and waits for it and its goroutines.
func (w *worker) stop() {
	w.mu.Lock()
	cancel := w.cancel
	w.cancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.running.Wait()
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
