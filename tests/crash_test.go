package tests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The plugin is killed (SIGKILL, by the kill switch of the tests' build) just before each
// storage write of create, report→broken, complete, resume and end in turn, and just after the
// last; Vault restarts it on the next request. What is left is the state before the change (it
// had written nothing) or the whole state after it — never half of it — and the Task Manager
// receives each event of the change exactly once.
func TestCrashAtEachWriteLeavesNothingHalfMade(t *testing.T) {
	mount := "pecreds-crash"
	if err := env.client.Sys().Mount(mount, &api.MountInput{Type: testBuildPluginName}); err != nil {
		t.Fatal(err)
	}
	mount, r := notifyMountOf(t, removedAtEnd(t, mount))
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
		{"name": "erp", "credentials": []map[string]any{{"type": "password", "username": "svc", "password": "svc-erp-pw"}}},
	}})
	rememberSecrets("svc-erp-pw")
	create := func(id string) error {
		_, err := env.client.Logical().Write(mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "nia", "current": userCurrent(t, "nia")})
		return err
	}
	report := func(service string) crashOp {
		return func(id string) error {
			_, err := env.client.Logical().Write(mount+"/process/"+id+"/report", map[string]any{"service": service, "error": "auth_failed"})
			return err
		}
	}
	complete := func(id string) error {
		taskID := read(t, mount+"/process/"+id).Data["task_id"]
		_, err := env.client.Logical().Write(fmt.Sprintf("%s/task/%v/complete-on-behalf", mount, taskID), map[string]any{"credentials": userCurrent(t, "nia")})
		return err
	}
	resume := func(id string) error {
		_, err := env.client.Logical().Write(mount+"/process/"+id+"/resume", nil)
		return err
	}
	end := func(id string) error {
		_, err := env.client.Logical().Delete(mount + "/process/" + id)
		return err
	}
	scenarios := []struct {
		name  string
		setup []crashOp
		last  crashOp
	}{
		{"create", nil, create},
		{"report-task", []crashOp{create}, report("crm")},
		{"report-operator", []crashOp{create}, report("erp")},
		{"complete", []crashOp{create, report("crm")}, complete},
		{"resume", []crashOp{create, report("erp")}, resume},
		{"end", []crashOp{create, report("crm")}, end},
	}
	for _, sc := range scenarios {
		// The change whole, with no kill: what it leaves, and the events it sends.
		want := runCrashCase(t, mount, r, sc.name+"-whole", sc.setup, sc.last, "")
		before := runCrashCase(t, mount, r, sc.name+"-before", sc.setup, nil, "")
		killed := 0
		for n := 1; ; n++ {
			id := fmt.Sprintf("%s-%d", sc.name, n)
			got := runCrashCase(t, mount, r, id, sc.setup, sc.last, fmt.Sprintf("%s before %d", id, n))
			if got.killed == "" {
				break // the change made fewer than n writes
			}
			killed++
			if !got.same(want) && !(n == 1 && got.same(before)) {
				t.Errorf("%s: killed before write %d: %s\n want %s", sc.name, n, got, want)
			}
		}
		if killed == 0 {
			t.Fatalf("%s: the kill switch never fired", sc.name)
		}
		id := sc.name + "-after"
		if got := runCrashCase(t, mount, r, id, sc.setup, sc.last, fmt.Sprintf("%s after %d", id, killed)); got.killed == "" || !got.same(want) {
			t.Errorf("%s: killed after its last write (%d): %s\n want %s", sc.name, killed, got, want)
		}
		t.Logf("%s: killed before each of %d writes and after the last", sc.name, killed)
	}
}

// crashOp is one request of a crash case, on the process it names.
type crashOp func(id string) error

// crashOutcome is what a case left: its process, and the events its receiver got (by type, each
// id once — an id twice is an error of the case).
type crashOutcome struct {
	process string
	events  []string
	killed  string
}

func (o crashOutcome) same(p crashOutcome) bool {
	return o.process == p.process && slices.Equal(o.events, p.events)
}

func (o crashOutcome) String() string {
	return fmt.Sprintf("process %s, events %v", o.process, o.events)
}

// runCrashCase sets process id up, arms the kill switch (unless arm is ""), runs last (unless
// nil), waits for the plugin to be back, every change done and every event delivered, and answers
// what is left.
func runCrashCase(t *testing.T, mount string, r *receiver, id string, setup []crashOp, last crashOp, arm string) crashOutcome {
	t.Helper()
	for _, step := range setup {
		if err := step(id); err != nil {
			t.Fatalf("%s: setting up: %v", id, err)
		}
	}
	waitOutboxEmpty(t, mount)
	var out crashOutcome
	if last != nil {
		if arm != "" {
			if err := os.WriteFile(env.killFile, []byte(arm), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := last(id)
		if _, statErr := os.Stat(env.killFile); arm != "" && os.IsNotExist(statErr) {
			out.killed = fmt.Sprint(err) // the answer Vault gave, or nil when it retried on the restarted plugin
		}
		_ = os.Remove(env.killFile)
	}
	waitOutboxEmpty(t, mount) // also wakes a killed plugin: Vault restarts it
	out.process = "gone"
	if p, err := env.client.Logical().Read(mount + "/process/" + id); err != nil {
		t.Fatalf("%s: reading the process: %v", id, err)
	} else if p != nil {
		out.process = fmt.Sprintf("%v waiting=%v", p.Data["health"], p.Data["task_id"] != "")
	}
	seen := map[string]bool{}
	for _, e := range r.events() {
		if e.Body["process_id"] != id {
			continue
		}
		if seen[e.ID] {
			t.Errorf("%s: event %s (%v) was delivered twice", id, e.ID, e.Body["type"])
		}
		seen[e.ID] = true
		out.events = append(out.events, fmt.Sprint(e.Body["type"]))
	}
	slices.Sort(out.events)
	return out
}

// waitOutboxEmpty polls status (restarting a killed plugin) until no change is pending and
// nothing waits in the outbox.
func waitOutboxEmpty(t *testing.T, mount string) {
	t.Helper()
	var last string
	if !poll(30*time.Second, 20*time.Millisecond, func() bool {
		s, err := env.client.Logical().Read(mount + "/status")
		if err != nil || s == nil {
			last = fmt.Sprint(err)
			return false
		}
		last = fmt.Sprint(s.Data)
		box, _ := s.Data["outbox"].(map[string]any)
		return fmt.Sprint(s.Data["changes_pending"]) == "0" && fmt.Sprint(box["pending"]) == "0" && fmt.Sprint(box["dead"]) == "0"
	}) {
		t.Fatalf("changes or events still pending after 30 s: %s", strings.TrimSpace(last))
	}
}
