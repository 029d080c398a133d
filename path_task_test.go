package pecreds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func reportAs(t *testing.T, b *backend, s logical.Storage, id, class string) map[string]any {
	t.Helper()
	return mustSucceed(t, b, s, logical.UpdateOperation, "process/"+id+"/report", map[string]any{"service": "crm", "error": class}).Data
}

func TestReportOpensOneTaskAndCompletionResumes(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	first := reportAs(t, b, s, "p", "auth_failed")
	if first["health"] != "broken" || first["action"] != "wait" || first["task_id"] == "" {
		t.Fatalf("report %v", first)
	}
	if again := reportAs(t, b, s, "p", "auth_failed"); again["task_id"] != first["task_id"] {
		t.Errorf("a second report opened task %v", again["task_id"])
	}
	// A report whose class maps to running does not un-break a process waiting for its owner.
	if got := reportAs(t, b, s, "p", "unavailable"); got["health"] != "broken" || got["action"] != "wait" {
		t.Errorf("an unavailable report on a broken process: %v", got)
	}
	taskID := first["task_id"].(string)
	if keys := mustSucceed(t, b, s, logical.ListOperation, "task/", map[string]any{"owner_entity_id": "ent-ann"}).Data["keys"].([]string); len(keys) != 1 {
		t.Errorf("open tasks of ann %v", keys)
	}
	if resp := request(t, b, s, logical.ListOperation, "task/", map[string]any{"owner_entity_id": "ent-bob"}); resp != nil && resp.Data["keys"] != nil {
		t.Errorf("open tasks of bob %v", resp.Data)
	}

	complete := func(entity string) (*logical.Response, error) {
		return b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "task/" + taskID + "/complete", Storage: s, EntityID: entity,
			Data: map[string]any{"credentials": `{"type": "password", "username": "ann", "password": "new-pw"}`},
		})
	}
	for _, entity := range []string{"ent-bob", ""} {
		resp, err := complete(entity)
		if err != logical.ErrPermissionDenied || !resp.IsError() || !strings.Contains(resp.Error().Error(), "only the task's owner may complete") {
			t.Errorf("%q completing: %v %v", entity, err, resp)
		}
	}
	if resp, err := complete("ent-ann"); err != nil || resp.IsError() || resp.Data["status"] != "completed" {
		t.Fatalf("ann completing: %v %v", err, resp)
	}
	proc := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data
	if proc["health"] != "running" || proc["task_id"] != "" {
		t.Errorf("process after completion %v", proc)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/crm", nil).Data["password"]; got != "new-pw" {
		t.Errorf("resolves %v", got)
	}
}

func TestResolveOfLostCurrentBreaks(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{"services": `[{"name": "crm", "credentials": [{"type": "current"}]}]`})
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": "transient"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON})
	b2 := restart(t, s)
	msg := mustFail(t, b2, s, logical.ReadOperation, "process/p/resolve/crm", nil, `process "p" is broken`, "lost", "[0] current")
	proc := mustSucceed(t, b2, s, logical.ReadOperation, "process/p", nil).Data
	if proc["health"] != "broken" || proc["task_id"] == "" || !strings.Contains(msg, proc["task_id"].(string)) {
		t.Errorf("process %v, error %q", proc, msg)
	}
	// A type-filtered resolve is a question, not a use: it breaks nothing more.
	mustFail(t, b2, s, logical.ReadOperation, "process/p/resolve/crm", map[string]any{"type": "token"}, "no usable credential")
}

func TestCancelFailsProcessAndSweepRemovesOldTasks(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON})
	taskID := reportAs(t, b, s, "p", "credentials_expired")["task_id"].(string)
	mustSucceed(t, b, s, logical.UpdateOperation, "task/"+taskID+"/cancel", nil)
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data["health"]; got != "failed" {
		t.Errorf("health after cancel %v", got)
	}
	if got := reportAs(t, b, s, "p", "auth_failed"); got["action"] != "abort" {
		t.Errorf("a report on a failed process %v", got)
	}
	mustFail(t, b, s, logical.UpdateOperation, "task/"+taskID+"/cancel", nil, "cancelled already")

	if err := b.sweepTasks(context.Background(), s, time.Now().Add(29*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil)
	if err := b.sweepTasks(context.Background(), s, time.Now().Add(31*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if resp := request(t, b, s, logical.ReadOperation, "task/"+taskID, nil); resp != nil {
		t.Errorf("a task closed 31 days ago is still there: %v", resp.Data)
	}
}

func TestHealthFor(t *testing.T) {
	cfg := defaultConfig()
	cfg.ErrorHealthMapping = map[string]string{"forbidden": "broken", "quota": "running"}
	for class, want := range map[string]string{
		"auth_failed": "broken", "credentials_expired": "broken", "credentials_unavailable": "broken",
		"forbidden": "broken", "unavailable": "running", "quota": "running", "teapot": "unknown",
	} {
		got, known := cfg.healthFor(class)
		if want == "unknown" && known || want != "unknown" && got != want {
			t.Errorf("%s → %s (known %v), want %s", class, got, known, want)
		}
	}
	for health, want := range map[string]string{"running": "retry", "broken": "wait", "failed": "abort"} {
		if got := actionFor(health); got != want {
			t.Errorf("action for %s = %s", health, got)
		}
	}
}

func TestFailingABrokenProcessCancelsItsTask(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON})
	taskID := reportAs(t, b, s, "p", "auth_failed")["task_id"].(string)
	got := reportAs(t, b, s, "p", "forbidden")
	if got["health"] != "failed" || got["task_id"] != "" {
		t.Errorf("forbidden on a broken process: %v", got)
	}
	if status := mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil).Data["status"]; status != "cancelled" {
		t.Errorf("the task of the failed process is %v", status)
	}
	mustFail(t, b, s, logical.UpdateOperation, "task/"+taskID+"/complete", map[string]any{"credentials": annJSON}, "cancelled already")
}

// A process that fails without a Task Manager loses the task preflight opened early, and a task of
// a failed process cannot be completed: new credentials would be stored for a process that
// resolves nothing.
func TestFailedWithoutTaskManagerCancelsTheEarlyTask(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "registry/solo", map[string]any{"services": `[{"name": "crm", "credentials": [{"type": "current"}]}]`})
	expired := `{"type": "token", "token": "old-token", "expires_at": "2020-01-01T00:00:00Z"}`
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "solo", "current": expired, "owner_entity_id": "ent-ann"})
	taskID := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "1h", "open_tasks": true}).Data["task_id"].(string)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"task_manager": false})
	mustFail(t, b, s, logical.ReadOperation, "process/p/resolve/crm", nil, "no Task Manager is configured")
	if got := mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil).Data["status"]; got != "cancelled" {
		t.Errorf("the early task of the failed process is %v", got)
	}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "task/" + taskID + "/complete-on-behalf", Storage: s,
		Data: map[string]any{"credentials": annJSON},
	})
	if err != nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "cancelled already") {
		t.Errorf("completing the task of a failed process: %v %v", resp, err)
	}
}
