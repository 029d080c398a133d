package tests

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

var (
	benchCredentials = flag.Int("bench.credentials", 2000, "oauth2 technical credentials in BenchmarkTokenRefresh")
	benchLifetime    = flag.Duration("bench.lifetime", 60*time.Second, "token lifetime in BenchmarkTokenRefresh")
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
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				i := rand.IntN(n)
				s, err := env.client.Logical().Read(fmt.Sprintf("%s/technical/c%d/creds", mount, i))
				at := time.Now()
				mu.Lock()
				if err != nil || s == nil {
					readErrors++
				} else {
					tok, _ := s.Data["access_token"].(string)
					reads = append(reads, read{at: at, cred: i, token: tok})
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
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
	expected := elapsed.Seconds() / (benchLifetime.Seconds() * 0.67)
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
