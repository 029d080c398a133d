package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// describeEffects renders effects as "announce:process-broken put-task put-process".
func describeEffects(list []Effect) string {
	var out []string
	for _, e := range list {
		switch e.Kind {
		case Announce:
			out = append(out, "announce:"+e.Event.Type)
		case PutCurrent:
			out = append(out, "put-current")
		case DeleteCurrent:
			out = append(out, "delete-current")
		case PutTask:
			out = append(out, "put-task:"+e.Task.Status)
		case PutProcess:
			out = append(out, "put-process")
		case DeleteProcess:
			out = append(out, "delete-process")
		}
	}
	return strings.Join(out, " ")
}

// Every process state against every event: the next health, the task it waits for, and the
// effects in the order the writer runs them.
func TestTransitionTable(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	task := func(status string) *Task {
		return &Task{ID: "T", ProcessID: "p", Status: status, CreatedTime: now.Add(-time.Hour)}
	}
	states := map[string]func() State{
		"running": func() State {
			return State{Process: &Process{ID: "p", Health: Running, HasCurrent: true, KeepCredentials: KeepPersistent}}
		},
		"running+task": func() State {
			return State{Process: &Process{ID: "p", Health: Running, HasCurrent: true, KeepCredentials: KeepPersistent, TaskID: "T"}, Task: task(StatusOpen)}
		},
		"broken+task": func() State {
			return State{Process: &Process{ID: "p", Health: Broken, HasCurrent: true, KeepCredentials: KeepPersistent, TaskID: "T"}, Task: task(StatusOpen)}
		},
		"broken (technical)": func() State {
			return State{Process: &Process{ID: "p", Health: Broken, HasCurrent: true, KeepCredentials: KeepPersistent}}
		},
		"failed": func() State {
			return State{Process: &Process{ID: "p", Health: Failed, KeepCredentials: KeepPersistent}}
		},
		"gone, task open": func() State { return State{Task: task(StatusOpen)} },
		"running, task stale": func() State {
			return State{Process: &Process{ID: "p", Health: Running}, Task: task(StatusOpen)}
		},
	}
	cred := &credential.Credential{Type: "password", Fields: map[string]string{"username": "ann", "password": "pw"}}
	events := map[string]Event{
		"failure→running":         {Kind: Failure, Health: Running, Service: "crm", Reason: "unavailable"},
		"failure→broken(current)": {Kind: Failure, Health: Broken, CurrentFailed: true, NewTaskID: "N", Service: "crm", Reason: "auth_failed", HealthReason: "the current credentials failed"},
		"failure→broken(tech)":    {Kind: Failure, Health: Broken, Service: "crm", Reason: "auth_failed", HealthReason: "technical credential failed"},
		"failure→failed":          {Kind: Failure, Health: Failed, Service: "crm", Reason: "forbidden", HealthReason: "forbidden"},
		"expiring":                {Kind: Expiring, NewTaskID: "N", Service: "crm", Reason: "expiring"},
		"complete":                {Kind: Complete, Credential: cred, CompletedBy: "ent-ann"},
		"cancel":                  {Kind: Cancel},
		"resume":                  {Kind: Resume},
		"end":                     {Kind: End},
		"orphan":                  {Kind: Orphan},
	}
	// want: "health task effects" or "refused: ..." ; task is the process's TaskID ("-" for none).
	want := map[string]map[string]string{
		"running": {
			"failure→running":         "running - put-process",
			"failure→broken(current)": "broken N announce:process-broken announce:task-created put-task:open put-process",
			"failure→broken(tech)":    "broken - announce:process-broken put-process",
			"failure→failed":          "failed - delete-current put-process",
			"expiring":                "running N announce:task-created put-task:open put-process",
			"complete":                "refused: the task is not open",
			"cancel":                  "refused: the task is not open",
			"resume":                  `refused: process "p" is running, not broken`,
			"end":                     "gone - delete-current delete-process",
			"orphan":                  "running - ",
		},
		"running+task": {
			"failure→running":         "running T put-process",
			"failure→broken(current)": "broken T announce:process-broken put-process",
			"failure→broken(tech)":    "broken T announce:process-broken put-process",
			"failure→failed":          "failed - announce:task-cancelled delete-current put-task:cancelled put-process",
			"expiring":                "running T ",
			"complete":                "running - announce:task-completed put-current put-task:completed put-process",
			"cancel":                  "failed - announce:task-cancelled delete-current put-task:cancelled put-process",
			"resume":                  `refused: process "p" is running, not broken`,
			"end":                     "gone - announce:task-cancelled delete-current delete-process put-task:cancelled",
			"orphan":                  "running T ",
		},
		"broken+task": {
			"failure→running":         "broken T put-process",
			"failure→broken(current)": "broken T put-process",
			"failure→broken(tech)":    "broken T put-process",
			"failure→failed":          "failed - announce:task-cancelled delete-current put-task:cancelled put-process",
			"expiring":                "broken T ",
			"complete":                "running - announce:task-completed put-current put-task:completed put-process",
			"cancel":                  "failed - announce:task-cancelled delete-current put-task:cancelled put-process",
			"resume":                  `refused: process "p" waits for its owner: it resumes when task T is completed`,
			"end":                     "gone - announce:task-cancelled delete-current delete-process put-task:cancelled",
			"orphan":                  "broken T ",
		},
		"broken (technical)": {
			"failure→running":         "broken - put-process",
			"failure→broken(current)": "broken N announce:task-created put-task:open put-process",
			"failure→broken(tech)":    "broken - put-process",
			"failure→failed":          "failed - delete-current put-process",
			"expiring":                "broken N announce:task-created put-task:open put-process",
			"complete":                "refused: the task is not open",
			"cancel":                  "refused: the task is not open",
			"resume":                  "running - announce:process-resumed put-process",
			"end":                     "gone - delete-current delete-process",
			"orphan":                  "broken - ",
		},
		"failed": {
			"failure→running":         "failed - ",
			"failure→broken(current)": "failed - ",
			"failure→broken(tech)":    "failed - ",
			"failure→failed":          "failed - ",
			"expiring":                "failed - ",
			"complete":                "refused: the task is not open",
			"cancel":                  "refused: the task is not open",
			"resume":                  `refused: process "p" is failed, not broken`,
			"end":                     "gone - delete-current delete-process",
			"orphan":                  "failed - ",
		},
		"gone, task open": {
			"failure→running":         "gone - ",
			"failure→broken(current)": "gone - ",
			"failure→broken(tech)":    "gone - ",
			"failure→failed":          "gone - ",
			"expiring":                "gone - ",
			"complete":                `refused: task "T" belongs to process "p", which has ended`,
			"cancel":                  "gone - announce:task-cancelled put-task:cancelled",
			"resume":                  "gone - ",
			"end":                     "gone - ",
			"orphan":                  "gone - announce:task-cancelled put-task:cancelled",
		},
		"running, task stale": {
			"orphan": "running - announce:task-cancelled put-task:cancelled",
		},
	}
	for stateName, cells := range want {
		for eventName, expect := range cells {
			t.Run(stateName+"/"+eventName, func(t *testing.T) {
				st := states[stateName]()
				before := fmt.Sprintf("%+v %+v", st.Process, st.Task)
				ev := events[eventName]
				ev.Now = now
				next, list, err := Transition(st, ev)
				var got string
				var r Refusal
				switch {
				case errors.As(err, &r):
					got = "refused: " + r.Reason
				case err != nil:
					t.Fatal(err)
				default:
					health, taskID := "gone", "-"
					if next.Process != nil {
						health = next.Process.Health
						if next.Process.TaskID != "" {
							taskID = next.Process.TaskID
						}
					}
					got = health + " " + taskID + " " + describeEffects(list)
				}
				if got != expect {
					t.Errorf("got  %q\nwant %q", got, expect)
				}
				if after := fmt.Sprintf("%+v %+v", st.Process, st.Task); after != before {
					t.Errorf("the Transition changed its input:\n%s\n%s", before, after)
				}
			})
		}
	}
}

func TestTransitionRepair(t *testing.T) {
	now := time.Now().UTC()
	for status, want := range map[string]string{
		StatusCompleted: "running - put-process",
		StatusCancelled: "failed - delete-current put-process",
	} {
		st := State{
			Process: &Process{ID: "p", Health: Broken, TaskID: "T", HasCurrent: true},
			Task:    &Task{ID: "T", ProcessID: "p", Status: status},
		}
		next, list, err := Transition(st, Event{Kind: Repair, Now: now})
		taskID := next.Process.TaskID
		if taskID == "" {
			taskID = "-"
		}
		if got := next.Process.Health + " " + taskID + " " + describeEffects(list); err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", status, got, err, want)
		}
	}
	// A process that no longer points at the closed task is left alone.
	st := State{Process: &Process{ID: "p", Health: Running}, Task: &Task{ID: "T", ProcessID: "p", Status: StatusCompleted}}
	if _, list, _ := Transition(st, Event{Kind: Repair, Now: now}); len(list) != 0 {
		t.Errorf("repaired a process that was fine: %s", describeEffects(list))
	}
}
