package tests

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// The isolation scene of the issue that asked for it: 300 processes on one definition; the token
// endpoint of technical credential "slow" (which has a valid token) and of "dead" (which never
// got one) hang; "fast" answers. 32 processes depend on the hung ones, 268 do not.

// startHangingEndpoint is a scripted token endpoint (a token for every client) that ends with the
// test.
func startHangingEndpoint(tb testing.TB, hang bool) *tokenserver.Scripted {
	tb.Helper()
	h := tokenserver.StartScripted(`{"access_token": "from-a-hanging-endpoint", "token_type": "Bearer", "expires_in": 3600}`, hang)
	tb.Cleanup(h.Close)
	return h
}

type isolationScene struct {
	mount      string
	slow, dead *tokenserver.Scripted
	client     *api.Client // no retries: every answer is seen as it is
}

const (
	isolationProcesses = 300
	isolationDependent = 32 // p0..p15 report slow's failure, p16..p31 resolve dead's service
)

func newIsolationScene(tb testing.TB) *isolationScene {
	tb.Helper()
	sc := &isolationScene{mount: newMount(tb), slow: startHangingEndpoint(tb, false), dead: startHangingEndpoint(tb, true)}
	fast := startTokenServer(tb)
	c, err := env.client.Clone()
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(rootToken)
	c.SetMaxRetries(0)
	sc.client = c
	must := func(path string, data map[string]any) {
		if _, err := c.Logical().Write(sc.mount+"/"+path, data); err != nil {
			tb.Fatalf("write %s: %v", path, err)
		}
	}
	rememberSecrets("slow-secret", "dead-secret", "fast-secret")
	must("technical/slow", map[string]any{"type": "oauth2", "token_url": sc.slow.TokenURL(), "client_id": "slow", "client_secret": "slow-secret"})
	must("technical/dead", map[string]any{"type": "oauth2", "token_url": sc.dead.TokenURL(), "client_id": "dead", "client_secret": "dead-secret"})
	must("technical/fast", map[string]any{"type": "oauth2", "token_url": fast.TokenURL(), "client_id": "fast", "client_secret": "fast-secret"})
	must("registry/orders", map[string]any{"services": []map[string]any{
		{"name": "slowsvc", "credentials": []map[string]any{{"type": "technical", "name": "slow"}}},
		{"name": "deadsvc", "credentials": []map[string]any{{"type": "technical", "name": "dead"}}},
		{"name": "fastsvc", "credentials": []map[string]any{{"type": "technical", "name": "fast"}}},
		{"name": "own", "credentials": []map[string]any{{"type": "api_key", "key": "own-key"}}},
	}})
	forEach(tb, isolationProcesses, func(i int) error {
		_, err := c.Logical().Write(fmt.Sprintf("%s/process/p%d", sc.mount, i), map[string]any{"definition": "orders"})
		return err
	})
	sc.slow.Hold()
	return sc
}

// startDependents keeps the 32 dependent processes asking, each again as soon as it is answered
// (a retryable 503 after the token wait), until ctx ends; the returned func waits for them.
func (sc *isolationScene) startDependents(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for i := range isolationDependent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if i < isolationDependent/2 {
					_, _ = sc.client.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/process/p%d/report", sc.mount, i), map[string]any{"service": "slowsvc", "error": "auth_failed"})
				} else {
					_, _ = sc.client.Logical().ReadWithContext(ctx, fmt.Sprintf("%s/process/p%d/resolve/deadsvc", sc.mount, i))
				}
			}
		}()
	}
	return wg.Wait
}

// unrelated runs, rounds times, the 268 unrelated processes' requests — a report of `unavailable`
// on their own service and a resolve of the fast one — from 16 workers, and answers their
// latencies, sorted. Any error fails.
func (sc *isolationScene) unrelated(tb testing.TB, rounds int) []time.Duration {
	tb.Helper()
	n := isolationProcesses - isolationDependent
	var mu sync.Mutex
	var out []time.Duration
	forEach(tb, n*rounds, func(k int) error {
		id := isolationDependent + k%n
		var took [2]time.Duration
		t0 := time.Now()
		if _, err := sc.client.Logical().Write(fmt.Sprintf("%s/process/p%d/report", sc.mount, id), map[string]any{"service": "own", "error": "unavailable"}); err != nil {
			return err
		}
		took[0] = time.Since(t0)
		t1 := time.Now()
		if _, err := sc.client.Logical().Read(fmt.Sprintf("%s/process/p%d/resolve/fastsvc", sc.mount, id)); err != nil {
			return err
		}
		took[1] = time.Since(t1)
		mu.Lock()
		out = append(out, took[0], took[1])
		mu.Unlock()
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// While two token endpoints hang and 32 processes keep asking for what depends on them, the 536
// requests of the 268 other processes are all answered, each within 2 s, before the endpoints
// answer at all; each hung endpoint is asked at most twice; and the dependants' timeouts change
// no process.
func TestIsolationHungTokenEndpointCostsOnlyItsDependants(t *testing.T) {
	sc := newIsolationScene(t)
	ctx, stop := context.WithCancel(context.Background())
	waitDependents := sc.startDependents(ctx)
	defer func() { stop(); sc.slow.Release(); sc.dead.Release(); waitDependents() }()
	waitFor(t, 30*time.Second, func() bool { return sc.slow.Requests() >= 2 && sc.dead.Requests() >= 1 })

	lat := sc.unrelated(t, 1)
	if len(lat) != 2*(isolationProcesses-isolationDependent) {
		t.Fatalf("%d unrelated requests answered", len(lat))
	}
	if worst := lat[len(lat)-1]; worst > 2*time.Second {
		t.Errorf("the slowest of %d unrelated requests took %s", len(lat), worst)
	}
	t.Logf("%d unrelated requests while two endpoints hang: p50 %s, p99 %s, max %s", len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	if n, m := sc.slow.Requests(), sc.dead.Requests(); n > 2 || m > 2 {
		t.Errorf("the hung endpoints were asked %d and %d times, want at most 2 each", n, m)
	}
	for i := range isolationDependent {
		p := read(t, fmt.Sprintf("%s/process/p%d", sc.mount, i))
		if p.Data["health"] != "running" {
			t.Errorf("p%d: a dependant's timeout changed it: %v", i, p.Data)
		}
	}
	// The dependants' answer is a retryable one that names the credential.
	_, err := sc.client.Logical().Read(sc.mount + "/process/p16/resolve/deadsvc")
	if re, ok := err.(*api.ResponseError); !ok || re.StatusCode != http.StatusServiceUnavailable || !containsAll(err.Error(), `"dead"`, "in flight") {
		t.Errorf("a resolve that needs the hung credential: %v", err)
	}
}

// BenchmarkIsolation measures, in one run, the p99 latency of the unrelated processes' reports and
// resolves alone, then with two token endpoints hanging and 32 processes waiting on them.
// Target: p99 with the hang at most 1.2 × p99 without.
func BenchmarkIsolation(b *testing.B) {
	sc := newIsolationScene(b)
	const rounds = 4
	sc.unrelated(b, 1) // warm up
	alone := sc.unrelated(b, rounds)
	ctx, stop := context.WithCancel(context.Background())
	waitDependents := sc.startDependents(ctx)
	waitFor(b, 30*time.Second, func() bool { return sc.slow.Requests() >= 2 && sc.dead.Requests() >= 1 })
	hung := sc.unrelated(b, rounds)
	stop()
	sc.slow.Release()
	sc.dead.Release()
	waitDependents()
	p99 := func(l []time.Duration) time.Duration { return l[len(l)*99/100] }
	ratio := float64(p99(hung)) / float64(p99(alone))
	b.ReportMetric(float64(p99(alone).Microseconds()), "p99-alone-µs")
	b.ReportMetric(float64(p99(hung).Microseconds()), "p99-hung-µs")
	b.ReportMetric(ratio, "p99-ratio")
	b.Logf("%d unrelated requests each way: p99 alone %s, with two hung endpoints and 32 waiting processes %s: %.2f× (target ≤ 1.2×); p50 %s and %s",
		len(alone), p99(alone), p99(hung), ratio, alone[len(alone)/2], hung[len(hung)/2])
	if ratio > 1.2 {
		b.Errorf("p99 with the hang is %.2f× p99 without (target ≤ 1.2×)", ratio)
	}
}

func containsAll(s string, want ...string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
