package lifecycle

import (
	"fmt"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The transitions that change a process's health or its task, one function per kind of event
// (Transition dispatches).

func failure(st State, ev Event) (State, []Effect, error) {
	before := st.Process
	if before.Health == Failed {
		return st, nil, nil // final
	}
	p := *before
	p.UpdatedTime = ev.Now
	if ev.Retried != nil {
		p.Retried = ev.Retried
	}
	p.Health, p.HealthReason = ev.Health, ev.HealthReason
	if ev.Health == Running {
		// Only the owner's task or an operator's resume un-breaks a process.
		p.Health, p.HealthReason = before.Health, before.HealthReason
	}
	if ev.Health == Broken && p.Health == Broken {
		breakBy(&p, before, ev)
	}
	var fx effects
	open := openTaskIn(st)
	var created *Task
	if ev.CurrentFailed && p.Health == Broken {
		if open != nil {
			p.TaskID = open.ID
		} else {
			created = newTask(&p, ev)
			p.TaskID = created.ID
		}
	}
	next := State{Process: &p, Task: open}
	if p.Health == Failed {
		fail(&p, open, "", ev.Now, &fx)
		next.Task = nil
	}
	if p.Health == Broken && before.Health != Broken {
		fx.announce = append(fx.announce, Effect{Kind: Announce, Event: outbox.Event{Type: ProcessBroken, ProcessID: p.ID,
			TaskID: p.TaskID, Service: ev.Service, Owner: p.Owner, OwnerEntityID: p.OwnerEntityID, Reason: ev.Reason}})
	}
	if created != nil {
		fx.announce = append(fx.announce, Effect{Kind: Announce, Event: taskEvent(TaskCreated, created)})
		fx.tasks = append(fx.tasks, Effect{Kind: PutTask, Task: created})
		next.Task = created
	}
	fx.process = &p
	return next, fx.list(), nil
}

// fail makes p failed: its open task cancelled, its current credentials wiped.
func fail(p *Process, open *Task, reason string, now time.Time, fx *effects) {
	p.Health, p.TaskID, p.UpdatedTime = Failed, "", now
	p.BrokenByCurrent, p.OperatorReason = false, ""
	if reason != "" {
		p.HealthReason = reason
	}
	if open != nil {
		closed := closedAs(open, StatusCancelled, now)
		fx.announce = append(fx.announce, Effect{Kind: Announce, Event: taskEvent(TaskCancelled, closed)})
		fx.tasks = append(fx.tasks, Effect{Kind: PutTask, Task: closed})
	}
	if p.HasCurrent {
		p.HasCurrent, p.Current = false, nil
		fx.deleteCurrent = p
	}
}

func expiring(st State, ev Event) (State, []Effect, error) {
	if open := openTaskIn(st); open != nil || st.Process.Health == Failed {
		return st, nil, nil // asked already, or nobody to ask for
	}
	p := *st.Process
	t := newTask(&p, ev)
	p.TaskID, p.UpdatedTime = t.ID, ev.Now
	fx := effects{
		announce: []Effect{{Kind: Announce, Event: taskEvent(TaskCreated, t)}},
		tasks:    []Effect{{Kind: PutTask, Task: t}},
		process:  &p,
	}
	return State{Process: &p, Task: t}, fx.list(), nil
}

func complete(st State, ev Event) (State, []Effect, error) {
	t := st.Task
	switch {
	case t == nil || t.Status != StatusOpen:
		return st, nil, Refusal{"the task is not open"}
	case st.Process == nil:
		return st, nil, Refusal{fmt.Sprintf("task %q belongs to process %q, which has ended", t.ID, t.ProcessID)}
	case st.Process.Health == Failed:
		// Final: new credentials would only be wiped again, and nothing resumes.
		return st, nil, Refusal{fmt.Sprintf("task %q belongs to process %q, which has failed", t.ID, t.ProcessID)}
	}
	closed := closedAs(t, StatusCompleted, ev.Now)
	closed.CompletedBy = ev.CompletedBy
	p := *st.Process
	p.HasCurrent = p.KeepCredentials != KeepNone
	if p.TaskID == t.ID {
		ownerDone(&p)
	}
	p.UpdatedTime = ev.Now
	fx := effects{
		announce: []Effect{{Kind: Announce, Event: taskEvent(TaskCompleted, closed)}},
		tasks:    []Effect{{Kind: PutTask, Task: closed}},
		process:  &p,
	}
	if p.HasCurrent {
		if p.KeepCredentials == KeepPersistent {
			p.Current = ev.Credential // in the process's own record, written once below
		}
		fx.putCurrent = &Effect{Kind: PutCurrent, Process: &p, Credential: ev.Credential}
	}
	return State{Process: &p, Task: closed}, fx.list(), nil
}

func cancel(st State, ev Event) (State, []Effect, error) {
	t := st.Task
	if t == nil || t.Status != StatusOpen {
		return st, nil, Refusal{"the task is not open"}
	}
	var fx effects
	if st.Process == nil {
		closed := closedAs(t, StatusCancelled, ev.Now)
		fx.announce = []Effect{{Kind: Announce, Event: taskEvent(TaskCancelled, closed)}}
		fx.tasks = []Effect{{Kind: PutTask, Task: closed}}
		return State{Task: closed}, fx.list(), nil
	}
	p := *st.Process
	fail(&p, t, fmt.Sprintf("task %s was cancelled", t.ID), ev.Now, &fx)
	fx.process = &p
	return State{Process: &p, Task: fx.tasks[0].Task}, fx.list(), nil
}

func resume(st State, ev Event) (State, []Effect, error) {
	p := *st.Process
	current, operator := brokenCauses(&p)
	switch {
	case p.Health != Broken:
		return st, nil, Refusal{fmt.Sprintf("process %q is %s, not broken", p.ID, p.Health)}
	case current && operator != "":
		return st, nil, Refusal{fmt.Sprintf("process %q waits for its owner first: its current credentials failed too; resume it once task %s is completed", p.ID, p.TaskID)}
	case current:
		return st, nil, Refusal{fmt.Sprintf("process %q waits for its owner: it resumes when task %s is completed", p.ID, p.TaskID)}
	}
	// An open task (a preflight's) stays open: the owner may still complete it.
	p.Health, p.HealthReason, p.Retried, p.UpdatedTime = Running, "", nil, ev.Now
	p.BrokenByCurrent, p.OperatorReason = false, ""
	fx := effects{
		announce: []Effect{{Kind: Announce, Event: outbox.Event{Type: ProcessResumed, ProcessID: p.ID, Owner: p.Owner,
			OwnerEntityID: p.OwnerEntityID, Reason: "resumed by an operator"}}},
		process: &p,
	}
	return State{Process: &p}, fx.list(), nil
}

// end wipes the process. Its open task, cancelled, is written last, so that a crash before that
// leaves an open task whose process is gone, which the sweep cancels.
func end(st State, ev Event) (State, []Effect, error) {
	p := st.Process
	var list, last []Effect
	if open := openTaskIn(st); open != nil {
		closed := closedAs(open, StatusCancelled, ev.Now)
		list = append(list, Effect{Kind: Announce, Event: taskEvent(TaskCancelled, closed)})
		last = append(last, Effect{Kind: PutTask, Task: closed})
	}
	list = append(list, Effect{Kind: DeleteCurrent, Process: p}, Effect{Kind: DeleteProcess, Process: p})
	return State{}, append(list, last...), nil
}

// orphan cancels an open task its process does not wait for (a crash between writes, or a
// process gone).
func orphan(st State, ev Event) (State, []Effect, error) {
	t := st.Task
	if t == nil || t.Status != StatusOpen || (st.Process != nil && st.Process.TaskID == t.ID) {
		return st, nil, nil
	}
	closed := closedAs(t, StatusCancelled, ev.Now)
	fx := effects{
		announce: []Effect{{Kind: Announce, Event: taskEvent(TaskCancelled, closed)}},
		tasks:    []Effect{{Kind: PutTask, Task: closed}},
	}
	return State{Process: st.Process, Task: closed}, fx.list(), nil
}

// repair finishes a change a crash cut short: the process still points at a task that was
// closed. A completion meant running; a cancellation meant failed.
func repair(st State, ev Event) (State, []Effect, error) {
	t := st.Task
	if t == nil || t.Status == StatusOpen || st.Process.TaskID != t.ID {
		return st, nil, nil
	}
	p := *st.Process
	var fx effects
	if t.Status == StatusCompleted {
		ownerDone(&p)
		p.UpdatedTime = ev.Now
	} else {
		fail(&p, nil, fmt.Sprintf("task %s was cancelled", t.ID), ev.Now, &fx)
	}
	fx.process = &p
	return State{Process: &p, Task: t}, fx.list(), nil
}
