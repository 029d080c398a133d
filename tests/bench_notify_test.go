package tests

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// slowReceiver is a Task Manager that verifies each delivery with the reference library and
// answers after `delay`; until released it holds every request, so that events pile up in the
// outbox without failed attempts (and so without backoff).
type slowReceiver struct {
	url      string
	delay    time.Duration
	verifier *standardwebhooks.Webhook
	gate     chan struct{}

	mu        sync.Mutex
	delivered int
	last      time.Time
	bad       atomic.Int64
}

func startSlowReceiver(b *testing.B, secret string, delay time.Duration) *slowReceiver {
	b.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &slowReceiver{url: "http://" + l.Addr().String() + "/hook", delay: delay, verifier: wh, gate: make(chan struct{})}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		<-r.gate
		time.Sleep(r.delay) // the point: the Task Manager's own work, which makes it a slow receiver
		if r.verifier.Verify(body, req.Header) != nil {
			r.bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.delivered++
		r.last = time.Now()
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { r.release(); _ = srv.Close() })
	return r
}

func (r *slowReceiver) release() {
	select {
	case <-r.gate:
	default:
		close(r.gate)
	}
}

func (r *slowReceiver) count() (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered, r.last
}

// benchBreak makes n broken processes (two events each: process-broken, task-created), from 16
// workers, with ids prefix0..prefix(n-1).
func benchBreak(b *testing.B, mount, prefix string, n int) {
	b.Helper()
	forEach(b, n, func(i int) error {
		id := fmt.Sprintf("%s%d", prefix, i)
		if _, err := env.client.Logical().Write(mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "nia",
			"current": `{"type": "password", "username": "nia", "password": "nia-bench-password"}`}); err != nil {
			return err
		}
		_, err := env.client.Logical().Write(mount+"/process/"+id+"/report", map[string]any{"service": "crm", "error": "auth_failed"})
		return err
	})
}

// forEach runs fn(0..n-1) from 16 workers and fails the test or benchmark on an error.
func forEach(b testing.TB, n int, fn func(i int) error) {
	b.Helper()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

func notifyBenchMount(b *testing.B, name, receiverURL, secret string, extra map[string]any) string {
	b.Helper()
	mount := newMountNamed(b, "pecreds-bench-notify-"+name)
	cfg := map[string]any{"notify_url": receiverURL, "notify_secret": secret, "notify_timeout": "60s"}
	for k, v := range extra {
		cfg[k] = v
	}
	if _, err := env.client.Logical().Write(mount+"/config", cfg); err != nil {
		b.Fatal(err)
	}
	if _, err := env.client.Logical().Write(mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}}); err != nil {
		b.Fatal(err)
	}
	return mount
}

// BenchmarkNotify measures the outbox on a real dev Vault:
//   - delivery rate to a receiver answering in 50 ms, notify_concurrency 4 against 1 (target at
//     least 3 ×): 400 events of 200 processes wait behind a held receiver, then it is released;
//   - report p50 with 10,000 events pending against none, each relative to GET config measured
//     alongside (target at most 1.10 ×).
func BenchmarkNotify(b *testing.B) {
	secret := webhookSecret("bench-notify-secret")
	const events, delay = 400, 50 * time.Millisecond
	rates := map[int]float64{}
	for _, conc := range []int{1, 4} {
		r := startSlowReceiver(b, secret, delay)
		mount := notifyBenchMount(b, fmt.Sprintf("concurrency-%d", conc), r.url, secret, map[string]any{"notify_concurrency": conc})
		benchBreak(b, mount, "d", events/2)
		start := time.Now()
		r.release()
		poll(2*time.Minute, 50*time.Millisecond, func() bool { n, _ := r.count(); return n >= events })
		n, last := r.count()
		if n < events || r.bad.Load() != 0 {
			b.Fatalf("concurrency %d: %d of %d delivered, %d did not verify", conc, n, events, r.bad.Load())
		}
		rates[conc] = float64(n) / last.Sub(start).Seconds()
		b.Logf("notify_concurrency %d: %d events in %s: %.1f deliveries/s (receiver answers in %s)", conc, n, last.Sub(start).Round(time.Millisecond), rates[conc], delay)
	}
	b.Logf("delivery rate, concurrency 4 / 1 = %.2f (target at least 3)", rates[4]/rates[1])
	b.ReportMetric(rates[4]/rates[1], "delivery-rate-4/1")

	// Report latency with an outbox that is empty and one that holds 10,000 events. The receiver
	// holds what it is sent, so the events stay pending and the delivery loop stays quiet.
	held := startSlowReceiver(b, secret, 0)
	empty := notifyBenchMount(b, "empty", held.url, secret, nil)
	full := notifyBenchMount(b, "full", held.url, secret, nil)
	filled := time.Now()
	benchBreak(b, full, "pending", 5000)
	b.Logf("10,000 events made pending in %s", time.Since(filled).Round(time.Second))
	ratioFor := func(mount, prefix string) float64 {
		const per = 600
		var ratios []float64
		next := 0
		for round := 0; round < 3; round++ {
			from := next
			next += per
			var reports []time.Duration
			var mu sync.Mutex
			for i := from; i < next; i++ { // the processes first, then their reports alone are timed
				if _, err := env.client.Logical().Write(fmt.Sprintf("%s/process/%s%d", mount, prefix, i), map[string]any{"definition": "orders", "owner": "nia",
					"current": `{"type": "password", "username": "nia", "password": "nia-bench-password"}`}); err != nil {
					b.Fatal(err)
				}
			}
			for i := from; i < next; i++ {
				t0 := time.Now()
				if _, err := env.client.Logical().Write(fmt.Sprintf("%s/process/%s%d/report", mount, prefix, i), map[string]any{"service": "crm", "error": "auth_failed"}); err != nil {
					b.Fatal(err)
				}
				mu.Lock()
				reports = append(reports, time.Since(t0))
				mu.Unlock()
			}
			sort.Slice(reports, func(i, j int) bool { return reports[i] < reports[j] })
			config := measure(b, per, 1, readOK(mount+"/config")).p50()
			ratios = append(ratios, float64(reports[len(reports)/2])/float64(config))
			b.Logf("%s round %d: report p50 %s, config p50 %s", mount, round+1, reports[len(reports)/2].Round(time.Microsecond), config.Round(time.Microsecond))
		}
		sort.Float64s(ratios)
		return ratios[1]
	}
	none := ratioFor(empty, "r")
	many := ratioFor(full, "r")
	status, err := env.client.Logical().Read(full + "/notify/status")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("report p50 / config p50: %.3f with none pending, %.3f with %v pending", none, many, status.Data["pending"])
	b.Logf("report with 10,000 pending / with none, each relative to config: %.3f (target at most 1.10)", many/none)
	b.ReportMetric(many/none, "report-p50-10000/0")
}
