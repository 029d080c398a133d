package temporal

// Names this package gives Temporal.
const (
	// MemoKey is the memo entry of a workflow started for a user (Starter.Start): the owner's
	// name. The interceptor acts only on workflows that carry it.
	MemoKey = "pecreds_owner"
	// ProcessSignal carries the process's lease id from the starter to the workflow.
	ProcessSignal = "pecreds-process"
	// ResumeSignal wakes a workflow that waits for its owner's task, so that it reads its
	// process's health now rather than at the next check (Resume sends it).
	ResumeSignal = "pecreds-resume"
	// StatusQuery answers a workflow's Status: its process, health and the task it waits for.
	StatusQuery = "pecreds-status"
	// WaitErrorType is the failure type of an activity whose process is broken and waits for
	// its owner's task; the interceptor waits, then runs the activity again.
	WaitErrorType = "PecredsProcessBroken"
	// FailedErrorType is the failure type of an activity whose process failed: not retried.
	FailedErrorType = "PecredsProcessFailed"
	// RetryErrorType is the failure type of an activity whose report pecreds answered with
	// retry (a technical credential refreshed, a service unavailable): retried per its policy.
	RetryErrorType = "PecredsRetry"
)

// maxName is the longest pecreds name (process ids included).
const maxName = 128

// ProcessID is the pecreds process id of a workflow run: the workflow id, with every character
// pecreds does not allow in a name replaced by '_' and cut to fit, then '.', then the run id
// (unique on its own, so the cut loses nothing).
func ProcessID(workflowID, runID string) string {
	run := sanitize(runID)
	if len(run) > maxName-2 { // a run id is a UUID; this keeps room for one character and '.'
		run = run[:maxName-2]
	}
	wf := sanitize(workflowID)
	if wf == "" || !alnum(wf[0]) {
		wf = "w" + wf
	}
	if room := maxName - 1 - len(run); len(wf) > room {
		wf = wf[:room]
	}
	return wf + "." + run
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !alnum(c) && c != '.' && c != '_' && c != '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
