package tests

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// Attack tests of the refresh of users' grants against a real Vault, the provider the loopback
// token server with its faults: slow, lying, rotating with reuse detection. The provider's own
// record (every refresh it served, every reuse it saw, every access token's real expiry) is the
// judge.

// grantFaultMount is a mount whose processes resolve crm through their current grant; the grants'
// client is "idp", a client of the loopback provider it answers.
func grantFaultMount(t *testing.T) (string, *tokenserver.Server) {
	t.Helper()
	mount := newMount(t)
	srv := startTokenServer(t)
	createOAuth2(t, mount, "idp", srv, "app") // its own token lives the server's hour
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	return mount, srv
}

// startGrant creates process id with a grant the provider has just issued (its access token lives
// the server's lifetime; the stated expiry is the provider's, cut to the second), and answers the
// create's answer and the grant's first refresh token.
func startGrant(t *testing.T, mount string, srv *tokenserver.Server, id string) (lease, refresh string) {
	t.Helper()
	return startGrantOf(t, mount, srv, "idp", id)
}

// startGrantOf is startGrant for a grant of client, the name of an oauth2 technical credential of
// srv's client "app".
func startGrantOf(t *testing.T, mount string, srv *tokenserver.Server, client, id string) (lease, refresh string) {
	t.Helper()
	access, refresh := srv.IssueGrant("app")
	rememberSecrets(access, refresh)
	t.Cleanup(func() { // every token the grant was refreshed to, for the scan of the server's log
		log, _ := srv.Grant(refresh)
		for _, r := range log.Refreshes {
			rememberSecrets(r.AccessToken)
			if r.Rotated != "" {
				rememberSecrets(r.Rotated)
			}
		}
	})
	exp, _ := srv.Expiry(access)
	s := write(t, mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "user-" + id, "current": map[string]any{
		"type": "oauth2_user", "access_token": access, "refresh_token": refresh, "client": client,
		"expires_at": exp.UTC().Truncate(time.Second).Format(time.RFC3339)}})
	return s.LeaseID, refresh
}

// grantLog is the provider's log of a grant.
func grantLog(t *testing.T, srv *tokenserver.Server, refresh string) tokenserver.GrantLog {
	t.Helper()
	log, ok := srv.Grant(refresh)
	if !ok {
		t.Fatalf("the provider knows no grant of that refresh token")
	}
	return log
}

// resolved is one resolve of a process's crm: what it served, or its HTTP status.
type resolved struct {
	asked  time.Time
	token  string
	status int
	err    string
}

func resolveGrant(mount, id string) resolved {
	r := resolved{asked: time.Now()}
	s, err := env.client.Logical().Read(mount + "/process/" + id + "/resolve/crm")
	switch {
	case err != nil:
		r.status, r.err = statusOf(err), err.Error()
	case s == nil:
		r.status = http.StatusNotFound
	default:
		r.status = http.StatusOK
		r.token, _ = s.Data["access_token"].(string)
	}
	return r
}

// judgeServed fails the test for a resolve that served a token the provider never issued or whose
// real expiry had passed when it was asked, or that failed otherwise than with a 503 naming no
// token.
func judgeServed(t *testing.T, srv *tokenserver.Server, what string, reads []resolved) {
	t.Helper()
	for _, r := range reads {
		if r.status != http.StatusOK {
			if r.status != http.StatusServiceUnavailable || strings.Contains(r.err, "lie-") || strings.Contains(r.err, "tok-") {
				t.Errorf("%s: a resolve failed with %d: %s", what, r.status, r.err)
			}
			continue
		}
		exp, ok := srv.Expiry(r.token)
		switch {
		case !ok:
			t.Errorf("%s: a resolve served a token the provider never issued (%d characters)", what, len(r.token))
		case !r.asked.Before(exp):
			t.Errorf("%s: a resolve asked %s after its token expired served it", what, r.asked.Sub(exp))
		}
	}
}

// processHealth is a process's health.
func processHealth(t *testing.T, mount, id string) string {
	t.Helper()
	h, _ := read(t, mount+"/process/"+id).Data["health"].(string)
	return h
}

// TestGrantRefreshSlowProvider: while a grant's refresh hangs at a slow provider (20 s), nothing
// else waits for it: its own process resolves (the still-valid token, or 503 once it has expired,
// the process running), its record is written (a runtime service, a lease renewal: both take the
// process's lock), another grant of the same provider is refreshed again and again, other
// processes are created and resolved, config is written. The slow answer then lands, after those
// writes, and is served.
func TestGrantRefreshSlowProvider(t *testing.T) {
	mount, srv := grantFaultMount(t)
	srv.SetLifetime(6 * time.Second) // refreshed at about 4 s
	slowLease, slowRT := startGrant(t, mount, srv, "slow")
	_, fastRT := startGrant(t, mount, srv, "fast")
	srv.SetGrantFault(slowRT, tokenserver.Fault{Delay: 20 * time.Second})

	waitFor(t, 30*time.Second, func() bool { return grantLog(t, srv, slowRT).InFlight == 1 })
	var reads []resolved
	reads = append(reads, resolveGrant(mount, "slow"), resolveGrant(mount, "fast"))
	write(t, mount+"/process/slow/credentials", map[string]any{"services": []map[string]any{
		{"name": "docs", "credentials": []map[string]any{{"type": "password", "username": "u", "password": "slow-test-docs-pw"}}},
	}})
	rememberSecrets("slow-test-docs-pw")
	if _, err := env.client.Sys().Renew(slowLease, 3600); err != nil {
		t.Fatalf("renewing the slow process's lease: %v", err)
	}
	write(t, mount+"/config", map[string]any{"refresh_fraction": 0.7})
	startGrant(t, mount, srv, "third")
	reads = append(reads, resolveGrant(mount, "third"))
	fastBefore := len(grantLog(t, srv, fastRT).Refreshes)
	waitFor(t, 30*time.Second, func() bool { return len(grantLog(t, srv, fastRT).Refreshes) >= fastBefore+2 })
	if grantLog(t, srv, slowRT).InFlight != 1 {
		t.Fatal("the slow refresh was answered before the other requests were: this run shows nothing")
	}
	reads = append(reads, resolveGrant(mount, "fast"))
	// The slow grant's access token has expired meanwhile: 503, the process running.
	waitFor(t, 30*time.Second, func() bool {
		r := resolveGrant(mount, "slow")
		reads = append(reads, r)
		return r.status == http.StatusServiceUnavailable
	})
	if h := processHealth(t, mount, "slow"); h != "running" {
		t.Errorf("the slow process is %s while its refresh hangs, want running", h)
	}

	waitFor(t, 60*time.Second, func() bool { return len(grantLog(t, srv, slowRT).Refreshes) == 1 })
	landed := grantLog(t, srv, slowRT).Refreshes[0].AccessToken
	waitFor(t, 30*time.Second, func() bool {
		r := resolveGrant(mount, "slow")
		reads = append(reads, r)
		return r.token == landed || len(grantLog(t, srv, slowRT).Refreshes) > 1
	})
	judgeServed(t, srv, "slow provider", reads)
	if n := srv.Reused(); n != 0 {
		t.Errorf("%d refresh tokens were sent twice", n)
	}
	if s := read(t, mount+"/process/slow/credentials").Data["services"]; !strings.Contains(fmt.Sprint(s), "docs") {
		t.Errorf("the runtime service written during the refresh is gone: %v", s)
	}
}

// TestGrantRefreshLyingProvider: each grant's provider answers its refresh with one of the lies
// (an expires_in that is negative, zero, too short or not a number, an expiry in the past and no
// expires_in, a body that is not JSON, truncated or blank, no access token, an access token with a
// line break, a token_type of two words, a refresh token with a control character). The plugin
// keeps none of it: it serves the still-valid access token, then answers 503 once that has expired
// (the process running), never a lie's token; once the provider heals, the grant is refreshed with
// its own refresh token, never a lie's.
func TestGrantRefreshLyingProvider(t *testing.T) {
	mount, srv := grantFaultMount(t)
	srv.SetLifetime(8 * time.Second)
	names := make([]string, 0, len(tokenserver.Lies))
	for name := range tokenserver.Lies {
		names = append(names, name)
	}
	sort.Strings(names)
	rts := map[string]string{}
	for i, name := range names {
		id := fmt.Sprintf("lie%d", i)
		_, rts[id] = startGrant(t, mount, srv, id)
		srv.SetGrantFault(rts[id], tokenserver.Fault{Lie: tokenserver.Lies[name]})
	}
	lied := func(id string) bool { return grantLog(t, srv, rts[id]).Lies > 0 }
	var reads []resolved
	// Until every grant was lied to and its first access token has expired (8 s), and a little more.
	ended := poll(60*time.Second, 250*time.Millisecond, func() bool {
		done := true
		for id := range rts {
			r := resolveGrant(mount, id)
			reads = append(reads, r)
			done = done && lied(id) && r.status == http.StatusServiceUnavailable
		}
		return done
	})
	if !ended {
		judgeServed(t, srv, "lying provider", reads)
		t.Fatal("within 60 s, not every grant was lied to and then answered 503 once its access token expired")
	}
	for i, name := range names {
		id := fmt.Sprintf("lie%d", i)
		if h := processHealth(t, mount, id); h != "running" {
			t.Errorf("%s: the process is %s after the lie, want running", name, h)
		}
		srv.SetGrantFault(rts[id], tokenserver.Fault{})
	}
	for i, name := range names {
		id, rt := fmt.Sprintf("lie%d", i), rts[fmt.Sprintf("lie%d", i)]
		waitFor(t, 90*time.Second, func() bool { return len(grantLog(t, srv, rt).Refreshes) > 0 })
		first := grantLog(t, srv, rt).Refreshes[0]
		if first.Sent != rt {
			t.Errorf("%s: after the lie, the refresh sent a refresh token the provider did not issue for it", name)
		}
		waitFor(t, 30*time.Second, func() bool {
			r := resolveGrant(mount, id)
			reads = append(reads, r)
			return r.token == first.AccessToken || len(grantLog(t, srv, rt).Refreshes) > 1
		})
	}
	judgeServed(t, srv, "lying provider", reads)
	for _, is := range srv.Issues("app") {
		if strings.HasPrefix(is.RefreshToken, "lie-") {
			t.Errorf("the plugin sent a lie's refresh token")
		}
	}
	if n := srv.Reused(); n != 0 {
		t.Errorf("%d refresh tokens were sent twice", n)
	}
}

// TestGrantRefreshReuseDetectingProvider: a strict provider (every refresh rotates; a spent
// refresh token sent again revokes the grant) sees each refresh token once from the plugin, for
// grants refreshed every 3 s or so while their processes are resolved, written (runtime services)
// and renewed all along, and across a plugin reload: each refresh sends the refresh token the one
// before it answered.
func TestGrantRefreshReuseDetectingProvider(t *testing.T) {
	mount, srv := grantFaultMount(t)
	srv.SetLifetime(5 * time.Second)
	const n = 8
	rts, leases := make([]string, n), make([]string, n)
	for i := range n {
		leases[i], rts[i] = startGrant(t, mount, srv, fmt.Sprintf("r%d", i))
	}
	stop := grantLoad(mount, leases)
	rememberSecrets("reuse-test-pw")
	counts := func() []int {
		out := make([]int, n)
		for i, rt := range rts {
			out[i] = len(grantLog(t, srv, rt).Refreshes)
		}
		return out
	}
	refreshed := func(base []int, more int) func() bool {
		return func() bool {
			for i, c := range counts() {
				if c < base[i]+more {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 60*time.Second, refreshed(make([]int, n), 3))
	// The reload stops the plugin gracefully, which cuts a refresh in the air short; one whose
	// answer is lost so would be sent again, and the provider would rightly see a reuse. The reload
	// comes when every grant has just been refreshed to a 30-second token: the next refresh is
	// about 20 s away.
	srv.SetLifetime(30 * time.Second)
	waitFor(t, 30*time.Second, func() bool {
		for _, rt := range rts {
			log := grantLog(t, srv, rt)
			if last := log.Refreshes[len(log.Refreshes)-1]; log.InFlight > 0 || last.ExpiresAt.Sub(last.At) != 30*time.Second {
				return false
			}
		}
		return true
	})
	before := counts()
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitFor(t, 120*time.Second, refreshed(before, 2))
	judgeServed(t, srv, "strict provider", stop())
	for i, rt := range rts {
		judgeChain(t, srv, fmt.Sprintf("r%d", i), rt)
		if h := processHealth(t, mount, fmt.Sprintf("r%d", i)); h != "running" {
			t.Errorf("r%d is %s, want running", i, h)
		}
	}
}

// grantLoad resolves the processes r0… of leases from 3 readers, one of which also writes each
// one's runtime layer and renews its lease (both under the process's lock), until stop, which
// answers the resolves.
func grantLoad(mount string, leases []string) (stop func() []resolved) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reads []resolved
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("r%d", i%len(leases))
				r := resolveGrant(mount, id)
				mu.Lock()
				reads = append(reads, r)
				mu.Unlock()
				if w == 0 {
					_, _ = env.client.Logical().Write(mount+"/process/"+id+"/credentials", map[string]any{"services": fmt.Sprintf(
						`[{"name": "docs", "credentials": [{"type": "password", "username": "u%d", "password": "reuse-test-pw"}]}]`, i)})
					_, _ = env.client.Sys().Renew(leases[i%len(leases)], 3600)
				}
			}
		}()
	}
	return func() []resolved {
		close(done)
		wg.Wait()
		return reads
	}
}

// judgeChain fails the test unless the provider saw the grant of rt refreshed with each refresh
// token once, in the order it handed them out, with no reuse, refusal or revocation.
func judgeChain(t *testing.T, srv *tokenserver.Server, what, rt string) {
	t.Helper()
	log := grantLog(t, srv, rt)
	if len(log.Reuses) > 0 || log.Revoked || log.Refused > 0 {
		t.Errorf("%s: %d reuses, %d refused, revoked %v", what, len(log.Reuses), log.Refused, log.Revoked)
	}
	sent := rt
	for k, r := range log.Refreshes {
		if r.Sent != sent {
			t.Errorf("%s: refresh %d did not send the refresh token the one before it answered", what, k)
		}
		sent = r.Rotated
	}
}
