package tests

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

var (
	benchCredentials = flag.Int("bench.credentials", 2000, "oauth2 technical credentials in BenchmarkTokenRefresh")
	benchLifetime    = flag.Duration("bench.lifetime", 60*time.Second, "token lifetime in BenchmarkTokenRefresh and BenchmarkGrantRefresh")
	benchDuration    = flag.Duration("bench.duration", 3*time.Minute, "how long BenchmarkTokenRefresh watches")
)

// BenchmarkTokenRefresh keeps many oauth2 technical credentials with short token lifetimes for a
// while, reading random ones all along, and reports how the scheduler did: refreshes per
// credential, duplicate token requests (two for one credential within half a refresh period:
// target 0), and reads that were served an expired token (target 0). Run it with
// scripts/bench.sh; it runs once whatever b.N is.
func BenchmarkTokenRefresh(b *testing.B) {
	mount := newMount(b)
	srv := startTokenServer(b)
	srv.SetLifetime(*benchLifetime)

	n := *benchCredentials
	created := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := env.client.Logical().Write(fmt.Sprintf("%s/technical/c%d", mount, i), map[string]any{
					"type": "oauth2", "token_url": srv.TokenURL(), "client_id": fmt.Sprintf("c%d", i), "client_secret": "bench-secret",
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("creating credentials: %v", err)
	}
	b.Logf("created %d oauth2 credentials in %s", n, time.Since(created).Round(time.Millisecond))

	// Read random credentials from 8 readers for the whole run.
	type read struct {
		at    time.Time
		cred  int
		token string
	}
	var mu sync.Mutex
	var reads []read
	var readErrors int
	stop := time.Now().Add(*benchDuration)
	b.ResetTimer()
	readAtPace(n, stop, func(i int) {
		s, err := env.client.Logical().Read(fmt.Sprintf("%s/technical/c%d/creds", mount, i))
		at := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if err != nil || s == nil {
			readErrors++
			return
		}
		tok, _ := s.Data["access_token"].(string)
		reads = append(reads, read{at: at, cred: i, token: tok})
	})
	b.StopTimer()
	elapsed := time.Since(created)

	// Every token's real expiry, from the endpoint's own record.
	expiry := map[string]time.Time{}
	requests, duplicates := 0, 0
	minGap := time.Duration(float64(*benchLifetime) * 0.67 / 2)
	for i := 0; i < n; i++ {
		issues := srv.Issues(fmt.Sprintf("c%d", i))
		requests += len(issues)
		sort.Slice(issues, func(a, c int) bool { return issues[a].At.Before(issues[c].At) })
		for j, is := range issues {
			expiry[is.Token] = is.At.Add(*benchLifetime)
			if j > 0 && is.At.Sub(issues[j-1].At) < minGap {
				duplicates++
			}
		}
	}
	expiredServed, unknown := 0, 0
	for _, r := range reads {
		exp, ok := expiry[r.token]
		switch {
		case !ok:
			unknown++
		case !r.at.Before(exp):
			expiredServed++
		}
	}
	refreshes := float64(requests-n) / float64(n)
	// Refreshes due in the window: one every 0.67 of a lifetime (jitter pulls them up to 5% earlier).
	expected := math.Floor(elapsed.Seconds() / (benchLifetime.Seconds() * 0.67))
	b.ReportMetric(refreshes, "refreshes/cred")
	b.ReportMetric(expected, "expected-refreshes/cred")
	b.ReportMetric(float64(duplicates), "duplicate-requests")
	b.ReportMetric(float64(expiredServed), "expired-served")
	b.ReportMetric(float64(len(reads)), "reads")
	b.ReportMetric(float64(readErrors), "read-errors")
	b.Logf("%d credentials, %s lifetimes, watched %s: %d token requests (%.2f refreshes a credential, %.2f expected), %d duplicate requests, %d reads, %d served an expired token, %d unknown tokens, %d read errors",
		n, *benchLifetime, elapsed.Round(time.Second), requests, refreshes, expected, duplicates, len(reads), expiredServed, unknown, readErrors)
	if duplicates > 0 || expiredServed > 0 || unknown > 0 || readErrors > 0 {
		b.Errorf("targets missed: %d duplicate requests, %d expired tokens served, %d unknown tokens, %d read errors", duplicates, expiredServed, unknown, readErrors)
	}
}

// latency is what one kind of request measured: sorted samples and throughput.
type latency struct {
	samples []time.Duration
	perSec  float64
}

func (l latency) p50() time.Duration { return l.samples[len(l.samples)/2] }

// measure runs fn n times from `workers` goroutines and returns the latencies and throughput.
func measure(b *testing.B, n, workers int, fn func() error) latency {
	b.Helper()
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	var failed error
	start := time.Now()
	per := n / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, per)
			for i := 0; i < per; i++ {
				t0 := time.Now()
				if err := fn(); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			out = append(out, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	elapsed := time.Since(start)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return latency{samples: out, perSec: float64(len(out)) / elapsed.Seconds()}
}

func readOK(path string) func() error {
	return func() error {
		s, err := env.client.Logical().Read(path)
		if err == nil && s == nil {
			err = fmt.Errorf("%s: not found", path)
		}
		return err
	}
}

// BenchmarkResolve compares, in one run against one dev Vault, the p50 latency and throughput
// of a resolve through three layers ending in an oauth2 technical entry, of GET config (the floor
// of any external plugin: one gRPC hop) and of a built-in KV v2 read; then resolve with 100
// against 20,000 live processes. Targets: resolve p50 at most 1.15 × config p50; resolve flat in
// the number of processes (at most 1.10 ×).
func BenchmarkResolve(b *testing.B) {
	mount := newMount(b)
	srv := startTokenServer(b)
	mustWrite := func(path string, data map[string]any) {
		if _, err := env.client.Logical().Write(path, data); err != nil {
			b.Fatalf("%s: %v", path, err)
		}
	}
	mustWrite(mount+"/technical/idp", map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "bench", "client_secret": "bench-secret"})
	cur := []map[string]any{{"type": "current"}}
	mustWrite(mount+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "docs", "credentials": cur}}})
	mustWrite(mount+"/registry/common", map[string]any{"services": []map[string]any{{"name": "mail", "credentials": cur}}})
	mustWrite(mount+"/registry/partners", map[string]any{"services": []map[string]any{
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "idp"}}},
	}})
	mustWrite(mount+"/config", map[string]any{"global_registries": "common,partners", "keep_credentials": "none"})
	kv := "bench-kv-" + fmt.Sprint(time.Now().UnixNano())
	if err := env.client.Sys().Mount(kv, &api.MountInput{Type: "kv-v2"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.client.Sys().Unmount(kv) })
	// KV v2 upgrades its storage on mount, and refuses writes until it is done.
	waitFor(b, 30*time.Second, func() bool {
		_, err := env.client.Logical().Write(kv+"/data/app", map[string]any{"data": map[string]any{"password": "kv-bench"}})
		return err == nil
	})

	createProcesses := func(from, to int) {
		forEach(b, to-from, func(i int) error {
			_, err := env.client.Logical().Write(fmt.Sprintf("%s/process/p%d", mount, from+i), map[string]any{"definition": "orders"})
			return err
		})
	}
	createProcesses(0, 100)
	resolvePath := mount + "/process/p7/resolve/crm"
	if s, err := env.client.Logical().Read(resolvePath); err != nil || s.Data["technical"] != "idp" || s.Data["source"] != "global:partners" {
		b.Fatalf("resolve does not go through the technical entry of the third layer: %v %v", err, s)
	}

	const n = 4000
	b.ResetTimer()
	kinds := []struct {
		name string
		fn   func() error
	}{
		{"resolve", readOK(resolvePath)},
		{"config", readOK(mount + "/config")},
		{"kv2", readOK(kv + "/data/app")},
	}
	for _, workers := range []int{1, 16} {
		// Warm up, then 3 rounds in which the kinds alternate; each kind keeps its median
		// round, so the machine's drift during the run falls on all kinds alike.
		rounds := map[string][]latency{}
		for _, k := range kinds {
			measure(b, 400, workers, k.fn)
		}
		for round := 0; round < 3; round++ {
			for _, k := range kinds {
				rounds[k.name] = append(rounds[k.name], measure(b, n/2, workers, k.fn))
			}
		}
		results := map[string]latency{}
		for name, rs := range rounds {
			sort.Slice(rs, func(i, j int) bool { return rs[i].p50() < rs[j].p50() })
			results[name] = rs[1]
		}
		ratio := float64(results["resolve"].p50()) / float64(results["config"].p50())
		for _, k := range kinds {
			r := results[k.name]
			b.Logf("%2d workers: %-8s p50 %7s  %7.0f req/s", workers, k.name, r.p50().Round(time.Microsecond), r.perSec)
		}
		b.Logf("%2d workers: resolve p50 / config p50 = %.3f (target at most 1.15)", workers, ratio)
		b.ReportMetric(ratio, fmt.Sprintf("resolve/config-p50-%dw", workers))
		b.ReportMetric(results["resolve"].perSec, fmt.Sprintf("resolve-req/s-%dw", workers))
	}

	// Flatness: resolve's p50 against config's p50 measured alongside it (the same gRPC hop),
	// with 100 and then 20,000 live processes, so that the machine's drift between the two
	// measures cancels out. Each is the median of 3 alternating rounds.
	relative := func(path string) (resolveP50, configP50 time.Duration, ratio float64) {
		var ratios []float64
		var rs, cs []time.Duration
		for round := 0; round < 3; round++ {
			r := measure(b, n/2, 1, readOK(path)).p50()
			c := measure(b, n/2, 1, readOK(mount+"/config")).p50()
			rs, cs, ratios = append(rs, r), append(cs, c), append(ratios, float64(r)/float64(c))
		}
		sort.Float64s(ratios)
		sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
		sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
		return rs[1], cs[1], ratios[1]
	}
	smallR, smallC, small := relative(resolvePath)
	b.StopTimer()
	created := time.Now()
	createProcesses(100, 20000)
	b.Logf("created 19,900 more processes in %s", time.Since(created).Round(time.Second))
	// Let Vault settle after 19,900 lease creations: until config reads are back within 25% of
	// the latency they had before them (at most a minute).
	settled := time.Now()
	poll(time.Minute, 500*time.Millisecond, func() bool { return measure(b, 100, 1, readOK(mount+"/config")).p50() <= smallC*5/4 })
	b.Logf("Vault settled in %s", time.Since(settled).Round(100*time.Millisecond))
	b.StartTimer()
	measure(b, 400, 1, readOK(mount+"/process/p19999/resolve/crm"))
	largeR, largeC, large := relative(mount + "/process/p19999/resolve/crm")
	flat := large / small
	b.Logf("100 processes: resolve p50 %s, config p50 %s (%.3f); 20,000: resolve %s, config %s (%.3f); raw resolve ratio %.3f",
		smallR.Round(time.Microsecond), smallC.Round(time.Microsecond), small, largeR.Round(time.Microsecond), largeC.Round(time.Microsecond), large,
		float64(largeR)/float64(smallR))
	b.Logf("resolve p50 with 20,000 processes / with 100, relative to config: %.3f (target at most 1.10)", flat)
	b.ReportMetric(flat, "resolve-p50-20000/100")
}

// readAtPace runs 8 readers until stop, each reading a random one of n (read's argument) every
// 20 ms: a reader's pace, the load the refresh benchmarks measure under.
func readAtPace(n int, stop time.Time, read func(i int)) {
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				read(rand.IntN(n))
				time.Sleep(20 * time.Millisecond) // the point: a reader's pace, the load under measure
			}
		}()
	}
	wg.Wait()
}
