package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/hydra"
)

// Users' grants refreshed exactly once across a Raft cluster whose leader is killed: a real Ory
// Hydra (10-second access tokens, refresh-token rotation with reuse detection) behind a recorder
// that follows each grant's refresh tokens by their hashes.

const (
	haGrants           = 200
	haGrantConcurrency = 8 // grant_refresh_concurrency, the default, written out: the bound below uses it
	haKills            = 2
	// haGracePeriod covers a fail-over and the new active node's first refreshes, with room.
	haGracePeriod = time.Minute
	// haWriteConcurrency bounds the process writes, and the checks, run at once.
	haWriteConcurrency = 8
)

// haGrantRun is what one run saw, for its log line and its verdict.
type haGrantRun struct {
	inFlightAtKills []int
	failovers       []time.Duration
	broken          []int // grant numbers of processes found broken
}

// TestRaftHAGrantRefreshExactlyOnce: 200 persistent processes, each with its own user's
// oauth2_user grant, are refreshed by the active node of a 3-node Raft cluster; its leader is
// SIGKILLed twice while refreshes are in the air (and restarted, so the cluster keeps its quorum),
// and each time the new active node picks every grant up. In the end every grant is fresh (resolve
// on the active node serves an access token of its user's that Hydra calls active) or its process
// is broken with an open task. With Hydra's rotation grace period on, a refresh whose answer died
// with its node is simply asked again: none is broken. Without it, Hydra's reuse detection judges
// the second use of a spent refresh token and ends the grant: only those whose refresh was in the
// air at a kill may be broken, grant_refresh_concurrency per kill at most. No spent refresh token
// is ever sent again but for those.
func TestRaftHAGrantRefreshExactlyOnce(t *testing.T) {
	t.Run("grace period on", func(t *testing.T) { runHAGrants(t, haGracePeriod) })
	t.Run("grace period off", func(t *testing.T) { runHAGrants(t, 0) })
}

func runHAGrants(t *testing.T, grace time.Duration) {
	began := time.Now()
	h := startHydra(t, fmt.Sprintf("hydra-ha-grace-%s", grace), grace)
	rec := h.NewRecorder()
	t.Cleanup(rec.Close)
	c := newCluster(t, 3)
	active := c.active(nil)
	c.enablePlugin(active)
	client := setupGrantMount(t, active.client, h, rec)
	created := time.Now()
	createGrantProcesses(t, active.client, h, client, rec)
	t.Logf("%d grants authorized and their processes created in %s", haGrants, time.Since(created).Round(100*time.Millisecond))
	waitGrantsRefreshed(t, active.client, rec, created) // the first active node keeps them fresh

	var run haGrantRun
	for range haKills {
		active = killActive(t, c, active, rec, &run)
	}
	run.broken = checkGrants(t, active.client, h, rec)
	tot := rec.Totals()
	t.Logf("grace %s: %d grants, %d broken; %d refresh requests, %d refreshed, %d spent refresh tokens sent again, %d refused (invalid_grant), %d other errors, %d asked again for Hydra's busy store; in the air at the kills %v, fail-overs %v; run %s",
		grace, haGrants, len(run.broken), tot.Requests, tot.Refreshed, tot.Resent, tot.Refused, tot.Failed, tot.Busy,
		run.inFlightAtKills, run.failovers, time.Since(began).Round(time.Second))
	judgeHAGrants(t, grace, run, rec)
}

// judgeHAGrants holds the run to the rules: what may be broken, and what may be sent twice.
func judgeHAGrants(t *testing.T, grace time.Duration, run haGrantRun, rec *hydra.Recorder) {
	t.Helper()
	bound := haGrantConcurrency * haKills
	tot := rec.Totals()
	if tot.Unknown > 0 {
		t.Errorf("%d refreshes carried a refresh token of no grant's chain", tot.Unknown)
	}
	// A spent refresh token goes out again only for a refresh whose answer was lost with its node.
	if tot.Resent > bound {
		t.Errorf("%d spent refresh tokens were sent again; at most %d refreshes (%d per kill) were in the air at the kills", tot.Resent, bound, haGrantConcurrency)
	}
	if grace > 0 && len(run.broken) > 0 {
		t.Errorf("with a %s grace period, %d grants broke (%v): a refresh asked again within it must succeed", grace, len(run.broken), run.broken)
	}
	if len(run.broken) > bound {
		t.Errorf("%d grants broke; only those in the air at the kills may, %d at most", len(run.broken), bound)
	}
	for _, i := range run.broken {
		// Hydra is the judge: it refused the grant, and only for a spent refresh token sent again.
		if g := rec.Grant(i); g.Refused == 0 || g.Resent == 0 {
			t.Errorf("grant %d broke, though Hydra refused it %d times for %d spent refresh tokens sent again", i, g.Refused, g.Resent)
		}
	}
}

// setupGrantMount registers the grants' client at Hydra and as technical credential idp (its token
// URL the recorder's), and answers it.
func setupGrantMount(t *testing.T, cl *api.Client, h *hydra.Server, rec *hydra.Recorder) hydra.Client {
	t.Helper()
	client, err := h.CreateClient(context.Background(), hydra.AuthBasic)
	if err != nil {
		t.Fatal(err)
	}
	rememberSecrets(client.Secret)
	mustWriteOn(t, cl, "pecreds/config", map[string]any{"grant_refresh_concurrency": haGrantConcurrency})
	// The client has the code and refresh grants only: its own token is refused and the technical
	// credential is kept with a warning; grants authenticate through it all the same.
	mustWriteOn(t, cl, "pecreds/technical/idp", map[string]any{"type": "oauth2", "token_url": rec.TokenURL(),
		"client_id": client.ID, "client_secret": client.Secret})
	mustWriteOn(t, cl, "pecreds/registry/inbox", map[string]any{"services": []map[string]any{
		{"name": "mail", "credentials": []map[string]any{{"type": "current"}}},
	}})
	return client
}

func haProcess(i int) string { return fmt.Sprintf("g%03d", i) }
func haUser(i int) string    { return fmt.Sprintf("user%03d", i) }

// createGrantProcesses authorizes every user at Hydra, and then creates their processes, a few
// at once. Hydra's in-memory store refuses a write that meets another — two authorization flows
// at once met at nearly every try — so the flows run one after the other, before any grant is
// refreshed. Grants authorized early have expired by the time their process is created: the plugin
// refreshes them at once. Each expiry is taken from Hydra's answer, not from the process's write,
// which comes later: the plugin must never think an access token lives longer than it does.
func createGrantProcesses(t *testing.T, cl *api.Client, h *hydra.Server, client hydra.Client, rec *hydra.Recorder) {
	t.Helper()
	toks := make([]hydra.Token, haGrants)
	for i := range toks {
		toks[i] = mustAuthorize(t, h, client, haUser(i))
		rememberSecrets(toks[i].AccessToken, toks[i].RefreshToken)
		rec.Track(i, toks[i].RefreshToken)
	}
	var g errgroup.Group
	g.SetLimit(haWriteConcurrency)
	for i, tok := range toks {
		g.Go(func() error {
			_, err := cl.Logical().Write("pecreds/process/"+haProcess(i), map[string]any{
				"definition": "inbox", "owner": haUser(i), "current": map[string]any{
					"type": "oauth2_user", "access_token": tok.AccessToken, "refresh_token": tok.RefreshToken,
					"expires_at": tok.Expiry.UTC().Truncate(time.Second).Format(time.RFC3339), "scope": tok.Scope, "client": "idp"}})
			if err != nil {
				return fmt.Errorf("creating process %s: %w", haProcess(i), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// waitGrantsRefreshed waits until every grant has been refreshed after since, or has ended (Hydra
// refused it; checkGrants looks at what became of its process): the active node has every grant
// in hand.
func waitGrantsRefreshed(t *testing.T, cl *api.Client, rec *hydra.Recorder, since time.Time) {
	t.Helper()
	var waiting []int
	if poll(90*time.Second, 200*time.Millisecond, func() bool {
		waiting = waiting[:0]
		for i := range haGrants {
			g := rec.Grant(i)
			if !g.LastRefreshed.After(since) && g.Refused == 0 {
				waiting = append(waiting, i)
			}
		}
		return len(waiting) == 0
	}) {
		return
	}
	var first []string
	for _, i := range waiting[:min(len(waiting), 5)] {
		p, err := cl.Logical().Read("pecreds/process/" + haProcess(i))
		var state any = err
		if p != nil {
			state = []any{p.Data["health"], p.Data["current_credentials"], p.Data["health_reason"]}
		}
		first = append(first, fmt.Sprintf("grant %d: %+v, process %v", i, rec.Grant(i), state))
	}
	t.Fatalf("%d grants were not refreshed since %s within 90s; recorder totals %+v; the first:\n%s",
		len(waiting), since.Format(time.TimeOnly), rec.Totals(), strings.Join(first, "\n"))
}

// killActive SIGKILLs the active node while refreshes are in the air, waits for another to take
// over, restarts the killed one as a voter (so the next kill leaves a quorum), and waits until the
// new active node has refreshed every grant (or had it refused). It answers the new active node.
func killActive(t *testing.T, c *cluster, active *node, rec *hydra.Recorder, run *haGrantRun) *node {
	t.Helper()
	var inFlight int
	waitFor(t, 30*time.Second, func() bool { inFlight = rec.InFlight(); return inFlight > 0 })
	killedAt := time.Now()
	active.signal(syscall.SIGKILL)
	next := c.active(active)
	tookOver := time.Now()
	run.inFlightAtKills = append(run.inFlightAtKills, inFlight)
	run.failovers = append(run.failovers, tookOver.Sub(killedAt).Round(100*time.Millisecond))
	t.Logf("%s killed with %d refreshes in the air; %s active after %s", active.id, inFlight, next.id, tookOver.Sub(killedAt).Round(100*time.Millisecond))

	c.start(active)
	c.waitAPI(active)
	c.unseal(active)
	c.waitFor(active, "a standby", func(h *api.HealthResponse) bool { return h.Standby && !h.Sealed })
	c.waitVoters(next, 3)
	waitGrantsRefreshed(t, next.client, rec, tookOver)
	return next
}

// checkGrants looks at every process on the active node, a few at once, and answers the grants
// whose processes are broken; a grant neither fresh nor broken with an open task fails the test.
func checkGrants(t *testing.T, cl *api.Client, h *hydra.Server, rec *hydra.Recorder) []int {
	t.Helper()
	brokenCh := make(chan int, haGrants)
	var g errgroup.Group
	g.SetLimit(haWriteConcurrency)
	for i := range haGrants {
		g.Go(func() error {
			broken, err := checkGrant(cl, h, i)
			if err != nil {
				t.Errorf("grant %d (process %s): %v; recorder: %+v", i, haProcess(i), err, rec.Grant(i))
			}
			if broken {
				brokenCh <- i
			}
			return nil
		})
	}
	_ = g.Wait()
	close(brokenCh)
	var broken []int
	for i := range brokenCh {
		broken = append(broken, i)
	}
	return broken
}

// checkGrant: the process is broken with an open task for its ended grant, or running and
// resolving to an access token of its user's that Hydra calls active.
func checkGrant(cl *api.Client, h *hydra.Server, i int) (broken bool, err error) {
	p, err := cl.Logical().Read("pecreds/process/" + haProcess(i))
	if err != nil || p == nil {
		return false, fmt.Errorf("reading the process: %v", err)
	}
	switch health, _ := p.Data["health"].(string); health {
	case "broken":
		return true, brokenWithTask(cl, p.Data)
	case "running":
		return false, servesFresh(cl, h, i)
	default:
		return false, fmt.Errorf("health %q (%v)", health, p.Data["health_reason"])
	}
}

func brokenWithTask(cl *api.Client, p map[string]any) error {
	taskID, _ := p["task_id"].(string)
	reason, _ := p["health_reason"].(string)
	if taskID == "" || !strings.Contains(reason, "invalid_grant") {
		return fmt.Errorf("broken with task %q for %q: want a task, for a grant Hydra refused", taskID, reason)
	}
	task, err := cl.Logical().Read("pecreds/task/" + taskID)
	if err != nil || task == nil {
		return fmt.Errorf("reading its task: %v", err)
	}
	if task.Data["status"] != "open" || task.Data["reason"] != "credentials_expired" {
		return fmt.Errorf("its task is %v for %v: want open, for credentials_expired", task.Data["status"], task.Data["reason"])
	}
	return nil
}

// servesFresh resolves the process's grant and asks Hydra about the access token served. Hydra
// ends the previous access token when it answers a refresh, before the plugin can have stored the
// new one: a token found inactive must give way, within moments, to a new one that is active. A
// resolve may answer 503 for a while (the access token expired while Hydra's busy store refused
// its refresh, which is asked again after a backoff); it must never serve a second inactive token.
func servesFresh(cl *api.Client, h *hydra.Server, i int) error {
	var (
		stale     string   // an access token Hydra called inactive
		seen      []string // what was served, and what Hydra said of it, for a failure to show
		last, bad error
	)
	fresh := poll(20*time.Second, 100*time.Millisecond, func() bool {
		s, err := cl.Logical().Read("pecreds/process/" + haProcess(i) + "/resolve/mail")
		if err != nil || s == nil {
			last = fmt.Errorf("resolve: %v", err)
			return false
		}
		at, _ := s.Data["access_token"].(string)
		if at == stale {
			last = errors.New("resolve kept serving an access token Hydra calls inactive")
			return false
		}
		in, err := activeFor(h, at, haUser(i))
		seen = append(seen, fmt.Sprintf("at %s: expires_at %v, Hydra: active %v, iat %s, exp %s", time.Now().Format("15:04:05.000"),
			s.Data["expires_at"], in.Active, time.Unix(in.IssuedAt, 0).Format(time.TimeOnly), time.Unix(in.ExpiresAt, 0).Format(time.TimeOnly)))
		switch {
		case err != nil || (!in.Active && stale != ""):
			bad = fmt.Errorf("resolve served a second access token Hydra calls inactive, or another's (%v): %s", err, strings.Join(seen, "; "))
			return true
		case !in.Active:
			stale, last = at, errors.New("resolve served an access token Hydra calls inactive")
		}
		return in.Active
	})
	switch {
	case bad != nil:
		return bad
	case !fresh:
		return fmt.Errorf("no fresh access token within 20s: %v", last)
	}
	return nil
}

// activeFor is what Hydra says of token (introspectSettled); a token of another user is an error.
func activeFor(h *hydra.Server, token, user string) (hydra.Introspection, error) {
	in, err := introspectSettled(h, token)
	if err == nil && in.Active && in.Subject != user {
		err = fmt.Errorf("resolve served an access token of %s's", in.Subject)
	}
	return in, err
}
