package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	pecreds "github.com/pecreds/vault-plugin-pecreds"
)

// A Vault cluster with integrated storage (Raft) on loopback, started by the test itself: the
// engine a deployment outgrows one machine with.

type node struct {
	id      string
	dir     string
	apiPort int
	config  string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	client  *api.Client
}

type cluster struct {
	t         *testing.T
	nodes     []*node
	unsealKey string
	rootToken string
}

func (n *node) addr() string { return fmt.Sprintf("http://127.0.0.1:%d", n.apiPort) }

func newCluster(t *testing.T, size int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	base := t.TempDir()
	for i := 1; i <= size; i++ {
		apiPort, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		clusterPort, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		n := &node{id: fmt.Sprintf("node%d", i), dir: filepath.Join(base, fmt.Sprintf("node%d", i)), apiPort: apiPort}
		if err := os.MkdirAll(filepath.Join(n.dir, "raft"), 0o700); err != nil {
			t.Fatal(err)
		}
		n.config = filepath.Join(n.dir, "vault.hcl")
		n.logPath = filepath.Join(n.dir, "vault.log")
		conf := fmt.Sprintf(`
storage "raft" {
  path    = %q
  node_id = %q
  # 1 is the fastest timing (the default, 5, is for slow networks): fail-over in seconds.
  performance_multiplier = 1
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
log_level        = "trace"
`, filepath.Join(n.dir, "raft"), n.id, apiPort, clusterPort, apiPort, clusterPort, env.pluginDir)
		if err := os.WriteFile(n.config, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := api.DefaultConfig()
		cfg.Address = n.addr()
		if n.client, err = api.NewClient(cfg); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(c.stopAll)

	first := c.nodes[0]
	c.start(first)
	c.waitAPI(first)
	init, err := first.client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	c.unsealKey, c.rootToken = init.Keys[0], init.RootToken
	rememberSecrets(c.rootToken)
	for _, n := range c.nodes {
		n.client.SetToken(c.rootToken)
	}
	c.unseal(first)
	c.waitActive(first)
	for _, n := range c.nodes[1:] {
		c.start(n)
		c.waitAPI(n)
		if _, err := n.client.Sys().RaftJoin(&api.RaftJoinRequest{LeaderAPIAddr: first.addr(), Retry: true}); err != nil {
			t.Fatalf("%s joins: %v", n.id, err)
		}
		c.unseal(n)
	}
	for _, n := range c.nodes[1:] {
		c.waitFor(n, "a standby", func(h *api.HealthResponse) bool { return h.Standby && !h.Sealed })
	}
	if size > 1 {
		c.waitVoters(first, size)
	}
	return c
}

// waitVoters waits until autopilot counts every node as a healthy voter: before that, losing
// the leader loses the quorum.
func (c *cluster) waitVoters(leader *node, size int) {
	c.t.Helper()
	var last *api.AutopilotState
	if poll(90*time.Second, 500*time.Millisecond, func() bool {
		st, err := leader.client.Sys().RaftAutopilotState()
		if err == nil && st != nil {
			last = st
		}
		return err == nil && st != nil && st.Healthy && len(st.Voters) == size
	}) {
		return
	}
	c.t.Fatalf("the cluster did not get %d healthy voters within 90s: %+v", size, last)
}

func (c *cluster) start(n *node) {
	c.t.Helper()
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	n.cmd = exec.Command(env.vaultBin, "server", "-config="+n.config)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); logFile.Close(); close(done) }(n.cmd, n.exited)
}

// unseal unseals a node; a node still joining the cluster answers "not initialized" for a while.
func (c *cluster) unseal(n *node) {
	c.t.Helper()
	var err error
	poll(60*time.Second, 250*time.Millisecond, func() bool {
		_, err = n.client.Sys().Unseal(c.unsealKey)
		return err == nil || !strings.Contains(err.Error(), "not initialized")
	})
	if err != nil {
		c.t.Fatalf("unseal %s: %v", n.id, err)
	}
}

func (c *cluster) waitAPI(n *node) {
	c.waitFor(n, "answering", func(*api.HealthResponse) bool { return true })
}

func (c *cluster) waitActive(n *node) {
	c.waitFor(n, "active", func(h *api.HealthResponse) bool { return h.Initialized && !h.Sealed && !h.Standby })
}

func (c *cluster) waitFor(n *node, what string, ok func(*api.HealthResponse) bool) {
	c.t.Helper()
	if poll(90*time.Second, 200*time.Millisecond, func() bool {
		h, err := n.client.Sys().Health()
		return err == nil && ok(h)
	}) {
		return
	}
	log, _ := os.ReadFile(n.logPath)
	c.t.Fatalf("%s did not become %s within 90s; its log ends:\n%s", n.id, what, tail(string(log), 3000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// active waits for some live node to be the active one and returns it.
func (c *cluster) active(except *node) *node {
	c.t.Helper()
	var found *node
	if poll(90*time.Second, 200*time.Millisecond, func() bool {
		for _, n := range c.nodes {
			if h, err := n.client.Sys().Health(); n != except && err == nil && h.Initialized && !h.Sealed && !h.Standby {
				found = n
				return true
			}
		}
		return false
	}) {
		return found
	}
	for _, n := range c.nodes {
		if n != except {
			log, _ := os.ReadFile(n.logPath)
			c.t.Logf("%s's log ends:\n%s", n.id, tail(string(log), 2500))
		}
	}
	c.t.Fatal("no node became active within 90s")
	return nil
}

func (n *node) signal(sig syscall.Signal) {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(sig)
		select {
		case <-n.exited:
		case <-time.After(30 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
}

func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		select {
		case <-n.exited:
		default:
			n.signal(syscall.SIGTERM)
		}
		if log, err := os.ReadFile(n.logPath); err == nil {
			secrets.Lock()
			for _, s := range secrets.values {
				if s != "" && strings.Contains(string(log), s) {
					c.t.Errorf("%s's log holds a secret value the tests wrote", n.id)
					break
				}
			}
			secrets.Unlock()
		}
	}
}

// enablePlugin registers the freshly built plugin on the cluster and mounts it at pecreds/.
func (c *cluster) enablePlugin(n *node) {
	c.t.Helper()
	if err := n.client.Sys().RegisterPlugin(&api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName, SHA256: env.pluginSHA, Version: pecreds.Version,
	}); err != nil {
		c.t.Fatal(err)
	}
	if err := n.client.Sys().Mount("pecreds", &api.MountInput{Type: pluginName, Config: api.MountConfigInput{PluginVersion: pecreds.Version, MaxLeaseTTL: "8760h"}}); err != nil {
		c.t.Fatal(err)
	}
}

func mustWriteOn(t *testing.T, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func mustReadOn(t *testing.T, c *api.Client, path string) *api.Secret {
	t.Helper()
	s, err := c.Logical().Read(path)
	if err != nil || s == nil {
		t.Fatalf("read %s: %v %v", path, s, err)
	}
	return s
}

// refreshGaps returns the longest gap between a client's successive token requests, and how
// many came closer together than minGap (duplicates) from `from` on.
func refreshGaps(issues []issueTime, from time.Time, minGap time.Duration) (maxGap time.Duration, duplicates int) {
	var prev time.Time
	for _, at := range issues {
		if at.Before(from) {
			prev = at
			continue
		}
		if !prev.IsZero() {
			gap := at.Sub(prev)
			if gap > maxGap {
				maxGap = gap
			}
			if gap < minGap {
				duplicates++
			}
		}
		prev = at
	}
	return maxGap, duplicates
}

type issueTime = time.Time

func TestRaftHAFailover(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.active(nil)
	c.enablePlugin(leader)
	cl := leader.client

	srv := startTokenServer(t)
	const lifetime = 12 * time.Second
	srv.SetLifetime(lifetime)
	srv.SetClient("ha", "ha-client-secret")
	rememberSecrets("ha-client-secret")
	mustWriteOn(t, cl, "pecreds/technical/idp", map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "ha", "client_secret": "ha-client-secret"})
	mustWriteOn(t, cl, "pecreds/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "idp"}}},
		{"name": "self", "credentials": []map[string]any{{"type": "current"}}},
	}})
	persistent := mustWriteOn(t, cl, "pecreds/process/persistent", map[string]any{"definition": "orders", "current": userCurrent(t, "pat")})
	mustWriteOn(t, cl, "pecreds/config", map[string]any{"keep_credentials": "transient"})
	transient := mustWriteOn(t, cl, "pecreds/process/transient", map[string]any{"definition": "orders", "current": userCurrent(t, "tom")})
	if got := mustReadOn(t, cl, "pecreds/process/transient/resolve/self").Data["username"]; got != "tom" {
		t.Fatalf("before fail-over the transient process resolves %v", got)
	}
	// The Task Manager is down: a process-broken and a task-created wait in the outbox.
	rcv := startReceiver(t, webhookSecret("ha-webhook-key"))
	rcv.setFailing(true)
	mustWriteOn(t, cl, "pecreds/config", map[string]any{"notify_url": rcv.url, "notify_secret": rcv.secret})
	mustWriteOn(t, cl, "pecreds/process/persistent/report", map[string]any{"service": "self", "error": "auth_failed"})
	issued := srv.Requests("ha")
	waitFor(t, 30*time.Second, func() bool { return srv.Requests("ha") > issued }) // a scheduled refresh on the first active node

	killedAt := time.Now()
	leader.signal(syscall.SIGKILL)
	next := c.active(leader)
	t.Logf("%s killed; %s active after %s", leader.id, next.id, time.Since(killedAt).Round(100*time.Millisecond))
	cl = next.client

	// Persistent: unchanged. Transient: lost, and a resolve that needs it breaks the process.
	if got := mustReadOn(t, cl, "pecreds/process/persistent/resolve/crm").Data["username"]; got != "pat" {
		t.Errorf("after fail-over the persistent process resolves %v", got)
	}
	if got := mustReadOn(t, cl, "pecreds/process/transient").Data["current_credentials"]; got != "lost" {
		t.Errorf("after fail-over the transient process reads %v", got)
	}
	_, err := cl.Logical().Read("pecreds/process/transient/resolve/self")
	badRequest(t, err, `process "transient" is broken`, "lost", "task")
	proc := mustReadOn(t, cl, "pecreds/process/transient").Data
	if proc["health"] != "broken" || proc["task_id"] == "" {
		t.Errorf("the transient process after its resolve: %v", proc)
	}

	// Tokens keep being refreshed, by the new active node only: two of its refreshes (at 0.67 of
	// the lifetime) span the fail-over's gap and would show a second node refreshing too.
	var times []time.Time
	waitFor(t, 3*lifetime, func() bool {
		times = times[:0]
		after := 0
		for _, is := range srv.Issues("ha") {
			times = append(times, is.At)
			if is.At.After(killedAt) {
				after++
			}
		}
		return after >= 2
	})
	maxGap, duplicates := refreshGaps(times, killedAt.Add(-lifetime), lifetime*67/200)
	t.Logf("token requests: %d in all; longest gap across the fail-over %s; %d duplicates", len(times), maxGap.Round(100*time.Millisecond), duplicates)
	if maxGap >= lifetime {
		t.Errorf("a gap of %s between refreshes: the token expired (lifetime %s)", maxGap, lifetime)
	}
	if duplicates > 0 {
		t.Errorf("%d duplicate token requests: two nodes refreshed", duplicates)
	}
	creds, err := readCredsOn(cl, "pecreds/technical/idp/creds")
	if err != nil || creds == "" {
		t.Errorf("creds after fail-over: %v", err)
	}

	// The new active node delivers what the old one could not.
	// (The transient process's break after the fail-over adds its own two events.)
	rcv.setFailing(false)
	var persistentEvents []string
	// The events failed for about 35 s before the receiver came back, so their next attempt (the
	// backoff doubles: 1, 2, 4 ... 32 s) may be half a minute away: wait past it.
	for _, typ := range types(distinctInOrder(rcv.waitFor(t, 4, 75*time.Second))) {
		if strings.HasSuffix(typ, "@persistent") {
			persistentEvents = append(persistentEvents, typ)
		}
	}
	if strings.Join(persistentEvents, " ") != "process-broken@persistent task-created@persistent" {
		t.Errorf("after fail-over the Task Manager got %v for the persistent process", persistentEvents)
	}

	// Leases still renew and revoke.
	if _, err := cl.Sys().Renew(persistent.LeaseID, 3600); err != nil {
		t.Errorf("renewing after fail-over: %v", err)
	}
	if err := cl.Sys().Revoke(transient.LeaseID); err != nil {
		t.Errorf("revoking after fail-over: %v", err)
	}
	if s, _ := cl.Logical().Read("pecreds/process/transient"); s != nil {
		t.Errorf("the revoked process still reads: %v", s.Data)
	}
}

func readCredsOn(c *api.Client, path string) (string, error) {
	s, err := c.Logical().Read(path)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", errors.New("not found")
	}
	tok, _ := s.Data["access_token"].(string)
	rememberSecrets(tok)
	return tok, nil
}

func TestRestartKeepsStateAndNoRefreshBurst(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	c.enablePlugin(n)
	srv := startTokenServer(t)
	srv.SetLifetime(40 * time.Second)
	for i := 0; i < 5; i++ {
		mustWriteOn(t, n.client, fmt.Sprintf("pecreds/technical/idp%d", i), map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": fmt.Sprintf("rs%d", i), "client_secret": "restart-secret"})
	}
	rememberSecrets("restart-secret")
	mustWriteOn(t, n.client, "pecreds/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	lease := mustWriteOn(t, n.client, "pecreds/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "rex")})
	// The Task Manager is down across the restart: two events wait in the outbox.
	rcv := startReceiver(t, webhookSecret("restart-webhook-key"))
	rcv.setFailing(true)
	mustWriteOn(t, n.client, "pecreds/config", map[string]any{"notify_url": rcv.url, "notify_secret": rcv.secret})
	mustWriteOn(t, n.client, "pecreds/process/q", map[string]any{"definition": "orders", "current": userCurrent(t, "rex")})
	mustWriteOn(t, n.client, "pecreds/process/q/report", map[string]any{"service": "crm", "error": "auth_failed"})
	before, _ := readCredsOn(n.client, "pecreds/technical/idp0/creds")
	requests := func() int {
		total := 0
		for i := 0; i < 5; i++ {
			total += srv.Requests(fmt.Sprintf("rs%d", i))
		}
		return total
	}
	countBefore := requests()

	n.signal(syscall.SIGTERM)
	c.start(n)
	c.waitAPI(n)
	c.unseal(n)
	c.waitActive(n)
	// The plugin serves (its scheduler rebuilt); a burst would start at once.
	if _, err := readCredsOn(n.client, "pecreds/technical/idp0/creds"); err != nil {
		t.Fatal(err)
	}
	// A sleep is the point here: a burst would come at once, so no request within a second is
	// what shows there is none (no condition to poll for an absence).
	time.Sleep(time.Second)
	if got := requests() - countBefore; got != 0 {
		t.Errorf("%d token requests right after the restart, for tokens that are still valid", got)
	}
	after, err := readCredsOn(n.client, "pecreds/technical/idp0/creds")
	if err != nil || after != before {
		t.Errorf("after the restart the token changed (%v) or failed: %v", after != before, err)
	}
	if got := mustReadOn(t, n.client, "pecreds/process/p/resolve/crm").Data["username"]; got != "rex" {
		t.Errorf("after the restart the process resolves %v", got)
	}
	if _, err := n.client.Sys().Renew(lease.LeaseID, 3600); err != nil {
		t.Errorf("renewing after the restart: %v", err)
	}
	rcv.setFailing(false)
	if got := types(distinctInOrder(rcv.waitFor(t, 2, 75*time.Second))); strings.Join(got, " ") != "process-broken@q task-created@q" { // past the backoff
		t.Errorf("after the restart the Task Manager got %v", got)
	}
	// The scheduler resumed: each token is refreshed at its time (~27s after it was issued).
	waitFor(t, 45*time.Second, func() bool { return requests()-countBefore >= 5 })
	if got := requests() - countBefore; got < 5 || got > 6 {
		t.Errorf("%d token requests by 30s after the restart, want one refresh a credential", got)
	}
}

// pluginPIDs lists the running processes of the freshly built plugin binary.
func pluginPIDs(t *testing.T) []int {
	t.Helper()
	bin := filepath.Join(env.pluginDir, pluginName)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestPluginKilledIsRestartedAndRebuilds(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	srv.SetLifetime(10 * time.Second)
	createOAuth2(t, mount, "idp", srv, "killed")
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "kim")})
	pids := pluginPIDs(t)
	if len(pids) == 0 {
		t.Fatal("no plugin process found")
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Vault restarts the plugin on the next request that needs it.
	var got any
	poll(30*time.Second, 500*time.Millisecond, func() bool {
		s, err := env.client.Logical().Read(mount + "/process/p/resolve/crm")
		if err == nil && s != nil {
			got = s.Data["username"]
		}
		return err == nil && s != nil
	})
	if got != "kim" {
		t.Fatalf("after the plugin was killed the process resolves %v", got)
	}
	if now := pluginPIDs(t); len(now) == 0 || now[0] == pids[0] {
		t.Errorf("plugin processes before %v, after %v", pids, now)
	}
	// The scheduler was rebuilt: the token keeps being refreshed.
	count := srv.Requests("killed")
	waitFor(t, 20*time.Second, func() bool { return srv.Requests("killed") > count }) // 10s lifetimes
}
