package tests

import (
	"flag"
	"fmt"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

var (
	benchGrants        = flag.Int("bench.grants", 10_000, "persistent processes with a grant each in BenchmarkGrantRefresh")
	benchGrantDuration = flag.Duration("bench.grants-duration", 5*time.Minute, "how long BenchmarkGrantRefresh watches")
)

// grantRefreshFraction is config's default refresh_fraction, which the benchmark keeps.
const grantRefreshFraction = 0.67

// benchGrant is one process's grant as the benchmark handed it over.
type benchGrant struct {
	id      string
	created time.Time
	refresh string // its first refresh token: the token server's log of the grant is found by it
}

// grantRead is one resolve of a process's service: when it was asked, what it served.
type grantRead struct {
	asked     time.Time
	grant     int
	token     string
	expiresAt time.Time // what the plugin stated
}

// grantReads is what the readers saw.
type grantReads struct {
	mu          sync.Mutex
	reads       []grantRead
	unavailable int // 503: the access token expired and its refresh had not landed
	errors      int // any other failure
}

// BenchmarkGrantRefresh keeps many persistent processes, each with its own user's grant
// (oauth2_user) of short-lived access tokens from the loopback provider (rotation and reuse
// detection on), for a while on the dev server, while readers resolve random processes' service.
// Judged by the provider's own record: expired access tokens served (target 0), refresh tokens
// sent twice (target 0), refreshes per grant against those due (each within ±1), refreshes
// refused, and plugin RSS growth (target at most 50 MiB). Run it with
// scripts/bench.sh -bench GrantRefresh (-bench.grants=500 -bench.grants-duration=1m for a quick
// look); it runs once whatever b.N is.
func BenchmarkGrantRefresh(b *testing.B) {
	mount := newMount(b)
	srv := startTokenServer(b)
	mustWriteB(b, mount+"/config", map[string]any{"keep_credentials": "persistent", "refresh_fraction": grantRefreshFraction})
	mustWriteB(b, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	srv.SetClient("app", "bench-grant-client-secret")
	mustWriteB(b, mount+"/technical/idp", map[string]any{"type": "oauth2", "token_url": srv.TokenURL(),
		"client_id": "app", "client_secret": "bench-grant-client-secret"})
	srv.SetLifetime(*benchLifetime)
	rssBefore := pluginRSS(b)

	started := time.Now()
	grants := createGrants(b, mount, srv, *benchGrants)
	rssCreated := pluginRSS(b)
	b.Logf("created %d processes with a grant each in %s; plugin RSS %.1f MiB before, %.1f MiB after",
		len(grants), time.Since(started).Round(time.Millisecond), rssBefore, rssCreated)

	b.ResetTimer()
	reads := readGrants(mount, len(grants), *benchGrantDuration)
	b.StopTimer()
	end := time.Now()
	rssEnd := pluginRSS(b)
	j := judgeGrants(srv, grants, reads, end)
	j.rssBefore, j.rssCreated, j.rssEnd = rssBefore, rssCreated, rssEnd
	j.health = mountHealth(b, mount)
	j.report(b, len(grants), end.Sub(started))
}

func mustWriteB(b testing.TB, path string, data map[string]any) {
	b.Helper()
	if _, err := env.client.Logical().Write(path, data); err != nil {
		b.Fatalf("%s: %v", path, err)
	}
}

// createGrants creates n persistent processes, each with a grant of its own the provider issued
// just before: its access token's stated expiry is the provider's, cut to the second.
func createGrants(b *testing.B, mount string, srv *tokenserver.Server, n int) []benchGrant {
	b.Helper()
	grants := make([]benchGrant, n)
	forEach(b, n, func(i int) error {
		access, refresh := srv.IssueGrant("app")
		exp, _ := srv.Expiry(access)
		g := benchGrant{id: fmt.Sprintf("g%d", i), created: time.Now(), refresh: refresh}
		_, err := env.client.Logical().Write(mount+"/process/"+g.id, map[string]any{"definition": "orders", "owner": "user" + g.id,
			"current": map[string]any{"type": "oauth2_user", "access_token": access, "refresh_token": refresh,
				"expires_at": exp.UTC().Truncate(time.Second).Format(time.RFC3339), "scope": "crm.read", "client": "idp"}})
		grants[i] = g
		return err
	})
	return grants
}

// readGrants resolves random processes' service from 8 readers for d, each at a reader's pace.
func readGrants(mount string, n int, d time.Duration) *grantReads {
	out := &grantReads{}
	readAtPace(n, time.Now().Add(d), func(i int) {
		asked := time.Now()
		s, err := env.client.Logical().Read(fmt.Sprintf("%s/process/g%d/resolve/crm", mount, i))
		out.note(asked, i, s, err)
	})
	return out
}

func (r *grantReads) note(asked time.Time, i int, s *api.Secret, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case statusOf(err) == http.StatusServiceUnavailable:
		r.unavailable++
	case err != nil || s == nil:
		r.errors++
	default:
		tok, _ := s.Data["access_token"].(string)
		stated, _ := s.Data["expires_at"].(string)
		exp, _ := time.Parse(time.RFC3339, stated)
		r.reads = append(r.reads, grantRead{asked: asked, grant: i, token: tok, expiresAt: exp})
	}
}

// grantJudgement is the benchmark's figures.
type grantJudgement struct {
	reads, unavailable, readErrors    int
	expiredServed, unknown, overstate int
	reused, refused, lies, revoked    int
	refreshes, due                    float64 // per grant, on average
	offSchedule, minRefreshes, maxRef int     // grants whose refreshes are not due ±1
	rssBefore, rssCreated, rssEnd     float64
	health                            map[string]any
}

// judgeGrants holds every read and every grant to the provider's record, up to end: a served
// access token whose real expiry had passed when the read was asked is an expired one served.
func judgeGrants(srv *tokenserver.Server, grants []benchGrant, r *grantReads, end time.Time) grantJudgement {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := grantJudgement{reads: len(r.reads), unavailable: r.unavailable, readErrors: r.errors, minRefreshes: math.MaxInt}
	for _, rd := range r.reads {
		exp, ok := srv.Expiry(rd.token)
		switch {
		case !ok:
			j.unknown++
		case !rd.asked.Before(exp):
			j.expiredServed++
		}
		if ok && rd.expiresAt.After(exp) {
			j.overstate++
		}
	}
	period := benchLifetime.Seconds() * grantRefreshFraction
	var refreshes, due int
	for _, g := range grants {
		log, _ := srv.Grant(g.refresh)
		n := 0
		for _, rf := range log.Refreshes {
			if !rf.At.After(end) {
				n++
			}
		}
		d := int(end.Sub(g.created).Seconds() / period)
		refreshes, due = refreshes+n, due+d
		if n < d-1 || n > d+1 {
			j.offSchedule++
		}
		j.minRefreshes, j.maxRef = min(j.minRefreshes, n), max(j.maxRef, n)
		j.reused += len(log.Reuses)
		j.refused += log.Refused
		j.lies += log.Lies
		if log.Revoked {
			j.revoked++
		}
	}
	j.refreshes, j.due = float64(refreshes)/float64(len(grants)), float64(due)/float64(len(grants))
	return j
}

// mountHealth is the mount's status: processes by health and open tasks.
func mountHealth(b testing.TB, mount string) map[string]any {
	b.Helper()
	s, err := env.client.Logical().Read(mount + "/status")
	if err != nil || s == nil {
		b.Fatalf("status: %v", err)
	}
	return map[string]any{"by_health": s.Data["processes_by_health"], "open_tasks": s.Data["open_tasks"]}
}

func (j grantJudgement) report(b *testing.B, n int, watched time.Duration) {
	growth := j.rssEnd - j.rssBefore
	rows := []struct {
		name, value, target string
	}{
		{"grants", fmt.Sprintf("%d, %s access tokens", n, *benchLifetime), ""},
		{"watched (creation included)", watched.Round(time.Second).String(), ""},
		{"resolves answered / 503 / other errors", fmt.Sprintf("%d / %d / %d", j.reads, j.unavailable, j.readErrors), "- / 0 / 0"},
		{"expired access tokens served", fmt.Sprint(j.expiredServed), "0"},
		{"tokens served the provider never issued", fmt.Sprint(j.unknown), "0"},
		{"served expires_at later than the real expiry", fmt.Sprint(j.overstate), "0"},
		{"refresh tokens reused", fmt.Sprint(j.reused), "0"},
		{"refreshes per grant / due", fmt.Sprintf("%.2f / %.2f (min %d, max %d)", j.refreshes, j.due, j.minRefreshes, j.maxRef), "due ±1"},
		{"provider load (refreshes/s over the run)", fmt.Sprintf("%.1f", j.refreshes*float64(n)/watched.Seconds()), ""},
		{"grants off schedule (not due ±1)", fmt.Sprint(j.offSchedule), "0"},
		{"refreshes refused (invalid_grant) / grants revoked", fmt.Sprintf("%d / %d", j.refused, j.revoked), "0 / 0"},
		{"plugin RSS before / created / end (MiB)", fmt.Sprintf("%.1f / %.1f / %.1f", j.rssBefore, j.rssCreated, j.rssEnd), ""},
		{"plugin RSS growth (MiB)", fmt.Sprintf("%.1f (during the watch %.1f)", growth, j.rssEnd-j.rssCreated), "≤ 50"},
		{"processes by health, open tasks", fmt.Sprintf("%v, %v", j.health["by_health"], j.health["open_tasks"]), "all running, 0"},
	}
	table := "\n| figure | value | target |\n| --- | --- | --- |\n"
	for _, r := range rows {
		table += fmt.Sprintf("| %s | %s | %s |\n", r.name, r.value, r.target)
	}
	b.Log(table)
	for name, v := range map[string]float64{"expired-served": float64(j.expiredServed), "refresh-tokens-reused": float64(j.reused),
		"refreshes/grant": j.refreshes, "due-refreshes/grant": j.due, "grants-off-schedule": float64(j.offSchedule),
		"refresh-refused": float64(j.refused), "rss-growth-MiB": growth, "resolves": float64(j.reads), "resolve-503": float64(j.unavailable),
		"resolve-errors": float64(j.readErrors)} {
		b.ReportMetric(v, name)
	}
	if j.expiredServed > 0 || j.unknown > 0 || j.overstate > 0 || j.reused > 0 || j.offSchedule > 0 || j.refused > 0 || growth > 50 || j.readErrors > 0 {
		b.Errorf("targets missed: %d expired served, %d unknown tokens, %d overstated expiries, %d reused, %d off schedule, %d refused, %.1f MiB RSS growth, %d read errors",
			j.expiredServed, j.unknown, j.overstate, j.reused, j.offSchedule, j.refused, growth, j.readErrors)
	}
}
