package pecreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The writes of the one writer (lifecycle_apply.go), and their crash safety. A change of more
// than one write is first recorded whole in Vault's write-ahead log (framework.PutWAL); its
// writes follow (applyWrites), then the record is deleted. A change cut short — a write
// refused, or the plugin killed — is rolled forward from its record before anything else
// touches its process: at that process's next change, when the plugin starts on the active
// node, and by Vault's periodic rollback (WALRollback). Every write is a put or a delete of a
// whole record, so doing one again is harmless; an event is enqueued once by its id, and waits in
// the outbox until its change is done, so rolling forward never sends one twice.

const walKindChange = "change"

// writer is the one writer of processes and tasks as a request or a background job holds it:
// the storage it reads and writes, and the config it read once. Every step of a change — the
// verdict the caller decided with it, the events' delivery settings, the refresh schedule of a
// grant it stores — sees that one config.
type writer struct {
	b   *backend
	s   logical.Storage
	cfg *configEntry
}

// writer reads the config and answers a writer on s.
func (b *backend) writer(ctx context.Context, s logical.Storage) (*writer, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	return b.writerWith(s, cfg), nil
}

// writerWith is the writer of a caller that has read the config already.
func (b *backend) writerWith(s logical.Storage, cfg *configEntry) *writer {
	return &writer{b: b, s: s, cfg: cfg}
}

// walChange is a change's write-ahead record: every write it makes, in order. A transient
// process's current credentials are never in it (they live in memory only).
type walChange struct {
	ID        string     `json:"id"`
	ProcessID string     `json:"process_id"`
	Writes    []walWrite `json:"writes"`
}

type walWrite struct {
	Kind    lifecycle.EffectKind `json:"kind"`
	Process *lifecycle.Process   `json:"process,omitempty"`
	Task    *lifecycle.Task      `json:"task,omitempty"`
	Event   *outbox.Event        `json:"event,omitempty"`
}

// pendingChanges are the changes recorded and not done yet: at most one a process, since a
// process's next change rolls its last forward first.
type pendingChanges struct {
	mu        sync.Mutex
	byProcess map[string]pendingChange
	processOf map[string]string // change id → process id
}

type pendingChange struct{ id, walKey string }

func newPendingChanges() *pendingChanges {
	return &pendingChanges{byProcess: map[string]pendingChange{}, processOf: map[string]string{}}
}

func (c *pendingChanges) begin(pid string, pc pendingChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byProcess[pid], c.processOf[pc.id] = pc, pid
}

func (c *pendingChanges) done(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pid, ok := c.processOf[id]; ok {
		delete(c.processOf, id)
		if c.byProcess[pid].id == id {
			delete(c.byProcess, pid)
		}
	}
}

func (c *pendingChanges) of(pid string) (pendingChange, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.byProcess[pid]
	return pc, ok
}

// holds says whether a change is not done yet: the outbox holds its events (Index.SetHeld).
func (c *pendingChanges) holds(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.processOf[id]
	return ok
}

func (c *pendingChanges) processes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := make([]string, 0, len(c.byProcess))
	for pid := range c.byProcess {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// applyWrites makes a change's writes, in order; each can be made again.
func (w *writer) applyWrites(ctx context.Context, list []lifecycle.Effect) error {
	b, s := w.b, w.s
	for _, e := range list {
		var err error
		switch e.Kind {
		case lifecycle.Announce:
			if e.Event.Type == lifecycle.ProcessBroken {
				b.Logger().Info("process broken", "process", e.Event.ProcessID, "service", e.Event.Service, "reason", e.Event.Reason)
			}
			err = b.announce(ctx, s, w.cfg, e.Event)
		case lifecycle.PutCurrent:
			err = b.putCurrent(e.Process, *e.Credential, w.cfg.RefreshFraction)
		case lifecycle.DeleteCurrent:
			err = b.deleteCurrent(ctx, s, e.Process)
		case lifecycle.PutTask:
			err = b.putTask(ctx, s, e.Task)
		case lifecycle.PutProcess:
			err = b.putProcess(ctx, s, e.Process, w.cfg.RefreshFraction)
		case lifecycle.DeleteProcess:
			err = b.deleteProcess(ctx, s, e.Process.ID)
		case lifecycle.DeleteTask:
			err = b.deleteTask(ctx, s, e.Task)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// storageWrites counts the storage writes of a change's effects: a transient process's current
// credentials are kept in memory, and the record v0.1.0 kept them in is gone once migrated.
func (b *backend) storageWrites(list []lifecycle.Effect) int {
	n := 0
	for _, e := range list {
		switch {
		case e.Kind == lifecycle.PutCurrent:
		case e.Kind == lifecycle.DeleteCurrent && (b.migrated.Load() || e.Process.KeepCredentials != lifecycle.KeepPersistent):
		default:
			n++
		}
	}
	return n
}

// record writes a change's write-ahead record and marks it pending; its events get their ids
// here, so that rolling forward enqueues the same events.
func (w *writer) record(ctx context.Context, pid string, list []lifecycle.Effect) (pendingChange, error) {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return pendingChange{}, fmt.Errorf("making a change id: %w", err)
	}
	wc := walChange{ID: id, ProcessID: pid}
	for i := range list {
		e := &list[i]
		switch e.Kind {
		case lifecycle.PutCurrent:
			continue
		case lifecycle.Announce:
			if e.Event.ID, err = uuid.GenerateUUID(); err != nil {
				return pendingChange{}, fmt.Errorf("making an event id: %w", err)
			}
			e.Event.Change = id
			ev := e.Event
			wc.Writes = append(wc.Writes, walWrite{Kind: e.Kind, Event: &ev})
		default:
			wc.Writes = append(wc.Writes, walWrite{Kind: e.Kind, Process: withoutSecrets(e), Task: e.Task})
		}
	}
	key, err := framework.PutWAL(ctx, w.s, walKindChange, wc)
	if err != nil {
		return pendingChange{}, fmt.Errorf("recording a change of process %q: %w", pid, err)
	}
	pc := pendingChange{id: id, walKey: key}
	w.b.changes.begin(pid, pc)
	return pc, nil
}

// withoutSecrets is the process an effect writes, as its record keeps it; a delete needs only
// who it is.
func withoutSecrets(e *lifecycle.Effect) *lifecycle.Process {
	if e.Process == nil || e.Kind == lifecycle.PutProcess {
		return e.Process
	}
	p := *e.Process
	p.Current = nil
	return &p
}

// finish deletes a change's record: its events may go.
func (w *writer) finish(ctx context.Context, pc pendingChange) error {
	b := w.b
	if err := framework.DeleteWAL(ctx, w.s, pc.walKey); err != nil {
		return fmt.Errorf("finishing a change: %w", err)
	}
	b.changes.done(pc.id)
	b.notifier.poke()
	return nil
}

// settle rolls a process's pending change forward; the caller holds the process's lock. It
// answers whether there was one (the caller's state is then stale).
func (w *writer) settle(ctx context.Context, pid string) (bool, error) {
	b, s := w.b, w.s
	pc, ok := b.changes.of(pid)
	if !ok {
		return false, nil
	}
	entry, err := framework.GetWAL(ctx, s, pc.walKey)
	if err != nil {
		return true, fmt.Errorf("reading the pending change of process %q: %w", pid, err)
	}
	if entry != nil {
		wc, err := decodeChange(entry.Data)
		if err != nil {
			return true, err
		}
		if err := w.applyWrites(ctx, wc.effects()); err != nil {
			return true, fmt.Errorf("finishing the pending change of process %q: %w", pid, err)
		}
	}
	b.Logger().Info("a change cut short was rolled forward", "process", pid)
	return true, w.finish(ctx, pc)
}

func (w walChange) effects() []lifecycle.Effect {
	list := make([]lifecycle.Effect, 0, len(w.Writes))
	for _, x := range w.Writes {
		e := lifecycle.Effect{Kind: x.Kind, Process: x.Process, Task: x.Task}
		if x.Event != nil {
			e.Event = *x.Event
		}
		list = append(list, e)
	}
	return list
}

func decodeChange(data any) (walChange, error) {
	var w walChange
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, &w)
	}
	if err != nil {
		return w, fmt.Errorf("a write-ahead record that is not a change: %w", err)
	}
	if w.ID == "" || w.ProcessID == "" {
		return w, errors.New("a write-ahead record that is not a change: no change or process id")
	}
	return w, nil
}

// loadPendingChanges reads the write-ahead log when the plugin starts on the active node: what
// it holds was cut short, and is rolled forward in the background. Until then, those processes'
// next changes roll them forward first and their events wait.
func (b *backend) loadPendingChanges(ctx context.Context, s logical.Storage) error {
	keys, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing the write-ahead log: %w", err)
	}
	for _, key := range keys {
		entry, err := framework.GetWAL(ctx, s, key)
		if err != nil {
			return fmt.Errorf("reading the write-ahead log: %w", err)
		}
		if entry == nil || entry.Kind != walKindChange {
			continue
		}
		w, err := decodeChange(entry.Data)
		if err != nil {
			b.Logger().Error("skipping a write-ahead record", "key", key, "error", err)
			continue
		}
		b.changes.begin(w.ProcessID, pendingChange{id: w.ID, walKey: key})
	}
	return nil
}

// loadChanges loads the write-ahead log once (the periodic function tries again when it could
// not), and rolls what it holds forward in the background.
func (b *backend) loadChanges(ctx context.Context, s logical.Storage) {
	if b.changesLoaded.Load() {
		return
	}
	if err := b.loadPendingChanges(ctx, s); err != nil {
		b.Logger().Error("reading the changes cut short; trying again in a minute", "error", err)
		return
	}
	b.changesLoaded.Store(true)
	if pids := b.changes.processes(); len(pids) > 0 {
		go b.settleAll(b.lifetime, s, pids)
	}
}

// settleAll rolls every pending change forward, each under its process's lock, with one writer
// (one config read) for them all.
func (b *backend) settleAll(ctx context.Context, s logical.Storage, pids []string) {
	w, err := b.writer(ctx, s)
	if err != nil {
		b.Logger().Error("rolling changes forward; Vault's periodic rollback tries again", "processes", len(pids), "error", err)
		return
	}
	for _, pid := range pids {
		lock := locksutil.LockForKey(b.processLocks, pid)
		lock.Lock()
		_, err := w.settle(ctx, pid)
		lock.Unlock()
		if err != nil {
			b.Logger().Error("rolling a change forward; Vault's periodic rollback tries again", "process", pid, "error", err)
		}
	}
}

// walRollback is Vault's periodic rollback of the write-ahead log: a change still pending a
// minute after it was recorded is rolled forward. Answering nil lets Vault delete the record.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if kind != walKindChange {
		return nil
	}
	wc, err := decodeChange(data)
	if err != nil {
		return nil // never ours to do: drop it
	}
	w, err := b.writer(ctx, req.Storage)
	if err != nil {
		return err
	}
	lock := locksutil.LockForKey(b.processLocks, wc.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	if pc, ok := b.changes.of(wc.ProcessID); !ok || pc.id != wc.ID {
		return nil // done meanwhile
	}
	_, err = w.settle(ctx, wc.ProcessID)
	return err
}
