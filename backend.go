package pecreds

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/cache"
	"github.com/pecreds/vault-plugin-pecreds/internal/census"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// Factory returns a configured pecreds backend.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return factoryWith(defaultDeps())(ctx, conf)
}

// factoryWith builds backends from the given dependencies (deps.go).
func factoryWith(d deps) logical.Factory {
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		return setUp(ctx, conf, newBackend(d))
	}
}

func setUp(ctx context.Context, conf *logical.BackendConfig, b *backend) (logical.Backend, error) {
	withView := *conf
	if conf.System != nil {
		withView.System = newRoutingView(conf.System, b.deps.now) // systemview.go
	}
	if err := b.Setup(ctx, &withView); err != nil {
		return nil, err
	}
	if wrapForTests != nil {
		return wrapForTests(b), nil
	}
	return b, nil
}

// wrapForTests is nil in production; the tests' build of the plugin sets it (fault_kill.go).
var wrapForTests func(*backend) logical.Backend

// sealWrapped is every storage prefix but task/ and the task retention index: they hold secrets
// or what says where secrets go.
var sealWrapped = []string{
	configStorageKey,
	registryStoragePrefix,
	"technical/",
	"technical-state/",
	"outbox/",
	"process/",
	framework.WALPrefix,
	"process-current/",
	notifyStatsKey,
}

func newBackend(d deps) *backend {
	b := &backend{
		registryLocks:  locksutil.CreateLocks(),
		technicalLocks: locksutil.CreateLocks(),
		processLocks:   locksutil.CreateLocks(),
		refreshLocks:   locksutil.CreateLocks(),
		registries:     &cache.Whole[registryEntry]{},
		technicals:     &cache.Whole[technicalEntry]{},
		tokenStates:    &cache.Whole[oauth.State]{},
		processes:      cache.NewBounded(processCacheSize, processCacheBytes, processBytes),
		tasks:          cache.NewBounded(processCacheSize, taskCacheBytes, taskBytes),
		census:         census.New(),

		transientCurrent: map[string]*Credential{},
		flights:          newFlights(),
		migration:        newWorker(),
		expiries:         schedule.NewQueue(),
		changes:          newPendingChanges(),
		deps:             d,
	}
	b.lifetime, b.endLifetime = context.WithCancel(context.Background())
	b.refresher = newRefresher(b)
	b.grants = newGrantRefresher(b)
	b.notifier = newNotifier(b)
	b.Backend = &framework.Backend{
		Help:           strings.TrimSpace(backendHelp),
		BackendType:    logical.TypeLogical,
		RunningVersion: runningVersion(),
		Invalidate:     b.invalidate,
		InitializeFunc: b.initialize,
		PeriodicFunc:   b.periodic,
		Clean:          b.clean,
		// A change cut short is rolled forward (changes.go); a minute after it was recorded, if
		// nothing touched its process before.
		WALRollback:       b.walRollback,
		WALRollbackMinAge: time.Minute,
		PathsSpecial:      &logical.Paths{SealWrapStorage: sealWrapped},
		Secrets:           []*framework.Secret{processSecret(b)},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathRegistry(b),
			pathTechnical(b),
			pathProcessResolve(b),
			pathProcessPreflight(b),
			pathProcessReport(b),
			pathProcessCredentials(b),
			pathProcess(b),
			pathTaskCompletion(b), // before pathTask: task/mine before task/:id
			pathTask(b),
			pathNotify(b),
			pathStatus(b),
		),
	}
	return b
}

// HandleRequest checks secret fields' types and decodes JSON text given for an object or list
// field (prepareFields), hands the request to the framework, and answers a coded error (404, 403)
// with its message as it is (codedAnswer).
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if err := b.prepareFields(req); err != nil {
		b.release.refused(req.Data)
		return badRequest(err)
	}
	resp, err := b.Backend.HandleRequest(ctx, req)
	var coded logical.HTTPCodedError
	if errors.As(err, &coded) && req.Operation != logical.RenewOperation && req.Operation != logical.RevokeOperation {
		return codedAnswer(coded)
	}
	return resp, err
}

// codedAnswer keeps an error an error but lets it read as its message: Vault wraps an error that
// a plugin returns in "1 error occurred:\n\t* ...", while an error response paired with one of
// Vault's sentinel errors answers the response's message with the sentinel's status — as Vault's
// own router answers its 404s. Other codes stay as they are.
func codedAnswer(coded logical.HTTPCodedError) (*logical.Response, error) {
	var sentinel error
	switch coded.Code() {
	case http.StatusBadRequest:
		return logical.ErrorResponse(coded.Error()), nil
	case http.StatusForbidden:
		sentinel = logical.ErrPermissionDenied
	case http.StatusNotFound:
		sentinel = logical.ErrUnsupportedPath
	default:
		return nil, coded
	}
	return logical.ErrorResponse(coded.Error()), sentinel
}

// HandleExistenceCheck decodes as HandleRequest does: the framework validates the fields'
// types in both.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if err := b.prepareFields(req); err != nil {
		// No verdict here: HandleRequest answers the 400.
		return false, false, nil
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// invalidate drops what the caches hold for a key changed underneath this node.
func (b *backend) invalidate(_ context.Context, key string) {
	b.cacheLock.Lock()
	b.cacheGen++
	defer b.cacheLock.Unlock()
	switch {
	case key == configStorageKey:
		b.config = nil
	case strings.HasPrefix(key, registryStoragePrefix):
		b.registries.Forget(strings.TrimPrefix(key, registryStoragePrefix))
	case strings.HasPrefix(key, technicalStoragePrefix):
		b.technicals.Forget(strings.TrimPrefix(key, technicalStoragePrefix))
	case strings.HasPrefix(key, technicalStatePrefix):
		b.tokenStates.Forget(strings.TrimPrefix(key, technicalStatePrefix))
	case strings.HasPrefix(key, processStoragePrefix):
		b.processes.Forget(strings.TrimPrefix(key, processStoragePrefix))
		b.census.Unsure(strings.TrimPrefix(key, processStoragePrefix))
	case strings.HasPrefix(key, taskStoragePrefix):
		b.tasks.Forget(strings.TrimPrefix(key, taskStoragePrefix))
	}
}

// initialize starts the background work on the node that may write: the Task Manager outbox's
// delivery, and the token refresh scheduler, rebuilt from storage.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	s := req.Storage
	b.loadChanges(ctx, s)
	b.notifier.start(req.Storage)
	b.seedCensus(req.Storage)
	b.grants.start(s)
	b.migration.run(func(ctx context.Context) { b.migrateCurrents(ctx, s) })
	return b.refresher.start(req.Storage)
}

// periodic sweeps for overdue refreshes the scheduler may have missed, ends processes long past
// their own expiry (expiry.go), and removes tasks closed more than 30 days ago.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	if err := b.refresher.rebuild(ctx, req.Storage); err != nil {
		return err
	}
	b.loadChanges(ctx, req.Storage)
	now := b.deps.now().UTC()
	if err := b.sweepExpired(ctx, req.Storage, now); err != nil {
		return err
	}
	return b.sweepTasks(ctx, req.Storage, now)
}

// clean stops all background work: Vault is unloading the backend.
func (b *backend) clean(context.Context) {
	b.endLifetime()
	b.refresher.stop()
	b.grants.stop()
	b.notifier.stop()
	b.migration.stop()
}

const backendHelp = `
The pecreds secrets engine keeps the credentials of a business-process engine's processes: which
credentials a running process uses for each external service it calls, kept across restarts,
expired safely, and replaceable while the process runs. Every path has its own manual:
"vault path-help pecreds/<path>" gives its fields, defaults and limits.

Configuration
  config                          keep mode, global registries, process TTLs, error mapping, the
                                  Task Manager webhook (notify_url); reads show the defaults

Registries: the services a process calls, each with an ordered list of credentials
  registry/                       list the registries
  registry/<name>                 write (cas as in KV v2), read (never a secret), delete

Technical credentials: shared ones that registries name; OAuth2 tokens kept fresh
  technical/                      list
  technical/<name>                write, read (configuration and token bookkeeping), delete
  technical/<name>/creds          the current material (for Vault Agent templates)
  technical/<name>/rotate         a new OAuth2 token now
  technical/<name>/usage          the registries and live processes that reach it

Processes: each one a renewable Vault lease holding its user's current credentials
  process/                        list (after, limit page through the ids)
  process/<id>                    start (the answer is the lease), read, end
  process/<id>/credentials        the runtime layer: services added while it runs
  process/<id>/credentials/<svc>  remove one runtime service
  process/<id>/resolve/<svc>      the credentials to use for a service (type, all, explain);
                                  with -wrap-ttl, a single-use wrapping token for a worker
  process/<id>/resolve            the same for the URL the process is about to call
  process/<id>/report             a failed call: answers the health and retry, wait or abort
  process/<id>/preflight          which credentials expire within a duration
  process/<id>/resume             an operator resumes a process a technical credential broke

Tasks: a broken process's owner supplies new credentials, and the process resumes
  task/                           every open task (operators, the Task Manager)
  task/mine                       the caller's own open tasks
  task/<id>                       read
  task/<id>/complete              the owner completes it
  task/<id>/complete-on-behalf    a Task Manager completes it for the owner it authenticated
  task/<id>/cancel                the process fails

Task Manager webhook and monitoring
  notify/status                   the outbox: pending, delivered, dead, the last error
  notify/retry                    send pending events now, queue dead ones again
  notify/rotate-secret            a new signing secret, answered once
  status                          counts for a dashboard: processes by health, open tasks,
                                  technical credentials by state, the outbox

A resolve goes through the process's runtime layer, then its definition registry, then the
global registries, and answers the first usable credential of the first layer that has the
service; secrets appear only in resolve, technical/<name>/creds and process start answers.
`
