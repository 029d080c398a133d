package tests

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// BenchmarkCreate places a process create between its two floors, measured in the same run on
// one dev Vault: a KV v2 write (Vault's own engine, in Vault's process: no plugin round trips, no
// lease), and the least an external plugin can do to answer a leased create (leasefloor: the
// request's fields in one storage write, and a lease; served as pecreds is), with the same
// plugin's write without a lease (nolease) beside them. Each round makes
// -bench.per-round of each from 16 workers, the order of the four rotating; a ratio is the
// median over the rounds of that round's own ratio.
//
//	scripts/bench.sh -bench Create -bench.rounds=15 -bench.per-round=2000   # about a minute
//
// create / KV is issue 21's measure; leasefloor / KV is what any external plugin's leased create
// can reach on this machine, and create / leasefloor what pecreds keeps of it; nolease / KV is
// what the plugin round trips alone leave of a KV write.
func BenchmarkCreate(b *testing.B) {
	mount := "pecreds-bench-create" // left mounted, as BenchmarkScale's: the dev server ends with the run
	enableMount(b, mount)
	if _, err := env.client.Logical().Write(mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}}); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "leasefloor")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/leasefloor").CombinedOutput(); err != nil {
		b.Fatalf("building leasefloor: %v\n%s", err, out)
	}
	floor := mountBuild(b, "leasefloor", "leasefloor", bin)
	kv := "bench-create-kv"
	if err := env.client.Sys().Mount(kv, &api.MountInput{Type: "kv-v2"}); err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, func() bool { // KV v2 upgrades its storage on mount
		_, err := env.client.Logical().Write(kv+"/data/probe", map[string]any{"data": map[string]any{"v": "1"}})
		return err == nil
	})
	current := `{"type": "password", "username": "nia", "password": "nia-create-password"}`
	rememberSecrets("nia-create-password")
	body := map[string]any{"definition": "orders", "current": current}
	writes := map[string]func(i int) error{
		"create": func(i int) error {
			_, err := env.client.Logical().Write(fmt.Sprintf("%s/process/p%d", mount, i), body)
			return err
		},
		"leasefloor": func(i int) error {
			_, err := env.client.Logical().Write(fmt.Sprintf("%s/item/p%d", floor, i), body)
			return err
		},
		"nolease": func(i int) error {
			_, err := env.client.Logical().Write(fmt.Sprintf("%s/plain/p%d", floor, i), body)
			return err
		},
		"kv": func(i int) error {
			_, err := env.client.Logical().Write(fmt.Sprintf("%s/data/s%d", kv, i), map[string]any{"data": map[string]any{"password": "kv-create-password"}})
			return err
		},
	}
	kinds := []string{"create", "leasefloor", "nolease", "kv"}
	ratios := map[string][]float64{}
	rates := map[string][]float64{}
	for round := 0; round < *benchRounds; round++ {
		r := map[string]float64{}
		for k := range kinds {
			kind, from := kinds[(round+k)%len(kinds)], round**benchPerRound
			r[kind] = rate(b, func(i int) error { return writes[kind](from + i) })
			rates[kind] = append(rates[kind], r[kind])
		}
		ratios["create/kv"] = append(ratios["create/kv"], r["create"]/r["kv"])
		ratios["leasefloor/kv"] = append(ratios["leasefloor/kv"], r["leasefloor"]/r["kv"])
		ratios["create/leasefloor"] = append(ratios["create/leasefloor"], r["create"]/r["leasefloor"])
		ratios["nolease/kv"] = append(ratios["nolease/kv"], r["nolease"]/r["kv"])
	}
	mid := func(xs []float64) float64 { sort.Float64s(xs); return xs[len(xs)/2] }
	b.Logf("%d rounds of %d each, 16 workers; median rounds: %.0f creates/s, %.0f leasefloor writes/s, %.0f nolease writes/s, %.0f KV v2 writes/s",
		*benchRounds, *benchPerRound, mid(rates["create"]), mid(rates["leasefloor"]), mid(rates["nolease"]), mid(rates["kv"]))
	for _, name := range []string{"create/kv", "leasefloor/kv", "create/leasefloor", "nolease/kv"} {
		rs := ratios[name]
		m := mid(rs)
		b.Logf("%s: median round %.3f (from %.3f to %.3f)", name, m, rs[0], rs[len(rs)-1])
		b.ReportMetric(m, name)
	}
}
