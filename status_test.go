package pecreds

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

func statusOf(t *testing.T, b *backend, s logical.Storage) map[string]any {
	t.Helper()
	var data map[string]any
	waitUntil(t, 5*time.Second, func() bool {
		data = mustSucceed(t, b, s, logical.ReadOperation, "status", nil).Data
		return data["counts_complete"] == true
	})
	return data
}

// status counts after creates, reports, a completion, an end and a cancel; the same after a
// reload, counted again from storage.
func TestStatusCountsAcrossChangesAndReload(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	for _, id := range []string{"a", "b", "c", "d"} {
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": "none"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/e", map[string]any{"definition": "orders"})
	reportAs(t, b, s, "a", "auth_failed") // broken, a task
	reportAs(t, b, s, "b", "auth_failed")
	task := reportAs(t, b, s, "c", "auth_failed")["task_id"].(string)
	completeAs(t, b, s, task, "ent-ann") // c runs again
	reportAs(t, b, s, "d", "forbidden")  // failed
	mustSucceed(t, b, s, logical.DeleteOperation, "process/b", nil)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/static", map[string]any{"type": "password", "username": "u", "password": "p"})

	want := map[string]any{
		"processes":             4,
		"processes_by_health":   map[string]int{"running": 2, "broken": 1, "failed": 1},
		"processes_by_keep":     map[string]int{"persistent": 3, "none": 1},
		"open_tasks":            1,
		"technical_credentials": map[string]int{"ok": 2, "failing": 0, "expired": 0, "pending": 0},
	}
	for _, backend := range []*backend{b, restart(t, s)} {
		got := statusOf(t, backend, s)
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
	}
}

// technical/:name/usage answers from the census's index: by definition, by runtime layer, every
// process for a global registry; the same after a reload.
func TestUsageIndexAcrossChangesAndReload(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s) // registry orders names crm-service
	mustSucceed(t, b, s, logical.CreateOperation, "registry/plain", map[string]any{"services": `[{"name": "x", "credentials": [{"type": "api_key", "key": "k"}]}]`})
	for _, id := range []string{"o1", "o2"} {
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders"})
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "plain"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"definition": "plain"})
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": `[{"name": "y", "credentials": [{"type": "technical", "name": "crm-service"}]}]`})
	usage := func(b *backend) (any, any) {
		d := mustSucceed(t, b, s, logical.ReadOperation, "technical/crm-service/usage", nil).Data
		return d["processes"], d["process_ids"]
	}
	if n, ids := usage(b); n != 3 || !reflect.DeepEqual(ids, []string{"o1", "o2", "p1"}) {
		t.Errorf("usage %v %v", n, ids)
	}
	mustSucceed(t, b, s, logical.DeleteOperation, "process/o2", nil)
	mustSucceed(t, b, s, logical.DeleteOperation, "process/p1/credentials/y", nil)
	if n, ids := usage(b); n != 1 || !reflect.DeepEqual(ids, []string{"o1"}) {
		t.Errorf("after a delete and a runtime change: %v %v", n, ids)
	}
	r := restart(t, s)
	statusOf(t, r, s)
	if n, ids := usage(r); n != 1 || !reflect.DeepEqual(ids, []string{"o1"}) {
		t.Errorf("after a reload: %v %v", n, ids)
	}
	// A global registry naming it: every live process reaches it.
	mustSucceed(t, r, s, logical.UpdateOperation, "config", map[string]any{"global_registries": "orders"})
	if n, _ := usage(r); n != 3 {
		t.Errorf("through a global registry: %v", n)
	}
}

// completeAs completes a task as the given entity, with new credentials.
func completeAs(t *testing.T, b *backend, s logical.Storage, taskID, entity string) {
	t.Helper()
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "task/" + taskID + "/complete", Storage: s, EntityID: entity,
		Data: map[string]any{"credentials": `{"type": "password", "username": "ann", "password": "new-pw"}`},
	})
	if err != nil || resp.IsError() {
		t.Fatalf("completing %s: %v %v", taskID, err, resp)
	}
}

// heldReads holds the first reads of process records until scanReaders of them are in flight at
// once (or a while has passed: a scan that reads one at a time never gets there), and records the
// most it saw at once.
type heldReads struct {
	logical.Storage
	mu             sync.Mutex
	inFlight, most int
	release        chan struct{}
	once           sync.Once
}

func newHeldReads(s logical.Storage) *heldReads {
	return &heldReads{Storage: s, release: make(chan struct{})}
}

func (h *heldReads) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if !strings.HasPrefix(key, processStoragePrefix) {
		return h.Storage.Get(ctx, key)
	}
	h.mu.Lock()
	h.inFlight++
	h.most = max(h.most, h.inFlight)
	if h.inFlight == scanReaders {
		h.once.Do(func() { close(h.release) })
	}
	h.mu.Unlock()
	select {
	case <-h.release:
	case <-time.After(2 * time.Second):
		h.once.Do(func() { close(h.release) })
	}
	defer func() { h.mu.Lock(); h.inFlight--; h.mu.Unlock() }()
	return h.Storage.Get(ctx, key)
}

func (h *heldReads) mostAtOnce() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.most
}

// The count after a start, and the scan for a new technical credential, read the processes
// scanReaders at a time, never more, and come out exact: every process by health, keep mode and
// open task, its own expiry ordered, and the runtime layers that named the credential found.
func TestCountReadsSeveralProcessesAtOnce(t *testing.T) {
	b, s := getTestBackend(t)
	waitUntil(t, 10*time.Second, func() bool { return b.census.Counts().Seeded }) // its own count, of nothing
	setupLayers(t, b, s)
	n := 3*scanReaders + 2
	for i := range n {
		id := fmt.Sprintf("p%02d", i)
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
		switch {
		case i%3 == 0:
			reportAs(t, b, s, id, "auth_failed") // broken, a task
		case i%5 == 0:
			reportAs(t, b, s, id, "forbidden") // failed
		}
		if i%4 == 0 { // names a technical credential that does not exist yet
			mustSucceed(t, b, s, logical.UpdateOperation, "process/"+id+"/credentials", map[string]any{"services": `[{"name": "y", "credentials": [{"type": "technical", "name": "later"}]}]`})
		}
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": "none"})
	for i := range 3 {
		mustSucceed(t, b, s, logical.CreateOperation, fmt.Sprintf("process/n%d", i), map[string]any{"definition": "orders"})
	}
	want := b.census.Counts()
	if want.Processes != n+3 || want.OpenTasks == 0 || want.ByHealth["failed"] == 0 || want.ByKeep["none"] != 3 {
		t.Fatalf("the processes were not made as meant: %+v", want)
	}

	held := newHeldReads(s)
	r := restart(t, held)
	waitUntil(t, 10*time.Second, func() bool { return r.census.Counts().Seeded })
	if got := r.census.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("counted after a restart: %+v, want %+v", got, want)
	}
	if got := r.expiries.Len(); got != n+3 {
		t.Errorf("%d processes in the expiry order, want %d", got, n+3)
	}
	if most := held.mostAtOnce(); most != scanReaders {
		t.Errorf("the count read %d processes at once at most, want %d", most, scanReaders)
	}

	held = newHeldReads(s)
	mustSucceed(t, r, held, logical.CreateOperation, "technical/later", map[string]any{"type": "password", "username": "u", "password": "p"})
	waitUntil(t, 10*time.Second, func() bool { return !r.census.Scanning("later") })
	if got := mustSucceed(t, r, s, logical.ReadOperation, "technical/later/usage", nil).Data["processes"]; got != (n+3)/4 {
		t.Errorf("usage of a credential named before it existed: %v processes, want %d", got, (n+3)/4)
	}
	if most := held.mostAtOnce(); most != scanReaders {
		t.Errorf("the scan for a new credential read %d processes at once at most, want %d", most, scanReaders)
	}
}

// cancelsAt ends a scan's context when it reads key, and reads on regardless (as a storage may
// answer a read already under way): the scan must not report a partial read as whole.
type cancelsAt struct {
	logical.Storage
	key    string
	cancel context.CancelFunc
}

func (c cancelsAt) Get(_ context.Context, key string) (*logical.StorageEntry, error) {
	if key == c.key {
		c.cancel()
	}
	return c.Storage.Get(context.Background(), key)
}

// failsAt fails the read of one key.
type failsAt struct {
	logical.Storage
	key string
}

func (f failsAt) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == f.key {
		return nil, errInjected
	}
	return f.Storage.Get(ctx, key)
}

// eachProcess says when it stopped short — at a failed read, or when its context ended: a count
// cut short is never taken for whole. (How many reads were already under way then depends on the
// scheduler, so it is not asserted.)
func TestEachProcessStopsShort(t *testing.T) {
	s := &logical.InmemStorage{}
	for i := range 200 {
		id := fmt.Sprintf("p%03d", i)
		putJSON(t, s, processStoragePrefix+id, lifecycle.Process{ID: id})
	}
	for name, storage := range map[string]func(context.CancelFunc) logical.Storage{
		"a failed read": func(context.CancelFunc) logical.Storage {
			return failsAt{Storage: s, key: processStoragePrefix + "p010"}
		},
		"an ended lifetime": func(cancel context.CancelFunc) logical.Storage {
			return cancelsAt{Storage: s, key: processStoragePrefix + "p010", cancel: cancel}
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		n, err := eachProcess(ctx, storage(cancel), func(*lifecycle.Process) {})
		cancel()
		if err == nil || n != 200 {
			t.Errorf("%s: %d listed, error %v", name, n, err)
		}
	}
}

// status counts each technical credential in one state: an OAuth2 credential that never had a
// token is pending (its first request failed), not expired; one whose token has passed is
// expired; one whose refreshes fail while its token is valid is failing; a static one is ok.
func TestStatusTechnicalStates(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/static", map[string]any{"type": "password", "username": "u", "password": "p"})
	mustSucceed(t, b, s, logical.CreateOperation, "technical/expiring", oauth2Input(srv, "app"))
	mustSucceed(t, b, s, logical.CreateOperation, "technical/failing", oauth2Input(srv, "app"))
	srv.FailWith(503)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/never", oauth2Input(srv, "app"))
	technical := func() map[string]int { return statusOf(t, b, s)["technical_credentials"].(map[string]int) }
	if got, want := technical(), map[string]int{"ok": 3, "failing": 0, "expired": 0, "pending": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("after a first token request failed: %v, want %v", got, want)
	}

	now := time.Now()
	put := func(name string, st *oauth.State) {
		if err := b.putTokenState(t.Context(), s, name, st); err != nil {
			t.Fatal(err)
		}
	}
	put("expiring", &oauth.State{AccessToken: "old", IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour), Generation: 1, Failures: 2, LastAttempt: now})
	put("failing", &oauth.State{AccessToken: "valid", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Generation: 1, Failures: 1, LastAttempt: now})
	if got, want := technical(), map[string]int{"ok": 1, "failing": 1, "expired": 1, "pending": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("with an expired and a failing token: %v, want %v", got, want)
	}
}
