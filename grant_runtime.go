package pecreds

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// Grants of the runtime layer (DESIGN.md: oauth2_user is a current or runtime credential) are
// kept fresh by the same scheduler as current grants, each in its own place: the credential at
// index of the runtime service it was written in. A refreshed one is kept in that place through
// the lifecycle (RuntimeGrantRefreshed), one write of the process's record, unless the engine
// rewrote the layer meanwhile. One its provider ends (invalid_grant) is a failure of class
// credentials_expired of that credential: the mapping's health, and no task — the owner's new
// credentials would not replace it; the engine writes the service again.

// grantRef names a grant the refresher keeps fresh: a process's current grant (service "") or the
// grant at credential index of one of its runtime services.
type grantRef struct {
	process, service string
	index            int
}

// key is the ref's place in the schedule: the process id for its current grant, and
// "<id>\x00<service>\x00<index>" for a runtime one (no name holds a NUL).
func (r grantRef) key() string {
	if r.service == "" {
		return r.process
	}
	return r.process + "\x00" + r.service + "\x00" + strconv.Itoa(r.index)
}

func parseGrantRef(key string) grantRef {
	parts := strings.Split(key, "\x00")
	if len(parts) != 3 {
		return grantRef{process: key}
	}
	i, err := strconv.Atoi(parts[2])
	if err != nil {
		return grantRef{process: key}
	}
	return grantRef{process: parts[0], service: parts[1], index: i}
}

// held is the grant a ref names as the plugin holds it now (nil when there is none).
func (g *grantRefresher) held(ctx context.Context, s logical.Storage, p *lifecycle.Process, ref grantRef) (*Credential, error) {
	if ref.service == "" {
		return g.b.getCurrent(ctx, s, p)
	}
	return lifecycle.RuntimeGrant(p, ref.service, ref.index), nil
}

// noteRuntime places the grants of a process's runtime layer in the schedule, and takes out those
// the layer no longer has (and all of them when the process failed).
func (g *grantRefresher) noteRuntime(p *lifecycle.Process, fraction float64) {
	var keys []string
	if p.Health != lifecycle.Failed {
		for _, svc := range p.Runtime {
			for i := range svc.Credentials {
				if c := &svc.Credentials[i]; refreshable(c) {
					key := grantRef{process: p.ID, service: svc.Name, index: i}.key()
					keys = append(keys, key)
					g.note(key, c, fraction)
				}
			}
		}
	}
	g.mu.Lock()
	old := g.runtime[p.ID]
	if len(keys) == 0 {
		delete(g.runtime, p.ID)
	} else {
		g.runtime[p.ID] = keys
	}
	g.mu.Unlock()
	for _, key := range old {
		if !slices.Contains(keys, key) {
			g.forgetEnded(key, nil)
		}
	}
}

// forgetEnded takes a key out of the schedule; with ended, remembering that the provider ended
// that grant, so that no later write of the process places it again.
func (g *grantRefresher) forgetEnded(key string, ended *Credential) {
	g.mu.Lock()
	delete(g.plans, key)
	delete(g.endedGrants, key)
	if ended != nil {
		g.endedGrants[key] = grantKey(ended)
	}
	g.mu.Unlock()
	g.queue.Unschedule(key)
}

// forgetProcess takes every grant of an ended process out of the schedule.
func (g *grantRefresher) forgetProcess(id string) {
	g.mu.Lock()
	keys := append([]string{id}, g.runtime[id]...)
	delete(g.runtime, id)
	g.mu.Unlock()
	for _, key := range keys {
		g.forgetEnded(key, nil)
	}
}

// keepAt keeps a refreshed grant in the place it was refreshed from.
func (g *grantRefresher) keepAt(ctx context.Context, s logical.Storage, ref grantRef, from, refreshed *Credential) error {
	if ref.service == "" {
		return g.keep(ctx, s, ref.process, from, refreshed)
	}
	b := g.b
	w, st, unlock, err := b.lockLife(ctx, s, ref.process)
	defer unlock()
	if err != nil || st.Process == nil {
		return err
	}
	ev := lifecycle.Event{Kind: lifecycle.RuntimeGrantRefreshed, Service: ref.service, Index: ref.index, RefreshedFrom: from, Credential: refreshed}
	next, err := w.change(ctx, st, ev)
	if err != nil {
		return fmt.Errorf("keeping the refreshed grant: %w", err)
	}
	if !lifecycle.SameGrant(lifecycle.RuntimeGrant(next.Process, ref.service, ref.index), refreshed) {
		b.Logger().Debug("grant refresh dropped: the runtime layer changed meanwhile", "process", ref.process, "service", ref.service)
		return nil
	}
	b.Logger().Debug("runtime grant refreshed", "process", ref.process, "service", ref.service, "expires_at", refreshed.Fields["expires_at"])
	return nil
}

// endedAt keeps what a grant's end (invalid_grant) means for its process, unless the grant was
// replaced meanwhile: a failure of class credentials_expired of the credential it was, as a report
// says — for the current grant, the mapping's health (broken by default) and the owner's task;
// for a runtime grant, the mapping's health and no task. Either way the grant is not asked for
// again, whatever the mapping made of it.
func (g *grantRefresher) endedAt(ctx context.Context, s logical.Storage, ref grantRef, cur *Credential) error {
	b := g.b
	w, st, unlock, err := b.lockLife(ctx, s, ref.process)
	defer unlock()
	if err != nil || st.Process == nil {
		return err
	}
	held, err := g.held(ctx, s, st.Process, ref)
	if err != nil || !lifecycle.SameGrant(held, cur) {
		return err // replaced meanwhile: the new grant has its own place in the schedule
	}
	ev := grantEnded(w.cfg, st.Process, ref)
	if ev.CurrentFailed {
		if ev.NewTaskID, err = newTaskID(); err != nil {
			return err
		}
	}
	if ev.Health != lifecycle.Running {
		if _, err := w.change(ctx, st, ev); err != nil {
			return err
		}
	}
	g.forgetEnded(ref.key(), cur)
	b.Logger().Warn("grant ended", "process", ref.process, "runtime_service", ref.service, "health", ev.Health)
	return nil
}

// grantEnded is the failure event of a grant the provider ended, decided as a report of class
// credentials_expired on the credential the grant was.
func grantEnded(cfg *configEntry, p *lifecycle.Process, ref grantRef) lifecycle.Event {
	const class = "credentials_expired"
	health, _ := cfg.healthFor(class)
	r := lifecycle.Report{Service: ref.service, Class: class, Mapped: health, TaskManager: cfg.TaskManager,
		Used: lifecycle.Used{Kind: lifecycle.UsedStatic, Index: ref.index, Type: credential.GrantType}}
	why := fmt.Sprintf("service %q: the runtime grant [%d] has ended: its refresh was refused (invalid_grant); the engine must write the service again (%s)", ref.service, ref.index, class)
	if ref.service == "" {
		r.Used = lifecycle.Used{Kind: lifecycle.UsedCurrent, Type: credential.GrantType}
		r.KeepNone = p.KeepCredentials == lifecycle.KeepNone
		why = "the current grant has ended: its refresh was refused (invalid_grant); its owner must sign in again (" + class + ")"
	}
	v := lifecycle.DecideReport(r)
	ev := lifecycle.Event{Kind: lifecycle.Failure, Service: ref.service, Reason: class, Health: v.Health, CurrentFailed: v.OpenTask, HealthReason: why}
	if v.Health == lifecycle.Running {
		ev.HealthReason = ""
	}
	return ev
}
