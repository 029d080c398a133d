package lifecycle

// Why a broken process is broken, and what un-breaks it. A process breaks for two kinds of reason
// that different people fix: its current credentials failed (its owner's task resumes it), or
// something its owner cannot fix failed — a technical credential, a service (an operator's
// resume). An open task alone says neither: a preflight task (reason expiring) is open while the
// process runs, and stays open when a technical credential then breaks it. So each cause is kept
// on the process, and completing a task resumes only a process its current credentials broke.

// brokenCauses says why p is broken: by its current credentials, and the reason of what else
// broke it ("" for nothing else). A record written before the causes were kept counts as its task
// said then: broken with a task is waiting for its owner, without one for an operator.
func brokenCauses(p *Process) (current bool, operator string) {
	switch {
	case p.Health != Broken:
		return false, ""
	case p.BrokenByCurrent || p.OperatorReason != "":
		return p.BrokenByCurrent, p.OperatorReason
	case p.TaskID != "":
		return true, ""
	case p.HealthReason != "":
		return false, p.HealthReason
	}
	return false, "broken"
}

// breakBy records a failure that broke p (p.Health is broken): its cause joins those before.
func breakBy(p, before *Process, ev Event) {
	current, operator := brokenCauses(before)
	if ev.CurrentFailed {
		current = true
	} else if operator = ev.HealthReason; operator == "" {
		operator = ev.Reason
	}
	p.BrokenByCurrent, p.OperatorReason = current, operator
}

// ownerDone is what the owner's completed task (the one p waits for) means for p: its current
// credentials are new, so the process runs again, unless something else broke it too, which only
// an operator's resume mends; then it stays broken for that reason.
func ownerDone(p *Process) {
	_, operator := brokenCauses(p)
	p.TaskID, p.BrokenByCurrent, p.OperatorReason = "", false, operator
	switch {
	case p.Health != Broken:
	case operator == "":
		p.Health, p.HealthReason = Running, ""
	default:
		p.HealthReason = operator
	}
}
