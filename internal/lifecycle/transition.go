package lifecycle

import (
	"fmt"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The process/task state machine. Every change of a process's health or of a task is one
// transition: a pure function from the state (a process and the task the event concerns) and an
// event to the next state and the ordered effects that store it; the root package's one writer
// carries effects out.
//
//	running ──failure(current, broken)──▶ broken + open task ──complete──▶ running
//	running ──failure(technical, broken)─▶ broken (no task) ──resume──▶ running
//	running ──expiring──▶ running + open task (the owner is asked early)
//	running + open task ──failure(technical, broken)──▶ broken ──complete──▶ broken ──resume──▶ running
//
// A broken process keeps why it is broken (broken.go): completing a task resumes only a process
// its current credentials broke; what a technical credential broke waits for resume.
//	any ──failure(failed) or cancel──▶ failed (final: task cancelled, current credentials wiped)
//	any ──end──▶ gone (task cancelled, current credentials wiped)
//
// The writer records a change of more than one write whole in Vault's write-ahead log before its
// first write, so a crash between its writes is rolled forward, never left half-made; its events
// wait in the outbox until it is done, and are sent once. The sweep's orphan and repair
// transitions mend what a crash left in storage written before the log was kept.

// Kind is what happened.
type Kind int

const (
	// Failure: a reported failure or a resolve's verdict, with the health already decided
	// (the mapping, the technical retry).
	Failure Kind = iota
	// Expiring: preflight found the current credentials expiring; ask the owner early.
	Expiring
	// Complete: the task was completed with new current credentials.
	Complete
	// Cancel: an operator cancelled the task.
	Cancel
	// Resume: an operator set a broken process running again.
	Resume
	// End: the process was deleted or its lease revoked.
	End
	// Orphan: the sweep found an open task its process does not wait for.
	Orphan
	// Repair: the sweep found a process still pointing at a task that was closed.
	Repair
	// Renew: Vault renewed the process's lease; its own expiry moves.
	Renew
	// ForgetTask: a task closed 30 days ago is removed.
	ForgetTask
	// Runtime: the engine changed the process's runtime layer.
	Runtime
	// FoldCurrent: v0.1.0's record of the current credentials moves into the process's own.
	FoldCurrent
	// GrantRefreshed: the current grant (oauth2_user) was refreshed; the refreshed grant
	// replaces it, unless the current credentials changed while the refresh was in the air.
	GrantRefreshed
	// RuntimeGrantRefreshed: a grant (oauth2_user) of the runtime layer was refreshed; the
	// refreshed grant replaces it in its place, unless the layer changed meanwhile.
	RuntimeGrantRefreshed
)

// State is what a transition looks at: the process (nil when it does not exist) and the task the
// event concerns — the process's open task, or the task being completed or cancelled.
type State struct {
	Process *Process
	Task    *Task
}

// ProcessID is the process a state is about: the process's, or its task's.
func (st State) ProcessID() string {
	if st.Process != nil {
		return st.Process.ID
	}
	if st.Task != nil {
		return st.Task.ProcessID
	}
	return ""
}

// Event is one event and what the caller decided or generated for it: a transition has no
// clock, no randomness and no storage of its own.
type Event struct {
	Kind Kind
	Now  time.Time

	Service       string         // failure, expiring: the service concerned
	Reason        string         // failure: the error class or the current credentials' status
	Health        string         // failure: the health decided
	HealthReason  string         // failure: why, when not running
	CurrentFailed bool           // failure: the user's own credentials failed (the owner is asked)
	Retried       map[string]int // failure: the technical retry bookkeeping, when it changed
	NewTaskID     string         // failure, expiring: the id of a task this event opens

	Credential  *credential.Credential // complete: the owner's new credentials
	CompletedBy string                 // complete: who completed it
	ExpiresAt   time.Time              // renew: the lease's new end at the latest
	Runtime     []credential.Service   // runtime: the layer as it now is
	// grant refreshed: the grant the refresh started from (Credential is the refreshed one), and
	// what the plugin holds now of a transient process's current credentials.
	RefreshedFrom *credential.Credential
	Held          *credential.Credential
	// runtime grant refreshed: the grant's place, credential Index of runtime service Service.
	Index int
}

// Refusal is a transition's no: bad input for this state, a 400 naming why.
type Refusal struct{ Reason string }

func (r Refusal) Error() string { return r.Reason }

// EffectKind is what an effect does. The write-ahead log stores it as its number: a kind keeps
// its number, and a new one goes last.
type EffectKind int

const (
	Announce EffectKind = iota
	PutCurrent
	DeleteCurrent
	PutTask
	PutProcess
	DeleteProcess
	DeleteTask
)

// Effect is one storage change (or announcement) of a transition, in the order the writer runs
// them. Event is what the outbox keeps and sends as it is (internal/outbox).
type Effect struct {
	Kind       EffectKind
	Event      outbox.Event
	Process    *Process
	Task       *Task
	Credential *credential.Credential
}

// effects collects a transition's effects by kind, and lists them in the writer's order.
type effects struct {
	announce      []Effect
	putCurrent    *Effect
	deleteCurrent *Process
	tasks         []Effect
	process       *Process
}

func (e *effects) list() []Effect {
	out := append([]Effect(nil), e.announce...)
	if e.putCurrent != nil {
		out = append(out, *e.putCurrent)
	}
	if e.deleteCurrent != nil {
		out = append(out, Effect{Kind: DeleteCurrent, Process: e.deleteCurrent})
	}
	out = append(out, e.tasks...)
	if e.process != nil {
		out = append(out, Effect{Kind: PutProcess, Process: e.process})
	}
	return out
}

// Transition is the state machine: pure, so every (health, event) pair is a table test.
func Transition(st State, ev Event) (State, []Effect, error) {
	if ev.Kind == ForgetTask {
		if st.Task == nil || st.Task.Status == StatusOpen {
			return st, nil, nil // an open task is never forgotten
		}
		return State{}, []Effect{{Kind: DeleteTask, Task: st.Task}}, nil
	}
	if st.Process == nil && ev.Kind != Complete && ev.Kind != Cancel && ev.Kind != Orphan {
		return st, nil, nil // nothing to change: the process has ended
	}
	switch ev.Kind {
	case Failure:
		return failure(st, ev)
	case Expiring:
		return expiring(st, ev)
	case Complete:
		return complete(st, ev)
	case Cancel:
		return cancel(st, ev)
	case Resume:
		return resume(st, ev)
	case End:
		return end(st, ev)
	case Orphan:
		return orphan(st, ev)
	case Renew:
		return rewrite(st, func(p *Process) { p.ExpiresAt = ev.ExpiresAt })
	case Runtime:
		return rewrite(st, func(p *Process) { p.Runtime, p.UpdatedTime = ev.Runtime, ev.Now })
	case FoldCurrent:
		return rewrite(st, func(p *Process) { p.Current = ev.Credential })
	case Repair:
		return repair(st, ev)
	case GrantRefreshed:
		return grantRefreshed(st, ev)
	case RuntimeGrantRefreshed:
		return runtimeGrantRefreshed(st, ev)
	}
	return st, nil, fmt.Errorf("unknown lifecycle event %d", ev.Kind)
}

// rewrite is a change of the process's record alone: one write, its task untouched.
func rewrite(st State, change func(*Process)) (State, []Effect, error) {
	p := *st.Process
	change(&p)
	return State{Process: &p, Task: st.Task}, []Effect{{Kind: PutProcess, Process: &p}}, nil
}

// openTaskIn is the state's task when it is open and belongs to the process.
func openTaskIn(st State) *Task {
	if st.Task == nil || st.Task.Status != StatusOpen || st.Process == nil || st.Task.ProcessID != st.Process.ID {
		return nil
	}
	return st.Task
}
