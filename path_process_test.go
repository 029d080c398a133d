package pecreds

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/cache"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

const annJSON = `{"type": "password", "username": "ann", "password": "ann-secret-pw"}`

// setupLayers writes a definition registry, a global registry and a technical credential.
func setupLayers(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	mustSucceed(t, b, s, logical.CreateOperation, "technical/crm-service", map[string]any{"type": "password", "username": "svc-crm", "password": "svc-secret"})
	mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{"services": `[
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": [{"type": "current"}, {"type": "technical", "name": "crm-service"}]},
		{"name": "docs", "url": "https://docs.example.com", "credentials": [{"type": "api_key", "key": "def-docs-key"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "registry/common", map[string]any{"services": `[
		{"name": "docs", "credentials": [{"type": "api_key", "key": "global-docs-key"}]},
		{"name": "mail", "url": "smtp://mail.example.com", "credentials": [{"type": "password", "username": "noreply", "password": "mail-pw"}]}]`})
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"global_registries": "common"})
}

func TestProcessLifecycle(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	resp := mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "owner": "ann", "current": annJSON, "ttl": "2h"})
	if resp.Secret == nil || resp.Secret.TTL != 2*time.Hour || resp.Secret.InternalData["process_id"] != "p1" {
		t.Fatalf("lease %+v", resp.Secret)
	}
	if resp.Data["current_credentials"] != "kept" || resp.Data["health"] != "running" || resp.Data["keep_credentials"] != "persistent" {
		t.Errorf("answer %v", resp.Data)
	}
	body, _ := json.Marshal(resp.Data)
	if strings.Contains(string(body), "ann-secret-pw") {
		t.Error("the lease answer shows the current password")
	}
	mustFail(t, b, s, logical.UpdateOperation, "process/p1", map[string]any{"definition": "orders"}, `process "p1" exists`)
	mustFail(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"definition": "nope"}, `definition: registry "nope" does not exist`)
	mustFail(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"current": `{"type": "technical", "name": "x"}`}, "current:", `type "technical" is not allowed`)
	mustFail(t, b, s, logical.CreateOperation, "process/-p", nil, `process id "-p" is invalid`)

	read := mustSucceed(t, b, s, logical.ReadOperation, "process/p1", nil)
	if read.Data["definition"] != "orders" || read.Data["owner"] != "ann" {
		t.Errorf("read %v", read.Data)
	}
	if keys := mustSucceed(t, b, s, logical.ListOperation, "process/", nil).Data["keys"].([]string); len(keys) != 1 {
		t.Errorf("list %v", keys)
	}
	usage := mustSucceed(t, b, s, logical.ReadOperation, "technical/crm-service/usage", nil).Data
	if usage["processes"] != 1 || usage["process_ids"].([]string)[0] != "p1" {
		t.Errorf("usage %v", usage)
	}
	mustSucceed(t, b, s, logical.DeleteOperation, "process/p1", nil)
	if r := request(t, b, s, logical.ReadOperation, "process/p1", nil); r != nil {
		t.Errorf("read after delete %v", r.Data)
	}
	if e, _ := s.Get(context.Background(), "process-current/p1"); e != nil {
		t.Error("delete left the current credentials in storage")
	}
}

func TestProcessTTLCappedByMax(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"process_ttl": "1h", "process_max_ttl": "10h"})
	resp := mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"ttl": "100h"})
	if resp.Secret.TTL != 10*time.Hour || resp.Secret.MaxTTL != 10*time.Hour || len(resp.Warnings) != 1 {
		t.Errorf("ttl %s, max %s, warnings %v", resp.Secret.TTL, resp.Secret.MaxTTL, resp.Warnings)
	}
}

func TestProcessKeepModes(t *testing.T) {
	for _, tc := range []struct{ mode, afterRestart string }{
		{"persistent", "kept"}, {"transient", "lost"}, {"none", "none"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			b, s := getTestBackend(t)
			setupLayers(t, b, s)
			mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": tc.mode})
			resp := mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON})
			want := "kept"
			if tc.mode == "none" {
				want = "none"
				if len(resp.Warnings) == 0 {
					t.Error("no warning that the current credentials were not kept")
				}
			}
			if resp.Data["current_credentials"] != want {
				t.Errorf("at creation %v", resp.Data["current_credentials"])
			}
			// A plugin restart: a new backend on the same storage.
			b2 := restart(t, s)
			if got := mustSucceed(t, b2, s, logical.ReadOperation, "process/p", nil).Data["current_credentials"]; got != tc.afterRestart {
				t.Errorf("after a restart current_credentials = %v, want %s", got, tc.afterRestart)
			}
			// The config's mode changing later does not change the process's.
			mustSucceed(t, b2, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": "persistent"})
			if got := mustSucceed(t, b2, s, logical.ReadOperation, "process/p", nil).Data["keep_credentials"]; got != tc.mode {
				t.Errorf("keep_credentials became %v", got)
			}
			res := mustSucceed(t, b2, s, logical.ReadOperation, "process/p/resolve/crm", nil).Data
			wantUser := "svc-crm"
			if tc.afterRestart == "kept" {
				wantUser = "ann"
			}
			if res["username"] != wantUser {
				t.Errorf("resolved %v, want %s", res["username"], wantUser)
			}
		})
	}
}

func TestProcessResolve(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON})

	got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/crm", nil).Data
	if got["username"] != "ann" || got["password"] != "ann-secret-pw" || got["source"] != "definition:orders" || got["index"] != 0 || got["service"] != "crm" {
		t.Errorf("crm %v", got)
	}
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/crm", map[string]any{"all": true}).Data
	if creds := got["credentials"].([]map[string]any); len(creds) != 2 || creds[1]["technical"] != "crm-service" || creds[1]["index"] != 1 {
		t.Errorf("all %v", got)
	}
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/docs", map[string]any{"explain": true}).Data
	if got["key"] != "def-docs-key" || got["explain"] == nil {
		t.Errorf("docs %v", got)
	}
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/mail", nil).Data
	if got["source"] != "global:common" {
		t.Errorf("mail %v", got)
	}

	// The runtime layer masks the definition for crm.
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/credentials", map[string]any{"services": `[{"name": "crm", "url": "https://crm.example.com/api/v2", "credentials": [{"type": "token", "token": "rt-token"}]}]`})
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/crm", nil).Data
	if got["token"] != "rt-token" || got["source"] != "runtime" {
		t.Errorf("crm with runtime layer %v", got)
	}
	runtime := mustSucceed(t, b, s, logical.ReadOperation, "process/p/credentials", nil).Data
	if body, _ := json.Marshal(runtime); strings.Contains(string(body), "rt-token") {
		t.Errorf("the runtime read shows a secret: %s", body)
	}
	// By URL: the effective crm is the runtime one, at /api/v2.
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve", map[string]any{"url": "https://crm.example.com/api/v2/customers"}).Data
	if got["service"] != "crm" || got["source"] != "runtime" {
		t.Errorf("by url %v", got)
	}
	mustFail(t, b, s, logical.ReadOperation, "process/p/resolve", map[string]any{"url": "https://crm.example.com/api/customers"},
		`no service matches url`, "crm (runtime)")
	mustSucceed(t, b, s, logical.DeleteOperation, "process/p/credentials/crm", nil)
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve", map[string]any{"url": "https://crm.example.com/api/customers"}).Data
	if got["source"] != "definition:orders" {
		t.Errorf("after removing the runtime crm %v", got)
	}

	mustFail(t, b, s, logical.ReadOperation, "process/p/resolve/nope", nil, `no layer defines service "nope"`, "runtime, definition:orders, global:common")
	mustFail(t, b, s, logical.ReadOperation, "process/p/resolve/crm", map[string]any{"type": "certificate"},
		`no usable credential for service "crm"`, "[0] current: of type password, not certificate", "[1] technical crm-service")
	mustFail(t, b, s, logical.ReadOperation, "process/p/resolve", nil, "url is required")
}

func TestProcessPreflight(t *testing.T) {
	b, s := getTestBackend(t)
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(1000 * time.Hour).UTC().Format(time.RFC3339)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/tok", map[string]any{"type": "token", "token": "t", "expires_at": soon})
	mustSucceed(t, b, s, logical.CreateOperation, "registry/d", map[string]any{"services": `[
		{"name": "a", "credentials": [{"type": "current"}, {"type": "technical", "name": "tok"}, {"type": "token", "token": "x", "expires_at": "` + later + `"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "d",
		"current": `{"type": "token", "token": "user-tok", "expires_at": "` + soon + `"}`})
	got := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "72h"}).Data["expiring"].([]map[string]any)
	if len(got) != 2 || got[0]["type"] == got[1]["type"] || (got[0]["type"] != "current" && got[1]["type"] != "current") {
		t.Fatalf("expiring %v", got)
	}
	for _, g := range got {
		if g["expires_at"] != soon {
			t.Errorf("expiring %v", g)
		}
	}
	if got := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "5000h"}).Data["expiring"].([]map[string]any); len(got) != 3 {
		t.Errorf("with a far horizon %v", got)
	}
	mustFail(t, b, s, logical.UpdateOperation, "process/p/preflight", nil, "duration is required")

	// open_tasks asks the owner early; the process runs on.
	resp := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "72h", "open_tasks": true}).Data
	taskID, _ := resp["task_id"].(string)
	proc := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data
	if taskID == "" || proc["task_id"] != taskID || proc["health"] != "running" {
		t.Errorf("open_tasks: answer %v, process %v", resp, proc)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil).Data["reason"]; got != "expiring" {
		t.Errorf("task reason %v", got)
	}
}

func TestExpiredCurrentIsSkipped(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders",
		"current": `{"type": "token", "token": "old", "expires_at": "` + past + `"}`})
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data["current_credentials"]; got != "expired" {
		t.Errorf("status %v", got)
	}
	got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/crm", map[string]any{"explain": true}).Data
	if got["username"] != "svc-crm" {
		t.Errorf("resolved %v", got)
	}
}

func TestOldLeaseDoesNotEndANewProcessOfTheSameID(t *testing.T) {
	b, s := getTestBackend(t)
	first := mustSucceed(t, b, s, logical.CreateOperation, "process/p", nil)
	mustSucceed(t, b, s, logical.DeleteOperation, "process/p", nil)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", nil)

	lease := first.Secret
	renew := &logical.Request{Operation: logical.RenewOperation, Storage: s, Secret: lease}
	if _, err := b.HandleRequest(context.Background(), renew); err == nil {
		t.Error("the old lease renewed the new process")
	}
	revoke := &logical.Request{Operation: logical.RevokeOperation, Storage: s, Secret: lease}
	if _, err := b.HandleRequest(context.Background(), revoke); err != nil {
		t.Fatal(err)
	}
	if r := request(t, b, s, logical.ReadOperation, "process/p", nil); r == nil {
		t.Error("revoking the old lease ended the new process")
	}
}

// Resolution asks for a token only when the technical entry's place in the list is reached; a
// later entry usable now is answered without waiting (the trace says why the first was passed
// over, and its token is asked for in the background); a token endpoint that gives none leaves
// the entry skipped with the reason.
func TestResolveFetchesATokenOnlyWhenReached(t *testing.T) {
	srv := startTokenServer(t)
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2Input(srv, "app"))
	mustSucceed(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": `[
		{"name": "first", "credentials": [{"type": "technical", "name": "idp"}, {"type": "password", "username": "u", "password": "p"}]},
		{"name": "later", "credentials": [{"type": "password", "username": "u", "password": "p"}, {"type": "technical", "name": "idp"}]},
		{"name": "only", "credentials": [{"type": "technical", "name": "idp"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "r"})
	expire := func() {
		st, _ := b.getTokenState(t.Context(), s, "idp")
		old := *st
		old.ExpiresAt = time.Now().Add(-time.Minute)
		if err := b.putTokenState(t.Context(), s, "idp", &old); err != nil {
			t.Fatal(err)
		}
	}
	expire()
	before := srv.Requests("app")
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/later", nil).Data; got["index"] != 0 || srv.Requests("app") != before {
		t.Fatalf("the answer comes first: %v, %d token requests", got, srv.Requests("app")-before)
	}
	got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/first", map[string]any{"explain": true}).Data
	tried := got["explain"].(map[string]any)["tried"].([]resolve.Tried)
	if got["index"] != 1 || !strings.Contains(tried[0].Skipped, "passed over") {
		t.Fatalf("a later credential usable now is answered at once: %v, trace %+v", got, tried)
	}
	waitUntil(t, 10*time.Second, func() bool { return srv.Requests("app") == before+1 }) // asked for in the background
	waitUntil(t, 10*time.Second, func() bool {
		got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/first", nil).Data
		return got["index"] == 0
	})
	if got["technical"] != "idp" || got["access_token"] == "" || srv.Requests("app") != before+1 {
		t.Fatalf("the token fetched in the background serves: %v, %d token requests", got, srv.Requests("app")-before)
	}
	// The last hope is waited for.
	expire()
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/only", nil).Data; got["technical"] != "idp" || srv.Requests("app") != before+2 {
		t.Fatalf("the only entry: %v, %d token requests", got, srv.Requests("app")-before)
	}

	expire()
	srv.FailWith(503)
	got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/first", map[string]any{"explain": true}).Data
	tried = got["explain"].(map[string]any)["tried"].([]resolve.Tried)
	if got["index"] != 1 || !strings.Contains(tried[0].Skipped, "no valid token") {
		t.Fatalf("no token to be had: %v, trace %+v", got, tried)
	}
	waitUntil(t, 10*time.Second, func() bool {
		st, _ := b.getTokenState(t.Context(), s, "idp")
		return st.Failures == 1
	})
	msg := mustFailCode(t, b, s, logical.ReadOperation, "process/p/resolve/only", http.StatusServiceUnavailable)
	if !strings.Contains(msg, "503") || !strings.Contains(msg, "retry after") {
		t.Errorf("the only entry, backing off: %s", msg)
	}
}

// Processes live in a bounded LRU: filled past its bound, it keeps the bound, an evicted process
// still resolves (from storage), and reads of ids that do not exist hold nothing.
func TestProcessCacheIsBoundedAndHoldsNoAbsence(t *testing.T) {
	b, s := getTestBackend(t)
	b.processes = cache.NewBounded(5, processCacheBytes, processBytes)
	setupLayers(t, b, s)
	for i := 0; i < 8; i++ {
		mustSucceed(t, b, s, logical.CreateOperation, fmt.Sprintf("process/p%d", i), map[string]any{"definition": "orders", "current": annJSON})
	}
	if n := b.processes.Len(); n != 5 {
		t.Fatalf("the process cache holds %d, bound 5", n)
	}
	if _, held, _ := b.processes.Lookup("p0"); held {
		t.Fatal("p0 should have been evicted")
	}
	got := mustSucceed(t, b, s, logical.ReadOperation, "process/p0/resolve/crm", nil).Data
	if got["username"] != "ann" {
		t.Errorf("an evicted process resolves %v", got)
	}
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("absent-%d", i)
		mustFailCode(t, b, s, logical.ReadOperation, "process/"+id+"/resolve/crm", http.StatusNotFound)
		if resp, _ := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "registry/" + id, Storage: s}); resp != nil {
			t.Fatalf("registry %s: %v", id, resp)
		}
	}
	if n := b.processes.Len(); n != 5 {
		t.Errorf("absent ids changed the process cache: %d", n)
	}
	count := 0
	b.registries.Each(func(string, *registryEntry) { count++ })
	if count != 2 {
		t.Errorf("the registry cache holds %d, want the 2 that exist", count)
	}
}

func TestProcessListPages(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	for i := 0; i < 25; i++ {
		mustSucceed(t, b, s, logical.CreateOperation, fmt.Sprintf("process/q%02d", i), map[string]any{"definition": "orders"})
	}
	page := func(data map[string]any) []string {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ListOperation, Path: "process/", Storage: s, Data: data})
		if err != nil || resp.IsError() {
			t.Fatalf("list %v: %v %v", data, err, resp)
		}
		keys, _ := resp.Data["keys"].([]string)
		return keys
	}
	if all := page(nil); len(all) != 25 {
		t.Fatalf("all: %d", len(all))
	}
	var seen []string
	after := ""
	for {
		keys := page(map[string]any{"after": after, "limit": 10})
		if len(keys) == 0 {
			break
		}
		seen = append(seen, keys...)
		after = keys[len(keys)-1]
	}
	if len(seen) != 25 || seen[0] != "q00" || seen[24] != "q24" {
		t.Errorf("paged through %v", seen)
	}
	if got := page(map[string]any{"after": "q1"}); len(got) != 15 || got[0] != "q10" {
		t.Errorf("after an id that does not exist: %v", got)
	}
	mustFail(t, b, s, logical.ListOperation, "process/", map[string]any{"limit": 0}, "limit must be between 1 and 10000")
}

// putFailingStorage fails every Put of a key that starts with prefix.
type putFailingStorage struct {
	logical.Storage
	prefix string
}

func (f putFailingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, f.prefix) {
		return errInjected
	}
	return f.Storage.Put(ctx, e)
}

// A create writes the process with its current credentials in one record; when the write fails,
// the refused create leaves nothing behind, and the id is free for the next try.
func TestRefusedCreateLeavesNothingBehind(t *testing.T) {
	for _, prefix := range []string{processStoragePrefix} {
		t.Run(prefix, func(t *testing.T) {
			b, s := getTestBackend(t)
			setupLayers(t, b, s)
			failing := putFailingStorage{Storage: s, prefix: prefix}
			resp, err := b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.CreateOperation, Path: "process/p1", Storage: failing,
				Data: map[string]any{"definition": "orders", "current": annJSON},
			})
			if err == nil && !resp.IsError() {
				t.Fatalf("a create whose %s write failed answered %v", prefix, resp)
			}
			if err != nil && strings.Contains(err.Error(), "ann-secret-pw") {
				t.Errorf("the error shows the password: %v", err)
			}
			for _, key := range []string{processStoragePrefix + "p1", legacyCurrentPrefix + "p1"} {
				if e, _ := s.Get(context.Background(), key); e != nil {
					t.Errorf("the refused create left %s in storage", key)
				}
			}
			if r := request(t, b, s, logical.ReadOperation, "process/p1", nil); r != nil {
				t.Errorf("the refused process reads as %v", r.Data)
			}
			if n := statusOf(t, b, s)["processes"]; n != 0 {
				t.Errorf("status counts %v processes after a refused create", n)
			}
			mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "current": annJSON})
		})
	}
}
