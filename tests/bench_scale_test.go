package tests

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

var benchProcesses = flag.Int("bench.processes", 100_000, "live processes in BenchmarkScale")

// pluginRSS is the resident memory of the running pecreds plugin process, in MiB (0: none found).
func pluginRSS(b testing.TB) float64 {
	b.Helper()
	return pluginMemory(b, "VmRSS:")
}

// pluginMemory is a memory figure of the running pecreds plugin process from /proc/<pid>/status
// (VmRSS:, VmHWM: for its peak), in MiB.
func pluginMemory(b testing.TB, field string) float64 {
	b.Helper()
	bin := filepath.Join(env.pluginDir, pluginName)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmd, []byte(bin)) {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	b.Fatal("the plugin process was not found")
	return 0
}

// relativeP50 is path's p50 over config's p50, each measured alongside in 3 alternating rounds of
// n; the median round counts.
func relativeP50(b *testing.B, mount string, n int, next func() func() error) float64 {
	b.Helper()
	var ratios []float64
	for round := 0; round < 3; round++ {
		r := measure(b, n, 1, next()).p50()
		c := measure(b, n, 1, readOK(mount+"/config")).p50()
		ratios = append(ratios, float64(r)/float64(c))
	}
	sort.Float64s(ratios)
	return ratios[1]
}

// median is the middle of samples (which it sorts).
func median(samples []time.Duration) time.Duration {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return samples[len(samples)/2]
}

// cycling answers a resolve of the next process of ids each call: a hot set when ids are few.
func cycling(mount string, ids []string) func() func() error {
	return func() func() error {
		i := 0
		return func() error {
			id := ids[i%len(ids)]
			i++
			return readOK(mount + "/process/" + id + "/resolve/crm")()
		}
	}
}

// BenchmarkScale measures pecreds with many live persistent processes on one dev Vault (run it
// alone: the plugin process serves every mount):
//   - process create throughput against KV v2 writes, in interleaved rounds (target at least 0.5);
//   - plugin RSS after creating them and resolving each once (target at most 100 MiB);
//   - resolve p50 on a hot set of 100 with 100,000 live against with 100, each relative to config
//     (target at most 1.05);
//   - cold resolve (each process not touched since a plugin reload) p50 relative to config
//     (target at most 1.5), and the time the reloaded plugin takes to answer its first request;
//   - the time it takes to count the processes in storage in the background (target at most 15 s
//     at 100,000), with config read and cold resolve p50 meanwhile;
//   - RSS growth over 100,000 reads of absent process ids (target at most 10 MiB).
func BenchmarkScale(b *testing.B) {
	// Left mounted: disabling it would revoke its 100,000 leases one by one, longer than Vault lets
	// one request run (90 s); the dev server ends with the run.
	mount := "pecreds-bench-scale"
	enableMount(b, mount)
	if _, err := env.client.Logical().Write(mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}}); err != nil {
		b.Fatal(err)
	}
	kv := "bench-scale-kv"
	if err := env.client.Sys().Mount(kv, &api.MountInput{Type: "kv-v2"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.client.Sys().Unmount(kv) })
	waitFor(b, time.Minute, func() bool { // KV v2 upgrades its storage on mount
		_, err := env.client.Logical().Write(kv+"/data/probe", map[string]any{"data": map[string]any{"v": "1"}})
		return err == nil
	})
	current := `{"type": "password", "username": "nia", "password": "nia-scale-password"}`
	create := func(id string) error {
		_, err := env.client.Logical().Write(mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "nia", "current": current})
		return err
	}
	kvWrite := func(i int) error {
		_, err := env.client.Logical().Write(fmt.Sprintf("%s/data/s%d", kv, i), map[string]any{"data": map[string]any{"password": "kv-scale-password"}})
		return err
	}

	// The first 100, and the hot set's p50 with only them.
	var hot []string
	for i := 0; i < 100; i++ {
		hot = append(hot, fmt.Sprintf("p%d", i))
		if err := create(hot[i]); err != nil {
			b.Fatal(err)
		}
	}
	measure(b, 400, 1, cycling(mount, hot)())
	small := relativeP50(b, mount, 2000, cycling(mount, hot))

	// Create the rest in rounds, interleaved with as many KV v2 writes, 16 workers each.
	const round = 5000
	var createRates, kvRates []float64
	made, kvMade := 100, 0
	for made < *benchProcesses {
		n := min(round, *benchProcesses-made)
		from := made
		start := time.Now()
		forEach(b, n, func(i int) error { return create(fmt.Sprintf("p%d", from+i)) })
		createRates = append(createRates, float64(n)/time.Since(start).Seconds())
		made += n
		kvFrom := kvMade
		start = time.Now()
		forEach(b, n, func(i int) error { return kvWrite(kvFrom + i) })
		kvRates = append(kvRates, float64(n)/time.Since(start).Seconds())
		kvMade += n
	}
	paired := make([]float64, len(createRates)) // each round against the KV round right after it
	for i := range createRates {
		paired[i] = createRates[i] / kvRates[i]
	}
	sort.Float64s(paired)
	sort.Float64s(createRates)
	sort.Float64s(kvRates)
	createRate, kvRate := createRates[len(createRates)/2], kvRates[len(kvRates)/2]
	b.Logf("created %d processes: median round %.0f creates/s; KV v2 %.0f writes/s; ratio %.3f (target at least 0.5); median of the rounds' own ratios %.3f (%.3f to %.3f)",
		made, createRate, kvRate, createRate/kvRate, paired[len(paired)/2], paired[0], paired[len(paired)-1])
	b.ReportMetric(createRate/kvRate, "create/kv-write")
	rssCreated := pluginRSS(b)

	// Resolve each once (16 workers), then the memory.
	forEach(b, made, func(i int) error { return readOK(fmt.Sprintf("%s/process/p%d/resolve/crm", mount, i))() })
	rssResolved := pluginRSS(b)
	b.Logf("plugin RSS: %.1f MiB after creating %d processes, %.1f MiB after resolving each once (target at most 100)", rssCreated, made, rssResolved)
	b.ReportMetric(rssResolved, "rss-MiB")

	measure(b, 400, 1, cycling(mount, hot)())
	large := relativeP50(b, mount, 2000, cycling(mount, hot))
	b.Logf("hot resolve p50 / config p50: %.3f with 100 processes, %.3f with %d; ratio %.3f (target at most 1.05)", small, large, made, large/small)
	b.ReportMetric(large/small, "hot-resolve-large/small")

	// Cold: reload the plugin, time its first answer, then resolve processes not touched since.
	reloaded := time.Now()
	mustCLI(b, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitFor(b, time.Minute, func() bool { return readOK(mount+"/config")() == nil })
	b.Logf("the reloaded plugin answered its first request %s after the reload command", time.Since(reloaded).Round(time.Millisecond))
	// The background count of the processes in storage; requests are answered meanwhile: each
	// look also times a config read and a cold resolve (from the last process down, apart from
	// the cold set below), to show what the count costs them.
	counted := time.Now()
	var configDuring, coldDuring []time.Duration
	top := made
	timed := func(into *[]time.Duration, fn func() error) {
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(t0))
	}
	waitFor(b, 5*time.Minute, func() bool {
		s, err := env.client.Logical().Read(mount + "/status")
		if err == nil && s != nil && s.Data["counts_complete"] == true {
			return true
		}
		top--
		timed(&configDuring, readOK(mount+"/config"))
		timed(&coldDuring, readOK(fmt.Sprintf("%s/process/p%d/resolve/crm", mount, top)))
		return false
	})
	b.Logf("it counted the %d processes in storage in the background in %s", made, time.Since(counted).Round(100*time.Millisecond))
	b.ReportMetric(time.Since(counted).Seconds(), "count-s")
	if len(configDuring) > 0 {
		configAfter := measure(b, 200, 1, readOK(mount+"/config")).p50()
		b.Logf("while it counted: config read p50 %s, cold resolve p50 %s (%d of each); config read p50 after: %s",
			median(configDuring).Round(time.Microsecond), median(coldDuring).Round(time.Microsecond), len(configDuring), configAfter.Round(time.Microsecond))
	}
	next := 1000
	cold := func() func() error {
		return func() error {
			next++
			return readOK(fmt.Sprintf("%s/process/p%d/resolve/crm", mount, next))()
		}
	}
	coldRatio := relativeP50(b, mount, 2000, cold)
	b.Logf("cold resolve p50 / config p50: %.3f (target at most 1.5)", coldRatio)
	b.ReportMetric(coldRatio, "cold-resolve/config")

	// Absent ids: memory must not grow.
	before := pluginRSS(b)
	forEach(b, 100_000, func(i int) error {
		_, err := env.client.Logical().Read(fmt.Sprintf("%s/process/absent-%d", mount, i))
		return err
	})
	growth := pluginRSS(b) - before
	b.Logf("plugin RSS %.1f MiB before and %.1f MiB after 100,000 reads of absent process ids: growth %.1f MiB (target at most 10)", before, before+growth, growth)
	b.ReportMetric(growth, "absent-reads-rss-growth-MiB")
}
