package tests

import (
	"strings"
	"testing"
	"time"
)

// Completing a task resumes only what the task was about. The owner is asked early (preflight,
// reason expiring); a technical credential then breaks the process. The owner completing her task
// is the hostile side here: it must not un-break what only an operator can judge mended, and the
// operator's resume must still work afterwards.
func TestAttackOwnerTaskDoesNotResumeWhatATechnicalCredentialBroke(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	rememberSecrets("erp-static-password", "ann-expiring-token")
	write(t, m+"/technical/erp", map[string]any{"type": "password", "username": "svc", "password": "erp-static-password"})
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
		{"name": "erp", "credentials": []map[string]any{{"type": "technical", "name": "erp"}}},
	}})
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	current := `{"type": "token", "token": "ann-expiring-token", "expires_at": "` + expires + `"}`
	if _, err := p.engine.Logical().Write(m+"/process/p", map[string]any{"definition": "orders", "owner": "ann", "owner_entity_id": p.annEntity, "current": current}); err != nil {
		t.Fatal(err)
	}
	pre, err := p.engine.Logical().Write(m+"/process/p/preflight", map[string]any{"duration": "72h", "open_tasks": true})
	if err != nil {
		t.Fatal(err)
	}
	taskID, _ := pre.Data["task_id"].(string)
	if taskID == "" {
		t.Fatalf("preflight opened no task: %v", pre.Data)
	}
	verdict, err := p.engine.Logical().Write(m+"/process/p/report", map[string]any{"service": "erp", "error": "auth_failed"})
	if err != nil || verdict.Data["health"] != "broken" {
		t.Fatalf("a technical credential's failure: %v %v", verdict, err)
	}

	if _, err := p.ann.Logical().Write(m+"/task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "ann")}); err != nil {
		t.Fatalf("ann completes her task: %v", err)
	}
	st := read(t, m+"/process/p").Data
	if st["health"] != "broken" || !strings.Contains(st["health_reason"].(string), `"erp"`) || st["task_id"] != "" {
		t.Fatalf("after the owner's task: %v", st)
	}
	if task := read(t, m+"/task/"+taskID).Data; task["status"] != "completed" {
		t.Errorf("the task: %v", task)
	}

	resumed, err := p.admin.Logical().Write(m+"/process/p/resume", nil)
	if err != nil || resumed.Data["health"] != "running" {
		t.Fatalf("the operator's resume after the task: %v %v", resumed, err)
	}
	if s, err := p.engine.Logical().Read(m + "/process/p/resolve/crm"); err != nil || s.Data["password"] != "ann-own-password" {
		t.Errorf("the owner's new credentials after the resume: %v", err)
	}
}
