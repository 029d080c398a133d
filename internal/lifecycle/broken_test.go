package lifecycle

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Completing a task resumes only what the task was about: a process broken by a technical
// credential stays broken after its owner completes a preflight task, and an operator's resume
// still works, before or after the completion.
func TestTaskCompletionResumesOnlyWhatItWasAbout(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cred := &credential.Credential{Type: "password", Fields: map[string]string{"username": "ann", "password": "new"}}
	tech := Event{Kind: Failure, Health: Broken, Service: "erp", Reason: "auth_failed", HealthReason: `technical credential "erp" failed (auth_failed)`}
	current := Event{Kind: Failure, Health: Broken, CurrentFailed: true, NewTaskID: "N", Service: "crm", Reason: "auth_failed", HealthReason: "the current credentials failed"}
	steps := map[string][]struct {
		ev   Event
		want string // "health task reason", or "refused: ..."
	}{
		"preflight task, technical break, owner completes, operator resumes": {
			{Event{Kind: Expiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{tech, `broken T technical credential "erp" failed (auth_failed)`},
			{Event{Kind: Complete, Credential: cred}, `broken - technical credential "erp" failed (auth_failed)`},
			{Event{Kind: Resume}, "running - "},
		},
		"preflight task, technical break, operator resumes first, owner completes later": {
			{Event{Kind: Expiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{tech, `broken T technical credential "erp" failed (auth_failed)`},
			{Event{Kind: Resume}, "running T "},
			{Event{Kind: Complete, Credential: cred}, "running - "},
		},
		"technical break, then the current credentials too: the owner first, then the operator": {
			{tech, `broken - technical credential "erp" failed (auth_failed)`},
			{current, "broken N the current credentials failed"},
			{Event{Kind: Resume}, `refused: process "p" waits for its owner first`},
			{Event{Kind: Complete, Credential: cred}, `broken - technical credential "erp" failed (auth_failed)`},
			{Event{Kind: Resume}, "running - "},
		},
		"current break: completing resumes, resume is refused": {
			{current, "broken N the current credentials failed"},
			{Event{Kind: Resume}, `refused: process "p" waits for its owner: it resumes when task N is completed`},
			{Event{Kind: Complete, Credential: cred}, "running - "},
		},
		"preflight task, then the current credentials fail: completing resumes": {
			{Event{Kind: Expiring, NewTaskID: "T", Service: "crm", Reason: "expiring"}, "running T "},
			{current, "broken T the current credentials failed"},
			{Event{Kind: Complete, Credential: cred}, "running - "},
		},
	}
	for name, story := range steps {
		t.Run(name, func(t *testing.T) {
			st := State{Process: &Process{ID: "p", Health: Running, HasCurrent: true, KeepCredentials: KeepPersistent}}
			tasks := map[string]*Task{}
			for i, step := range story {
				ev := step.ev
				ev.Now = now
				next, _, err := Transition(st, ev)
				var got string
				var r Refusal
				switch {
				case errors.As(err, &r):
					got = "refused: " + r.Reason
				case err != nil:
					t.Fatal(err)
				default:
					task := next.Process.TaskID
					if task == "" {
						task = "-"
					}
					got = next.Process.Health + " " + task + " " + next.Process.HealthReason
					// As the writer's loadLife does: the next event sees the task the process points at.
					if next.Task != nil {
						tasks[next.Task.ID] = next.Task
					}
					st = State{Process: next.Process, Task: tasks[next.Process.TaskID]}
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
		p        Process
		current  bool
		operator string
	}{
		{Process{Health: Running, TaskID: "T"}, false, ""},
		{Process{Health: Broken, TaskID: "T", HealthReason: "the current credentials failed"}, true, ""},
		{Process{Health: Broken, HealthReason: `technical credential "erp" failed`}, false, `technical credential "erp" failed`},
		{Process{Health: Broken}, false, "broken"},
		{Process{Health: Broken, TaskID: "T", OperatorReason: "x"}, false, "x"},
		{Process{Health: Broken, TaskID: "T", BrokenByCurrent: true, OperatorReason: "x"}, true, "x"},
	} {
		if c, o := brokenCauses(&tc.p); c != tc.current || o != tc.operator {
			t.Errorf("%+v: %v %q, want %v %q", tc.p, c, o, tc.current, tc.operator)
		}
	}
}
