package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// status: an operator's counts, kept as things change (internal/census), never by scanning.

// seedCensus reads every process once, in the background, when the plugin starts on the active
// node: requests are answered meanwhile (status says its counts are not complete yet). It reads
// storage directly, so the process cache keeps its working set. The same reading places each
// process in the expiry order and its grant in the refresh schedule.
func (b *backend) seedCensus(s logical.Storage) {
	go func() {
		ctx := b.lifetime
		start := b.deps.now()
		technicals, err := s.List(ctx, technicalStoragePrefix)
		if err != nil {
			b.Logger().Error("counting processes: listing technical credentials", "error", err)
			return
		}
		b.census.SetTechnicals(technicals)
		fraction := b.refreshFraction(ctx, s)
		n, err := eachProcess(ctx, s, func(p *lifecycle.Process) {
			b.census.Seed(summarize(p))
			b.noteExpiry(p)
			b.grants.noteProcess(p, fraction)
		})
		if err != nil {
			b.Logger().Error("counting processes", "error", err)
			return
		}
		b.census.Seeded()
		b.Logger().Debug("processes counted", "processes", n, "took", b.deps.now().Sub(start))
	}()
}

// scanForTechnical reads every process once, in the background, after a technical credential is
// created: the usage index holds only names that exist, so the processes whose runtime layer
// named it before it existed are found now (usage warns meanwhile).
func (b *backend) scanForTechnical(s logical.Storage, name string) {
	gen := b.census.AddTechnical(name)
	go func() {
		defer b.census.Scanned(name)
		_, err := eachProcess(b.lifetime, s, func(p *lifecycle.Process) {
			if slices.Contains(credential.TechnicalNames(p.Runtime), name) {
				b.census.Scan(name, gen, p.ID)
			}
		})
		if err != nil {
			b.Logger().Error("indexing a new technical credential", "technical", name, "error", err)
		}
	}()
}

// scanReaders bounds the reads a scan of every process keeps in flight. Each read is a gRPC round
// trip to Vault: one at a time, the plugin and Vault mostly wait for each other; a few at once
// keep both busy, and so few leave Vault's CPU to the requests meanwhile (BenchmarkScale).
const scanReaders = 8

// eachProcess reads every stored process once and hands each that still exists to fn, and
// answers how many ids it listed. It reads scanReaders at a time, so fn is called from several
// goroutines at once and in no order: the census's Seed and Scan are safe for that (a change heard
// of meanwhile wins, whenever the read ran). It stops at the first error, or when ctx ends.
func eachProcess(ctx context.Context, s logical.Storage, fn func(*lifecycle.Process)) (int, error) {
	ids, err := s.List(ctx, processStoragePrefix)
	if err != nil {
		return 0, fmt.Errorf("listing processes: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scanReaders)
	for _, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			p, err := readJSON[lifecycle.Process](gctx, s, processStoragePrefix+id, fmt.Sprintf("process %q", id))
			if p != nil {
				fn(p)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return len(ids), err
	}
	return len(ids), ctx.Err() // ended early: not every process was read
}

func pathStatus(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "status$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "status"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathStatusRead,
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
					"processes":             {Type: framework.TypeInt, Description: "Live processes.", Required: true},
					"processes_by_health":   {Type: framework.TypeMap, Description: "Live processes by health: running, broken, failed.", Required: true},
					"processes_by_keep":     {Type: framework.TypeMap, Description: "Live processes by keep_credentials mode.", Required: true},
					"open_tasks":            {Type: framework.TypeInt, Description: "Processes waiting for their owner's task.", Required: true},
					"technical_credentials": {Type: framework.TypeMap, Description: "Technical credentials by state: ok, failing (its last refresh failed, a valid token is still served), expired (its token or its static expires_at has passed: nothing valid to serve), pending (an OAuth2 credential that never had a token: its first token request has not succeeded yet; its last_error says why when one failed).", Required: true},
					"outbox":                {Type: framework.TypeMap, Description: "The Task Manager outbox: pending, dead, delivered, overflowed (notify/status has more).", Required: true},
					"changes_pending":       {Type: framework.TypeInt, Description: "Process and task changes recorded in the write-ahead log and not finished: in progress, or cut short (a storage write refused, the plugin killed) and waiting to be rolled forward; their events wait in the outbox. Normally 0: a change cut short is finished at its process's next change, when the plugin starts, or within about two minutes by Vault's rollback.", Required: true},
					"counts_complete":       {Type: framework.TypeBool, Description: "False for a short while after the plugin starts, while it counts the processes in storage.", Required: true},
				}}}},
			},
		},
		HelpSynopsis:    "Show counts for an operator's dashboard.",
		HelpDescription: statusHelp,
	}}
}

const statusHelp = `
Counts for an operator's dashboard, kept as things change (never by scanning storage on a
request): live processes by health and keep mode, processes waiting for a task, technical
credentials by state, and the Task Manager outbox. A technical credential is ok (serving),
failing (its last refresh failed; a valid token is still served), expired (nothing valid to
serve: its token or its static expires_at has passed) or pending (an OAuth2 credential that never
had a token yet: its first token request is under way or failing; technical/<name> says why).
After the plugin starts, it counts the processes in storage once, in the background; until then
counts_complete is false.
changes_pending counts changes of processes and tasks not finished: one cut short by a refused
write or a killed plugin is rolled forward from Vault's write-ahead log, and its events wait.

  $ vault read pecreds/status
`

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := b.activeOnly(); err != nil {
		return nil, err
	}
	technical, err := b.technicalStates(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	box, stats, err := b.notifier.counts(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c := b.census.Counts()
	return &logical.Response{Data: map[string]any{
		"processes": c.Processes, "processes_by_health": c.ByHealth, "processes_by_keep": c.ByKeep,
		"open_tasks": c.OpenTasks, "technical_credentials": technical, "counts_complete": c.Seeded,
		"changes_pending": len(b.changes.processes()),
		"outbox":          map[string]any{"pending": box.Pending, "dead": box.Dead, "delivered": stats.Delivered, "overflowed": stats.Overflowed},
	}}, nil
}

// activeOnly forwards a read from a performance standby to the active node, where the counts
// and the outbox index live (they are kept as things change there).
func (b *backend) activeOnly() error {
	if b.replicationState().HasState(consts.ReplicationPerformanceStandby) {
		return logical.ErrPerfStandbyPleaseForward
	}
	return nil
}

// technicalStates counts the technical credentials by state, from the caches (they are few).
func (b *backend) technicalStates(ctx context.Context, s logical.Storage) (map[string]int, error) {
	out := map[string]int{"ok": 0, "failing": 0, "expired": 0, "pending": 0}
	names, err := eachWhole(ctx, s, b.technicals, technicalStoragePrefix, "technical credentials")
	if err != nil {
		return nil, err
	}
	now := b.deps.now()
	for _, e := range names {
		var st *oauth.State
		if e.rotates() {
			if st, err = b.getTokenState(ctx, s, e.Name); err != nil {
				return nil, err
			}
		}
		switch {
		case e.rotates() && (st == nil || st.AccessToken == ""):
			out["pending"]++ // never had a token: nothing has expired
		case b.technicalAsResolved(e, st, now, planFetch).Material == nil:
			out["expired"]++
		case st != nil && st.Failures > 0:
			out["failing"]++
		default:
			out["ok"]++
		}
	}
	return out, nil
}
