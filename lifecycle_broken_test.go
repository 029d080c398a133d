package pecreds

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Completing a task resumes only what the task was about: a process broken by a technical
// credential stays broken after its owner completes a preflight task, and an operator's resume
// still works, before or after the completion.
func TestTaskCompletionResumesOnlyWhatItWasAbout(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cred := &Credential{Type: "password", Fields: map[string]string{"username": "ann", "password": "new"}}
	tech := lifeEvent{Kind: lifeFailure, Health: healthBroken, Service: "erp", Reason: "auth_failed", HealthReason: `technical credential "erp" failed (auth_failed)`}
	current := lifeEvent{Kind: lifeFailure, Health: healthBroken, CurrentFailed: true, NewTaskID: "N", Service: "crm", Reason: "auth_failed", HealthReason: "the current credentials failed"}
	steps := map[string][]struct {
		ev   lifeEvent
		want string // "health task reason", or "refused: ..."
	}{
		"preflight task, technical break, owner completes, operator resumes": {
			{lifeEvent{Kind: lifeExpiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{tech, `broken T technical credential "erp" failed (auth_failed)`},
			{lifeEvent{Kind: lifeComplete, Credential: cred}, `broken - technical credential "erp" failed (auth_failed)`},
			{lifeEvent{Kind: lifeResume}, "running - "},
		},
		"preflight task, technical break, operator resumes first, owner completes later": {
			{lifeEvent{Kind: lifeExpiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{tech, `broken T technical credential "erp" failed (auth_failed)`},
			{lifeEvent{Kind: lifeResume}, "running T "},
			{lifeEvent{Kind: lifeComplete, Credential: cred}, "running - "},
		},
		"technical break, then the current credentials too: the owner first, then the operator": {
			{tech, `broken - technical credential "erp" failed (auth_failed)`},
			{current, "broken N the current credentials failed"},
			{lifeEvent{Kind: lifeResume}, `refused: process "p" waits for its owner first`},
			{lifeEvent{Kind: lifeComplete, Credential: cred}, `broken - technical credential "erp" failed (auth_failed)`},
			{lifeEvent{Kind: lifeResume}, "running - "},
		},
		"current break: completing resumes, resume is refused": {
			{current, "broken N the current credentials failed"},
			{lifeEvent{Kind: lifeResume}, `refused: process "p" waits for its owner: it resumes when task N is completed`},
			{lifeEvent{Kind: lifeComplete, Credential: cred}, "running - "},
		},
		"preflight task, then the current credentials fail: completing resumes": {
			{lifeEvent{Kind: lifeExpiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{current, "broken T the current credentials failed"},
			{lifeEvent{Kind: lifeComplete, Credential: cred}, "running - "},
		},
	}
	for name, story := range steps {
		t.Run(name, func(t *testing.T) {
			st := lifeState{Process: &processEntry{ID: "p", Health: healthRunning, HasCurrent: true, KeepCredentials: keepPersistent}}
			tasks := map[string]*taskEntry{}
			for i, step := range story {
				ev := step.ev
				ev.Now = now
				next, _, err := transition(st, ev)
				var got string
				var r refusal
				switch {
				case errors.As(err, &r):
					got = "refused: " + r.msg
				case err != nil:
					t.Fatal(err)
				default:
					task := next.Process.TaskID
					if task == "" {
						task = "-"
					}
					got = next.Process.Health + " " + task + " " + next.Process.HealthReason
					// As loadLife does: the next event sees the task the process points at.
					if next.Task != nil {
						tasks[next.Task.ID] = next.Task
					}
					st = lifeState{Process: next.Process, Task: tasks[next.Process.TaskID]}
				}
				if !strings.HasPrefix(got, step.want) || (!strings.HasPrefix(step.want, "refused") && got != step.want) {
					t.Fatalf("step %d: got %q, want %q", i, got, step.want)
				}
			}
		})
	}
}

// A record written before the causes were kept reads as its task said then.
func TestBrokenCausesOfOldRecords(t *testing.T) {
	for _, tc := range []struct {
		p        processEntry
		current  bool
		operator string
	}{
		{processEntry{Health: healthRunning, TaskID: "T"}, false, ""},
		{processEntry{Health: healthBroken, TaskID: "T", HealthReason: "the current credentials failed"}, true, ""},
		{processEntry{Health: healthBroken, HealthReason: `technical credential "erp" failed`}, false, `technical credential "erp" failed`},
		{processEntry{Health: healthBroken}, false, "broken"},
		{processEntry{Health: healthBroken, TaskID: "T", OperatorReason: "x"}, false, "x"},
		{processEntry{Health: healthBroken, TaskID: "T", BrokenByCurrent: true, OperatorReason: "x"}, true, "x"},
	} {
		if c, o := brokenCauses(&tc.p); c != tc.current || o != tc.operator {
			t.Errorf("%+v: %v %q, want %v %q", tc.p, c, o, tc.current, tc.operator)
		}
	}
}
