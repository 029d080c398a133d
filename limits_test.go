package pecreds

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/cache"
)

// bigServices is n runtime services, each with an api_key of size bytes, as JSON text.
func bigServices(from, n, size int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"name":"s%d","credentials":[{"type":"api_key","key":"%s"}]}`, from+i, strings.Repeat("k", size))
	}
	return "[" + strings.Join(items, ",") + "]"
}

// Oversized input is a 400 naming the field and its limit, and nothing is stored.
func TestAttackOversizedInputIsRefusedBeforeStored(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	huge := strings.Repeat("x", 1<<20)
	mustFail(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "owner": huge}, "owner is 1048576 bytes long; the limit is 256 bytes")
	if keys := storedKeys(t, s, processStoragePrefix); len(keys) != 0 {
		t.Fatalf("a refused create stored %v", keys)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "owner": strings.Repeat("o", 256)})

	// The runtime layer: 2 MB at once, and 1 MiB reached by merging writes that each fit.
	mustFail(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": bigServices(0, 40, 50<<10)}, "services is", "the limit is 1048576 bytes (1 MiB)")
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": bigServices(0, 12, 60<<10)})
	mustFail(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": bigServices(12, 6, 60<<10)}, "the runtime layer would take", "1 MiB")
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p1", nil).Data["runtime_services"].([]string); len(got) != 12 {
		t.Errorf("a refused merge changed the runtime layer: %d services", len(got))
	}
	// A credential past 64 KiB, anywhere.
	mustFail(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": bigServices(20, 1, 65<<10)}, `field "key" is`, "64 KiB")
	mustFail(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"current": map[string]any{"type": "token", "token": strings.Repeat("t", 65<<10)}}, `field "token" is`, "64 KiB")
	mustFail(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"current": map[string]any{"type": "token", "token": huge}}, "current takes about", "1 MiB")
	mustFail(t, b, s, logical.CreateOperation, "technical/big", map[string]any{"type": "password", "username": "u", "password": strings.Repeat("p", 65<<10)}, `field "password" is`, "64 KiB")

	// Free text: 1 KiB.
	mustFail(t, b, s, logical.UpdateOperation, "process/p1/report", map[string]any{"service": "crm", "error": "unavailable", "message": strings.Repeat("m", 1025)}, "message is 1025 bytes long; the limit is 1024 bytes (1 KiB)")
	mustFail(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"description": strings.Repeat("d", 1025)}, "description is 1025 bytes long")
	mustFail(t, b, s, logical.CreateOperation, "technical/l", map[string]any{"type": "api_key", "key": "k", "label": strings.Repeat("l", 1025)}, "label is 1025 bytes long")
	// A registry: 1 MiB as stored.
	mustFail(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": bigServices(0, 18, 60<<10)}, "services is", "1 MiB")
	// Within 1 MiB as given, past it as stored (each api_key gains its default header).
	small := strings.TrimSuffix(strings.Repeat(`{"type":"api_key","key":"k"},`, 32), ",")
	var many []string
	for i := 0; i < 1000; i++ {
		many = append(many, fmt.Sprintf(`{"name":"s%d","credentials":[%s]}`, i, small))
	}
	text := "[" + strings.Join(many, ",") + "]"
	if len(text) >= 1<<20 {
		t.Fatalf("the text given is %d bytes", len(text))
	}
	mustFail(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": text}, "services: the registry would take", "1 MiB")
	for _, prefix := range []string{"registry/r", "technical/big", "technical/l", "process/p2"} {
		if keys := storedKeys(t, s, prefix); len(keys) != 0 {
			t.Errorf("a refused write stored %s: %v", prefix, keys)
		}
	}
}

// The process cache is bounded in bytes: processes with large runtime layers push each other out
// (they are read from storage again when asked for), however few they are.
func TestProcessCacheIsBoundedInBytes(t *testing.T) {
	b, s := getTestBackend(t)
	b.processes = cache.NewBounded(100, 3<<20, processBytes)
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("process/p%d", i)
		mustSucceed(t, b, s, logical.CreateOperation, id, nil)
		mustSucceed(t, b, s, logical.UpdateOperation, id+"/credentials", map[string]any{"services": bigServices(0, 15, 60<<10)})
	}
	if n, size := b.processes.Len(), b.processes.Bytes(); n > 3 || size > 3<<20 {
		t.Errorf("the process cache holds %d processes, %d bytes; the budget is 3 MiB", n, size)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p0/resolve/s3", nil).Data["key"]; got != strings.Repeat("k", 60<<10) {
		t.Error("an evicted process does not resolve")
	}
}

// The usage census holds only technical names that exist: a runtime layer naming thousands that
// do not costs it nothing; one created later is found by the background scan.
func TestCensusHoldsOnlyTechnicalsThatExist(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p1", nil)
	var services []string
	for i := 0; i < 500; i++ { // 16,000 names, within the layer's 1 MiB
		creds := make([]string, 32)
		for j := range creds {
			creds[j] = fmt.Sprintf(`{"type":"technical","name":"no-such-%d-%d"}`, i, j)
		}
		if i == 0 {
			creds[1] = `{"type":"technical","name":"later"}`
		}
		services = append(services, fmt.Sprintf(`{"name":"s%d","credentials":[%s]}`, i, strings.Join(creds, ",")))
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": "[" + strings.Join(services, ",") + "]"})
	if n := b.census.HeldNames(); n != 0 {
		t.Fatalf("the census holds %d technical names that do not exist", n)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "technical/later", map[string]any{"type": "api_key", "key": "k"})
	deadline := time.Now().Add(10 * time.Second)
	for b.census.Scanning("later") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/later/usage", nil).Data; got["processes"] != 1 {
		t.Errorf("usage after the scan: %v", got)
	}
	if n := b.census.HeldNames(); n != 1 {
		t.Errorf("the census holds %d names, want 1", n)
	}
	mustSucceed(t, b, s, logical.DeleteOperation, "technical/later", nil)
	if n := b.census.HeldNames(); n != 0 {
		t.Errorf("a deleted technical is still held: %d", n)
	}
}

// A refused request past maxFieldBytes schedules one release of memory, however many follow; a
// small one schedules none.
func TestRefusedOversizedRequestReleasesMemory(t *testing.T) {
	var m memoryRelease
	m.refused(map[string]any{"owner": strings.Repeat("o", 300)})
	if m.scheduled.Load() {
		t.Fatal("a small refused request scheduled a release")
	}
	m.refused(map[string]any{"services": strings.Repeat("s", maxFieldBytes+1)})
	if !m.scheduled.Load() {
		t.Fatal("an oversized refused request scheduled no release")
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.scheduled.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if m.scheduled.Load() {
		t.Error("the release never ran")
	}
}
