package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// createMany creates n processes id prefix0..prefix(n-1) of the definition, from 16 workers.
func createMany(t testing.TB, mount, prefix, definition string, n int) {
	t.Helper()
	forEach(t, n, func(i int) error {
		_, err := env.client.Logical().Write(fmt.Sprintf("%s/process/%s%d", mount, prefix, i), map[string]any{"definition": definition})
		return err
	})
}

// listPage is one LIST process/ page through the HTTP API, as a client library pages; past the
// last page, none.
func listPage(t *testing.T, mount, after string, limit int) []string {
	t.Helper()
	r := env.client.NewRequest("LIST", "/v1/"+mount+"/process")
	if after != "" {
		r.Params.Set("after", after)
	}
	r.Params.Set("limit", fmt.Sprint(limit))
	resp, err := env.client.RawRequest(r)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil // Vault answers an empty list with a 404: past the last page
	}
	if err != nil {
		t.Fatalf("LIST after %q: %v", after, err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Keys
}

func TestProcessListPagesThrough2500(t *testing.T) {
	mount := newMount(t)
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	createMany(t, mount, "p", "orders", 2500)
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		keys := listPage(t, mount, after, 1000)
		if len(keys) == 0 {
			if pages != 3 {
				t.Errorf("%d pages of 1,000 for 2,500 processes", pages)
			}
			break
		}
		all = append(all, keys...)
		after = keys[len(keys)-1]
	}
	seen := map[string]bool{}
	for i, id := range all {
		if seen[id] || (i > 0 && all[i-1] >= id) {
			t.Fatalf("page order broken at %d: %s", i, id)
		}
		seen[id] = true
	}
	if len(all) != 2500 {
		t.Errorf("paged through %d ids", len(all))
	}
	if plain := mustCLI(t, "list", "-format=json", mount+"/process"); len(plain) < 2500*5 {
		t.Errorf("vault list answers %d bytes", len(plain))
	}
}

// status counts survive a plugin reload (counted again from storage, in the background), and so
// does the usage index.
func TestStatusAndUsageAcrossPluginReload(t *testing.T) {
	mount := newMount(t)
	write(t, mount+"/technical/svc", map[string]any{"type": "password", "username": "svc", "password": "svc-status-password"})
	rememberSecrets("svc-status-password")
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "svc"}}},
	}})
	for _, id := range []string{"s1", "s2", "s3"} {
		write(t, mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "nia", "current": userCurrent(t, "nia")})
	}
	write(t, mount+"/process/s1/report", map[string]any{"service": "crm", "error": "auth_failed"})
	write(t, mount+"/process/s2/report", map[string]any{"service": "crm", "error": "forbidden"})
	want := func(status map[string]any) string {
		return fmt.Sprintf("%v %v %v %v", status["processes"], status["processes_by_health"], status["open_tasks"], status["technical_credentials"])
	}
	before := want(read(t, mount+"/status").Data)
	if before != "3 map[broken:1 failed:1 running:1] 1 map[expired:0 failing:0 ok:1 pending:0]" {
		t.Errorf("status %s", before)
	}
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	var after map[string]any
	waitFor(t, 20*time.Second, func() bool {
		s, err := env.client.Logical().Read(mount + "/status")
		if err != nil || s == nil {
			return false
		}
		after = s.Data
		return after["counts_complete"] == true
	})
	if got := want(after); got != before {
		t.Errorf("after a reload %s, before %s", got, before)
	}
	if usage := read(t, mount+"/technical/svc/usage").Data; fmt.Sprint(usage["processes"]) != "3" {
		t.Errorf("usage after a reload: %v", usage)
	}
}
