package pecreds

import (
	"fmt"
	"time"
)

// The process/task state machine. Every change of a process's health or of a task is one
// transition: a pure function from the state (a process and the task the event concerns) and an
// event to the next state and the ordered effects that store it; apply is the one place that
// carries effects out.
//
//	running ──failure(current, broken)──▶ broken + open task ──complete──▶ running
//	running ──failure(technical, broken)─▶ broken (no task) ──resume──▶ running
//	running ──expiring──▶ running + open task (the owner is asked early)
//	running + open task ──failure(technical, broken)──▶ broken ──complete──▶ broken ──resume──▶ running
//
// A broken process keeps why it is broken (lifecycle_broken.go): completing a task resumes only
// a process its current credentials broke; what a technical credential broke waits for resume.
//	any ──failure(failed) or cancel──▶ failed (final: task cancelled, current credentials wiped)
//	any ──end──▶ gone (task cancelled, current credentials wiped)
//
// A change of more than one write is recorded whole in Vault's write-ahead log before its first
// write (changes.go), so a crash between its writes is rolled forward, never left half-made; its
// events wait in the outbox until it is done, and are sent once. The sweep's orphan and repair
// transitions mend what a crash left in storage written before the log was kept.

// lifeKind is what happened.
type lifeKind int

const (
	// lifeFailure: a reported failure or a resolve's verdict, with the health already decided
	// (the mapping, the technical retry).
	lifeFailure lifeKind = iota
	// lifeExpiring: preflight found the current credentials expiring; ask the owner early.
	lifeExpiring
	// lifeComplete: the task was completed with new current credentials.
	lifeComplete
	// lifeCancel: an operator cancelled the task.
	lifeCancel
	// lifeResume: an operator set a broken process running again.
	lifeResume
	// lifeEnd: the process was deleted or its lease revoked.
	lifeEnd
	// lifeOrphan: the sweep found an open task its process does not wait for.
	lifeOrphan
	// lifeRepair: the sweep found a process still pointing at a task that was closed.
	lifeRepair
	// lifeRenew: Vault renewed the process's lease; its own expiry moves.
	lifeRenew
	// lifeForgetTask: a task closed 30 days ago is removed.
	lifeForgetTask
	// lifeRuntime: the engine changed the process's runtime layer.
	lifeRuntime
	// lifeFoldCurrent: v0.1.0's record of the current credentials moves into the process's own.
	lifeFoldCurrent
)

// lifeState is what a transition looks at: the process (nil when it does not exist) and the task
// the event concerns — the process's open task, or the task being completed or cancelled.
type lifeState struct {
	Process *processEntry
	Task    *taskEntry
}

// lifeEvent is one event and what the caller decided or generated for it: a transition has no
// clock, no randomness and no storage of its own.
type lifeEvent struct {
	Kind lifeKind
	Now  time.Time

	Service       string         // failure, expiring: the service concerned
	Reason        string         // failure: the error class or the current credentials' status
	Health        string         // failure: the health decided
	HealthReason  string         // failure: why, when not running
	CurrentFailed bool           // failure: the user's own credentials failed (the owner is asked)
	Retried       map[string]int // failure: the technical retry bookkeeping, when it changed
	NewTaskID     string         // failure, expiring: the id of a task this event opens

	Credential  *Credential // complete: the owner's new credentials
	CompletedBy string      // complete: who completed it
	ExpiresAt   time.Time   // renew: the lease's new end at the latest
	Runtime     []Service   // runtime: the layer as it now is
}

// refusal is a transition's no: bad input for this state, a 400 naming why.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }

type effectKind int

const (
	effAnnounce effectKind = iota
	effPutCurrent
	effDeleteCurrent
	effPutTask
	effPutProcess
	effDeleteProcess
	effDeleteTask
)

// effect is one storage change (or announcement) of a transition, in the order apply runs them.
type effect struct {
	Kind       effectKind
	Event      notifyEvent
	Process    *processEntry
	Task       *taskEntry
	Credential *Credential
}

// effects collects a transition's effects by kind, and lists them in apply's order.
type effects struct {
	announce      []effect
	putCurrent    *effect
	deleteCurrent *processEntry
	tasks         []effect
	process       *processEntry
}

func (e *effects) list() []effect {
	out := append([]effect(nil), e.announce...)
	if e.putCurrent != nil {
		out = append(out, *e.putCurrent)
	}
	if e.deleteCurrent != nil {
		out = append(out, effect{Kind: effDeleteCurrent, Process: e.deleteCurrent})
	}
	out = append(out, e.tasks...)
	if e.process != nil {
		out = append(out, effect{Kind: effPutProcess, Process: e.process})
	}
	return out
}

// transition is the state machine: pure, so every (health, event) pair is a table test.
func transition(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	if ev.Kind == lifeForgetTask {
		if st.Task == nil || st.Task.Status == taskOpen {
			return st, nil, nil // an open task is never forgotten
		}
		return lifeState{}, []effect{{Kind: effDeleteTask, Task: st.Task}}, nil
	}
	if st.Process == nil && ev.Kind != lifeComplete && ev.Kind != lifeCancel && ev.Kind != lifeOrphan {
		return st, nil, nil // nothing to change: the process has ended
	}
	switch ev.Kind {
	case lifeFailure:
		return failure(st, ev)
	case lifeExpiring:
		return expiring(st, ev)
	case lifeComplete:
		return complete(st, ev)
	case lifeCancel:
		return cancel(st, ev)
	case lifeResume:
		return resume(st, ev)
	case lifeEnd:
		return end(st, ev)
	case lifeOrphan:
		return orphan(st, ev)
	case lifeRenew:
		p := *st.Process
		p.ExpiresAt = ev.ExpiresAt
		return lifeState{Process: &p, Task: st.Task}, []effect{{Kind: effPutProcess, Process: &p}}, nil
	case lifeRuntime:
		p := *st.Process
		p.Runtime, p.UpdatedTime = ev.Runtime, ev.Now
		return lifeState{Process: &p, Task: st.Task}, []effect{{Kind: effPutProcess, Process: &p}}, nil
	case lifeFoldCurrent:
		p := *st.Process
		p.Current = ev.Credential
		return lifeState{Process: &p, Task: st.Task}, []effect{{Kind: effPutProcess, Process: &p}}, nil
	case lifeRepair:
		return repair(st, ev)
	}
	return st, nil, fmt.Errorf("unknown lifecycle event %d", ev.Kind)
}

func failure(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	before := st.Process
	if before.Health == healthFailed {
		return st, nil, nil // final
	}
	p := *before
	p.UpdatedTime = ev.Now
	if ev.Retried != nil {
		p.Retried = ev.Retried
	}
	p.Health, p.HealthReason = ev.Health, ev.HealthReason
	if ev.Health == healthRunning {
		// Only the owner's task or an operator's resume un-breaks a process.
		p.Health, p.HealthReason = before.Health, before.HealthReason
	}
	if ev.Health == healthBroken && p.Health == healthBroken {
		breakBy(&p, before, ev)
	}
	var fx effects
	open := openTaskIn(st)
	var created *taskEntry
	if ev.CurrentFailed && p.Health == healthBroken {
		if open != nil {
			p.TaskID = open.ID
		} else {
			created = newTask(&p, ev)
			p.TaskID = created.ID
		}
	}
	next := lifeState{Process: &p, Task: open}
	if p.Health == healthFailed {
		fail(&p, open, "", ev.Now, &fx)
		next.Task = nil
	}
	if p.Health == healthBroken && before.Health != healthBroken {
		fx.announce = append(fx.announce, effect{Kind: effAnnounce, Event: notifyEvent{Type: eventProcessBroken, ProcessID: p.ID,
			TaskID: p.TaskID, Service: ev.Service, Owner: p.Owner, OwnerEntityID: p.OwnerEntityID, Reason: ev.Reason}})
	}
	if created != nil {
		fx.announce = append(fx.announce, effect{Kind: effAnnounce, Event: taskEvent(eventTaskCreated, created)})
		fx.tasks = append(fx.tasks, effect{Kind: effPutTask, Task: created})
		next.Task = created
	}
	fx.process = &p
	return next, fx.list(), nil
}

// fail makes p failed: its open task cancelled, its current credentials wiped.
func fail(p *processEntry, open *taskEntry, reason string, now time.Time, fx *effects) {
	p.Health, p.TaskID, p.UpdatedTime = healthFailed, "", now
	p.BrokenByCurrent, p.OperatorReason = false, ""
	if reason != "" {
		p.HealthReason = reason
	}
	if open != nil {
		closed := closedAs(open, taskCancelled, now)
		fx.announce = append(fx.announce, effect{Kind: effAnnounce, Event: taskEvent(eventTaskCancelled, closed)})
		fx.tasks = append(fx.tasks, effect{Kind: effPutTask, Task: closed})
	}
	if p.HasCurrent {
		p.HasCurrent, p.Current = false, nil
		fx.deleteCurrent = p
	}
}

func expiring(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	if open := openTaskIn(st); open != nil || st.Process.Health == healthFailed {
		return st, nil, nil // asked already, or nobody to ask for
	}
	p := *st.Process
	t := newTask(&p, ev)
	p.TaskID, p.UpdatedTime = t.ID, ev.Now
	fx := effects{
		announce: []effect{{Kind: effAnnounce, Event: taskEvent(eventTaskCreated, t)}},
		tasks:    []effect{{Kind: effPutTask, Task: t}},
		process:  &p,
	}
	return lifeState{Process: &p, Task: t}, fx.list(), nil
}

func complete(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	t := st.Task
	switch {
	case t == nil || t.Status != taskOpen:
		return st, nil, refusal{"the task is not open"}
	case st.Process == nil:
		return st, nil, refusal{fmt.Sprintf("task %q belongs to process %q, which has ended", t.ID, t.ProcessID)}
	case st.Process.Health == healthFailed:
		// Final: new credentials would only be wiped again, and nothing resumes.
		return st, nil, refusal{fmt.Sprintf("task %q belongs to process %q, which has failed", t.ID, t.ProcessID)}
	}
	closed := closedAs(t, taskCompleted, ev.Now)
	closed.CompletedBy = ev.CompletedBy
	p := *st.Process
	p.HasCurrent = p.KeepCredentials != keepNone
	if p.TaskID == t.ID {
		ownerDone(&p)
	}
	p.UpdatedTime = ev.Now
	fx := effects{
		announce: []effect{{Kind: effAnnounce, Event: taskEvent(eventTaskCompleted, closed)}},
		tasks:    []effect{{Kind: effPutTask, Task: closed}},
		process:  &p,
	}
	if p.HasCurrent {
		if p.KeepCredentials == keepPersistent {
			p.Current = ev.Credential // in the process's own record, written once below
		}
		fx.putCurrent = &effect{Kind: effPutCurrent, Process: &p, Credential: ev.Credential}
	}
	return lifeState{Process: &p, Task: closed}, fx.list(), nil
}

func cancel(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	t := st.Task
	if t == nil || t.Status != taskOpen {
		return st, nil, refusal{"the task is not open"}
	}
	var fx effects
	if st.Process == nil {
		closed := closedAs(t, taskCancelled, ev.Now)
		fx.announce = []effect{{Kind: effAnnounce, Event: taskEvent(eventTaskCancelled, closed)}}
		fx.tasks = []effect{{Kind: effPutTask, Task: closed}}
		return lifeState{Task: closed}, fx.list(), nil
	}
	p := *st.Process
	fail(&p, t, fmt.Sprintf("task %s was cancelled", t.ID), ev.Now, &fx)
	fx.process = &p
	return lifeState{Process: &p, Task: fx.tasks[0].Task}, fx.list(), nil
}

func resume(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	p := *st.Process
	current, operator := brokenCauses(&p)
	switch {
	case p.Health != healthBroken:
		return st, nil, refusal{fmt.Sprintf("process %q is %s, not broken", p.ID, p.Health)}
	case current && operator != "":
		return st, nil, refusal{fmt.Sprintf("process %q waits for its owner first: its current credentials failed too; resume it once task %s is completed", p.ID, p.TaskID)}
	case current:
		return st, nil, refusal{fmt.Sprintf("process %q waits for its owner: it resumes when task %s is completed", p.ID, p.TaskID)}
	}
	// An open task (a preflight's) stays open: the owner may still complete it.
	p.Health, p.HealthReason, p.Retried, p.UpdatedTime = healthRunning, "", nil, ev.Now
	p.BrokenByCurrent, p.OperatorReason = false, ""
	fx := effects{
		announce: []effect{{Kind: effAnnounce, Event: notifyEvent{Type: eventProcessResumed, ProcessID: p.ID, Owner: p.Owner,
			OwnerEntityID: p.OwnerEntityID, Reason: "resumed by an operator"}}},
		process: &p,
	}
	return lifeState{Process: &p}, fx.list(), nil
}

// end wipes the process. Its open task, cancelled, is written last, so that a crash before that
// leaves an open task whose process is gone, which the sweep cancels.
func end(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	p := st.Process
	var list, last []effect
	if open := openTaskIn(st); open != nil {
		closed := closedAs(open, taskCancelled, ev.Now)
		list = append(list, effect{Kind: effAnnounce, Event: taskEvent(eventTaskCancelled, closed)})
		last = append(last, effect{Kind: effPutTask, Task: closed})
	}
	list = append(list, effect{Kind: effDeleteCurrent, Process: p}, effect{Kind: effDeleteProcess, Process: p})
	return lifeState{}, append(list, last...), nil
}

// orphan cancels an open task its process does not wait for (a crash between writes, or a
// process gone).
func orphan(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	t := st.Task
	if t == nil || t.Status != taskOpen || (st.Process != nil && st.Process.TaskID == t.ID) {
		return st, nil, nil
	}
	closed := closedAs(t, taskCancelled, ev.Now)
	fx := effects{
		announce: []effect{{Kind: effAnnounce, Event: taskEvent(eventTaskCancelled, closed)}},
		tasks:    []effect{{Kind: effPutTask, Task: closed}},
	}
	return lifeState{Process: st.Process, Task: closed}, fx.list(), nil
}

// repair finishes a change a crash cut short: the process still points at a task that was
// closed. A completion meant running; a cancellation meant failed.
func repair(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	t := st.Task
	if t == nil || t.Status == taskOpen || st.Process.TaskID != t.ID {
		return st, nil, nil
	}
	p := *st.Process
	var fx effects
	if t.Status == taskCompleted {
		ownerDone(&p)
		p.UpdatedTime = ev.Now
	} else {
		fail(&p, nil, fmt.Sprintf("task %s was cancelled", t.ID), ev.Now, &fx)
	}
	fx.process = &p
	return lifeState{Process: &p, Task: t}, fx.list(), nil
}

// openTaskIn is the state's task when it is open and belongs to the process.
func openTaskIn(st lifeState) *taskEntry {
	if st.Task == nil || st.Task.Status != taskOpen || st.Process == nil || st.Task.ProcessID != st.Process.ID {
		return nil
	}
	return st.Task
}

func newTask(p *processEntry, ev lifeEvent) *taskEntry {
	return &taskEntry{ID: ev.NewTaskID, ProcessID: p.ID, Service: ev.Service, Reason: ev.Reason, Owner: p.Owner,
		OwnerEntityID: p.OwnerEntityID, Status: taskOpen, CreatedTime: ev.Now}
}
