package tests

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// people is a mount with the example policies installed for it, an engine-host token, an admin
// token, and two userpass users bound to identity entities.
type people struct {
	mount                string
	engine, admin        *api.Client
	taskManager          *api.Client
	ann, bob             *api.Client
	annEntity, bobEntity string
	annToken             string
	userpass             string // the userpass mount they log in with, "auth/..."; passwords <name>-vault-login
}

// clientWith is a client of the test server holding token.
func clientWith(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := env.client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func setupPeople(t *testing.T) *people {
	t.Helper()
	mount := newMount(t)
	p := &people{mount: mount}
	for _, name := range []string{"admin", "engine-host", "user", "task-manager"} {
		text, err := os.ReadFile("../examples/policies/" + name + ".hcl")
		if err != nil {
			t.Fatal(err)
		}
		// The mount in paths ("pecreds/task", "sys/leases/revoke/pecreds/process/*").
		policy := strings.ReplaceAll(string(text), `pecreds/`, mount+`/`)
		if err := env.client.Sys().PutPolicy(mount+"-"+name, policy); err != nil {
			t.Fatalf("policy %s: %v", name, err)
		}
		t.Cleanup(func() { _ = env.client.Sys().DeletePolicy(mount + "-" + name) })
	}
	token := func(policy string) string {
		s, err := env.client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{mount + "-" + policy}, NoDefaultPolicy: true})
		if err != nil {
			t.Fatal(err)
		}
		return s.Auth.ClientToken
	}
	p.engine, p.admin = clientWith(t, token("engine-host")), clientWith(t, token("admin"))
	p.taskManager = clientWith(t, token("task-manager"))

	auth := "up-" + strings.TrimPrefix(mount, "pecreds-")
	if len(auth) > 40 {
		auth = auth[:40]
	}
	if err := env.client.Sys().EnableAuthWithOptions(auth, &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.client.Sys().DisableAuth(auth) })
	p.userpass = "auth/" + auth
	login := func(user string) (*api.Client, string, string) {
		if _, err := env.client.Logical().Write("auth/"+auth+"/users/"+user, map[string]any{"password": user + "-vault-login", "token_policies": mount + "-user"}); err != nil {
			t.Fatal(err)
		}
		s, err := env.client.Logical().Write("auth/"+auth+"/login/"+user, map[string]any{"password": user + "-vault-login"})
		if err != nil {
			t.Fatal(err)
		}
		return clientWith(t, s.Auth.ClientToken), s.Auth.EntityID, s.Auth.ClientToken
	}
	p.ann, p.annEntity, p.annToken = login("ann")
	p.bob, p.bobEntity, _ = login("bob")
	if p.annEntity == "" || p.annEntity == p.bobEntity {
		t.Fatalf("entities: ann %q, bob %q", p.annEntity, p.bobEntity)
	}
	return p
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// The story of README's "Broken processes and tasks".
func TestBrokenProcessWholeFlow(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": []map[string]any{{"type": "current"}}},
	}})

	// The engine starts a process for ann, with her credentials.
	if _, err := p.engine.Logical().Write(m+"/process/order-42", map[string]any{
		"definition": "orders", "owner": "ann", "owner_entity_id": p.annEntity, "current": userCurrent(t, "ann"),
	}); err != nil {
		t.Fatal(err)
	}
	s, err := p.engine.Logical().Read(m + "/process/order-42/resolve/crm")
	if err != nil || s.Data["password"] != "ann-own-password" {
		t.Fatalf("resolve before: %v %v", err, s)
	}

	// Ann's password changes; the CRM refuses the old one; the engine reports it, twice.
	var taskID string
	for i := 0; i < 3; i++ {
		s, err = p.engine.Logical().Write(m+"/process/order-42/report", map[string]any{"service": "crm", "error": "auth_failed", "message": "401 from CRM"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Data["health"] != "broken" || s.Data["action"] != "wait" || s.Data["task_id"] == "" {
			t.Fatalf("report %d: %v", i, s.Data)
		}
		if i > 0 && s.Data["task_id"] != taskID {
			t.Fatalf("report %d opened a second task %v (first %s)", i, s.Data["task_id"], taskID)
		}
		taskID, _ = s.Data["task_id"].(string)
	}
	proc := read(t, m+"/process/order-42").Data
	if proc["health"] != "broken" || proc["task_id"] != taskID || !strings.Contains(proc["health_reason"].(string), "crm") {
		t.Errorf("process %v", proc)
	}
	task := read(t, m+"/task/"+taskID).Data
	if task["status"] != "open" || task["process_id"] != "order-42" || task["owner_entity_id"] != p.annEntity || task["reason"] != "auth_failed" {
		t.Errorf("task %v", task)
	}
	open, err := p.ann.Logical().ListWithContext(t.Context(), m+"/task/mine")
	if err != nil || open == nil {
		t.Fatalf("ann lists her tasks: %v", err)
	}
	if keys, _ := open.Data["keys"].([]any); len(keys) != 1 || keys[0] != taskID {
		t.Errorf("ann's open tasks %v", open.Data)
	}
	info, _ := open.Data["key_info"].(map[string]any)
	if about, _ := info[taskID].(map[string]any); about["process_id"] != "order-42" || about["service"] != "crm" || about["reason"] != "auth_failed" || about["created"] == "" {
		t.Errorf("what ann's task is about: %v", open.Data["key_info"])
	}
	if none, err := p.bob.Logical().ListWithContext(t.Context(), m+"/task/mine"); err != nil || none != nil {
		t.Errorf("bob's own tasks: %v %v", none, err)
	}
	mine, err := env.client.Logical().ListWithContext(t.Context(), m+"/task?owner_entity_id="+p.bobEntity)
	if err != nil || mine != nil {
		t.Errorf("bob's open tasks: %v %v", mine, err)
	}

	// Bob may not complete ann's task, and the 403 says why (not a bare policy denial).
	_, err = p.bob.Logical().Write(m+"/task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "bob")})
	if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "only the task's owner may complete") || strings.Contains(err.Error(), "1 error occurred") {
		t.Errorf("bob completing ann's task: %v", err)
	}

	// Ann completes it with the CLI, as the README tells her.
	newCreds := filepath.Join(t.TempDir(), "new.json")
	rememberSecrets("ann-new-password")
	if err := os.WriteFile(newCreds, []byte(`{"type": "password", "username": "ann", "password": "ann-new-password"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := vaultCLIAs(t, p.annToken, "write", m+"/task/"+taskID+"/complete", "credentials=@"+newCreds)
	if res.code != 0 || strings.Contains(res.stdout, "ann-new-password") {
		t.Fatalf("ann completes: %d %s %s", res.code, res.stdout, res.stderr)
	}
	proc = read(t, m+"/process/order-42").Data
	if proc["health"] != "running" || proc["task_id"] != "" || proc["current_credentials"] != "kept" {
		t.Errorf("process after completion %v", proc)
	}
	if got := read(t, m+"/process/order-42/resolve/crm").Data["password"]; got != "ann-new-password" {
		t.Errorf("resolve after completion: %v", got)
	}
	if got := read(t, m+"/task/"+taskID).Data; got["status"] != "completed" || got["completed_by"] != p.annEntity {
		t.Errorf("task after completion %v", got)
	}
	_, err = p.ann.Logical().Write(m+"/task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "ann")})
	badRequest(t, err, "completed already")
	_, err = p.ann.Logical().Write(m+"/task/no-such-task/complete", map[string]any{"credentials": userCurrent(t, "ann")})
	if statusOf(err) != http.StatusNotFound {
		t.Errorf("completing an unknown task: %v", err)
	}
}

// vaultCLIAs runs the vault CLI with another token.
func vaultCLIAs(t *testing.T, token string, args ...string) cliResult {
	t.Helper()
	return vaultCLIWithEnv(t, []string{"VAULT_TOKEN=" + token}, args...)
}

func TestTransientLossBreaksThenTaskResumes(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	write(t, m+"/config", map[string]any{"keep_credentials": "transient"})
	write(t, m+"/process/t1", map[string]any{"definition": "orders", "owner_entity_id": p.annEntity, "current": userCurrent(t, "ann")})
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)

	_, err := env.client.Logical().Read(m + "/process/t1/resolve/crm")
	msg := badRequest(t, err, `process "t1" is broken`, "current credentials are lost", "task ")
	proc := read(t, m+"/process/t1").Data
	taskID, _ := proc["task_id"].(string)
	if proc["health"] != "broken" || taskID == "" || !strings.Contains(msg, taskID) {
		t.Fatalf("after the loss: %v (error %q)", proc, msg)
	}
	if _, err := p.ann.Logical().Write(m+"/task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "ann")}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, m+"/process/t1/resolve/crm").Data["username"]; got != "ann" {
		t.Errorf("after completion resolves %v", got)
	}
	if got := read(t, m+"/process/t1").Data["health"]; got != "running" {
		t.Errorf("health %v", got)
	}
}

func TestMappingOverridesAndTaskManagerOff(t *testing.T) {
	mount := newMount(t)
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	write(t, mount+"/config", map[string]any{"error_health_mapping": map[string]any{"forbidden": "broken", "unavailable": "failed"}})
	report := func(id, class string) map[string]any {
		t.Helper()
		return write(t, mount+"/process/"+id+"/report", map[string]any{"service": "crm", "error": class}).Data
	}
	newProcess := func(id string) {
		write(t, mount+"/process/"+id, map[string]any{"definition": "orders", "current": userCurrent(t, "gil")})
	}
	newProcess("forbidden")
	if got := report("forbidden", "forbidden"); got["health"] != "broken" || got["task_id"] == "" {
		t.Errorf("forbidden mapped to broken: %v", got)
	}
	newProcess("unavailable")
	if got := report("unavailable", "unavailable"); got["health"] != "failed" || got["action"] != "abort" {
		t.Errorf("unavailable mapped to failed: %v", got)
	}
	newProcess("other")
	_, err := env.client.Logical().Write(mount+"/process/other/report", map[string]any{"service": "crm", "error": "teapot"})
	badRequest(t, err, `"teapot" is not a known error class`)
	if got := read(t, mount+"/process/other").Data["health"]; got != "running" {
		t.Errorf("an unknown class changed the health: %v", got)
	}
	newProcess("default")
	if got := report("default", "credentials_expired"); got["health"] != "broken" {
		t.Errorf("a default class: %v", got)
	}

	write(t, mount+"/config", map[string]any{"task_manager": false})
	newProcess("no-tm")
	if got := report("no-tm", "auth_failed"); got["health"] != "failed" || got["task_id"] != "" {
		t.Errorf("without a Task Manager: %v", got)
	}
	_, err = env.client.Logical().Write(mount+"/process/no-tm/report", map[string]any{"service": "crm", "error": "bad class!"})
	badRequest(t, err, `error "bad class!" is invalid`)
	_, err = env.client.Logical().Write(mount+"/process/no-tm/report", map[string]any{"service": "nope", "error": "auth_failed"})
	badRequest(t, err, `no service "nope"`)
}

func TestTechnicalFailureForcesOneRefresh(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	createOAuth2(t, mount, "idp", srv, "report")
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "idp"}}},
	}})
	write(t, mount+"/config", map[string]any{"keep_credentials": "none"})
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "hal")})
	first, _ := readCreds(t, mount+"/process/p/resolve/crm")
	// A token fetched within the minimum interval (2 s) counts as fresh: no second request for it.
	waitPastMinInterval(t, mount, "idp")

	before := srv.Requests("report")
	got := write(t, mount+"/process/p/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data
	if got["health"] != "running" || got["action"] != "retry" || srv.Requests("report") != before+1 {
		t.Fatalf("first technical failure: %v, %d token requests", got, srv.Requests("report")-before)
	}
	fresh, _ := readCreds(t, mount+"/process/p/resolve/crm")
	if fresh.token == first.token {
		t.Error("the retry resolves the old token")
	}
	// The fresh token fails too: the mapping applies; no task (the owner cannot fix it).
	got = write(t, mount+"/process/p/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data
	if got["health"] != "broken" || got["task_id"] != "" || srv.Requests("report") != before+1 {
		t.Errorf("second failure of the same token: %v, %d token requests", got, srv.Requests("report")-before)
	}
	proc := read(t, mount+"/process/p").Data
	if !strings.Contains(proc["health_reason"].(string), `"idp"`) {
		t.Errorf("health_reason %v", proc["health_reason"])
	}
	if list, _ := env.client.Logical().List(mount + "/task"); list != nil {
		t.Errorf("a task was opened: %v", list.Data)
	}
	// An operator fixes the credential and resumes the process.
	mustCLI(t, "write", "-f", mount+"/process/p/resume")
	if got := read(t, mount+"/process/p").Data["health"]; got != "running" {
		t.Errorf("after resume: %v", got)
	}
	_, err := env.client.Logical().Write(mount+"/process/p/resume", nil)
	badRequest(t, err, "not broken")
}

func TestCancelAndRevokeCloseTasks(t *testing.T) {
	mount := newMount(t)
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	write(t, mount+"/process/a", map[string]any{"definition": "orders", "current": userCurrent(t, "ida")})
	lease := write(t, mount+"/process/b", map[string]any{"definition": "orders", "current": userCurrent(t, "ida")})
	ta := write(t, mount+"/process/a/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data["task_id"].(string)
	tb := write(t, mount+"/process/b/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data["task_id"].(string)

	mustCLI(t, "write", "-f", mount+"/task/"+ta+"/cancel")
	if got := read(t, mount+"/process/a").Data["health"]; got != "failed" {
		t.Errorf("after cancel: %v", got)
	}
	if got := read(t, mount+"/task/"+ta).Data["status"]; got != "cancelled" {
		t.Errorf("cancelled task: %v", got)
	}
	mustCLI(t, "lease", "revoke", "-sync", lease.LeaseID)
	if got := read(t, mount+"/task/"+tb).Data["status"]; got != "cancelled" {
		t.Errorf("the task of a revoked process: %v", got)
	}
	if list, _ := env.client.Logical().List(mount + "/task"); list != nil {
		t.Errorf("open tasks left: %v", list.Data)
	}
	res := vaultCLI(t, "write", "-f", mount+"/task/nope/cancel")
	if !strings.Contains(res.stderr, "Code: 404") {
		t.Errorf("cancelling an unknown task: %s", res.stderr)
	}
}

// The policies in examples/ enforce what they claim, each with a token holding only it.
func TestExamplePolicies(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	srv := startTokenServer(t)
	createOAuth2(t, m, "idp", srv, "policy")
	registry := map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "idp"}}}}}

	allowed := func(who string, err error) {
		t.Helper()
		if statusOf(err) == http.StatusForbidden {
			t.Errorf("%s was refused: %v", who, err)
		}
	}
	denied := func(who string, err error) {
		t.Helper()
		if statusOf(err) != http.StatusForbidden {
			t.Errorf("%s was not refused: %v", who, err)
		}
	}
	write := func(c *api.Client, path string, data map[string]any) error {
		_, err := c.Logical().Write(m+"/"+path, data)
		return err
	}
	readAs := func(c *api.Client, path string) error {
		_, err := c.Logical().Read(m + "/" + path)
		return err
	}

	// admin: config, registries, technical; not the material, not resolve.
	allowed("admin writes a registry", write(p.admin, "registry/orders", registry))
	allowed("admin writes config", write(p.admin, "config", map[string]any{"process_ttl": "2h"}))
	allowed("admin reads a technical credential", readAs(p.admin, "technical/idp"))
	denied("admin reads technical material", readAs(p.admin, "technical/idp/creds"))

	// engine-host: processes, resolve, report, technical material; not registries or config.
	allowed("engine creates a process", write(p.engine, "process/e1", map[string]any{"definition": "orders", "owner_entity_id": p.annEntity, "current": userCurrent(t, "ann")}))
	allowed("engine resolves", readAs(p.engine, "process/e1/resolve/crm"))
	allowed("engine reads technical material", readAs(p.engine, "technical/idp/creds"))
	allowed("engine reports", write(p.engine, "process/e1/report", map[string]any{"service": "crm", "error": "unavailable"}))
	denied("engine writes a registry", write(p.engine, "registry/orders", registry))
	denied("engine writes config", write(p.engine, "config", map[string]any{"task_manager": false}))
	denied("engine reads a registry", readAs(p.engine, "registry/orders"))

	// user: her own tasks, and completing them; nothing else, not even everyone's task ids.
	_, err := p.ann.Logical().List(m + "/task/mine")
	allowed("user lists her tasks", err)
	_, err = p.ann.Logical().List(m + "/task")
	denied("user lists every task", err)
	for _, path := range []string{"process/e1", "process/e1/resolve/crm", "registry/orders", "technical/idp/creds", "config"} {
		denied("user reads "+path, readAs(p.ann, path))
	}
	denied("user creates a process", write(p.ann, "process/u1", nil))
	s, err := env.client.Logical().Write(m+"/process/e1/report", map[string]any{"service": "crm", "error": "auth_failed"})
	if err != nil {
		t.Fatal(err)
	}
	taskID := s.Data["task_id"].(string)
	denied("user completes on behalf", write(p.ann, "task/"+taskID+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "ann")}))
	denied("engine completes on behalf", write(p.engine, "task/"+taskID+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "ann")}))
	denied("admin completes on behalf", write(p.admin, "task/"+taskID+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "ann")}))
	allowed("user completes her task", write(p.ann, "task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "ann")}))

	// task-manager: lists and reads tasks, completes on behalf, reads the outbox; nothing else.
	_, err = p.taskManager.Logical().List(m + "/task")
	allowed("task manager lists tasks", err)
	allowed("task manager reads a task", readAs(p.taskManager, "task/"+taskID))
	allowed("task manager reads the outbox", readAs(p.taskManager, "notify/status"))
	for _, path := range []string{"process/e1", "process/e1/resolve/crm", "technical/idp/creds", "config"} {
		denied("task manager reads "+path, readAs(p.taskManager, path))
	}
	denied("task manager cancels", write(p.taskManager, "task/"+taskID+"/cancel", nil))
	denied("task manager completes as owner", write(p.taskManager, "task/"+taskID+"/complete", map[string]any{"credentials": userCurrent(t, "ann")}))
}
