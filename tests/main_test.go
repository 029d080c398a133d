// Package tests drives the pecreds plugin inside a real `vault server -dev` that TestMain starts
// on a free loopback port, through vault/api and the vault CLI. They run only with VAULT_ACC set
// (`make testacc`, scripts/test.sh), as HashiCorp gates its acceptance tests; then a missing
// server is a failure.
package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	pecreds "github.com/pecreds/vault-plugin-pecreds"
	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

const (
	rootToken  = "root"
	pluginName = "vault-plugin-pecreds"
	// testBuildPluginName is the same plugin as the tests build it: a short outbox dead limit
	// (notifyDeadAfter) and a kill switch (fault_kill.go, armed through env.killFile).
	testBuildPluginName = "vault-plugin-pecreds-test-build"
)

// env is the running server the tests share.
var env struct {
	vaultBin  string
	addr      string
	logPath   string
	client    *api.Client
	work      string // the run's temporary folder
	pluginDir string // holds the freshly built plugin
	pluginSHA string
	killFile  string // arms the test build's kill switch (crash_test.go)
}

// secrets records every secret value the tests wrote, so that TestMain can check the server's
// log (at trace level) for them once every test has run.
var secrets struct {
	sync.Mutex
	values []string
}

func rememberSecrets(values ...string) {
	secrets.Lock()
	defer secrets.Unlock()
	secrets.values = append(secrets.values, values...)
}

// accEnv gates these tests, as in HashiCorp's sdk/logical/testing: without it they neither build
// nor start a Vault server, and `go test ./...` runs the unit tests only.
const accEnv = "VAULT_ACC"

func TestMain(m *testing.M) {
	if os.Getenv(accEnv) == "" {
		fmt.Printf("SKIP: the integration tests start a real Vault server; run them with %s=1 "+
			"(make testacc, or scripts/test.sh for every stage)\n", accEnv)
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	work, err := os.MkdirTemp("", "pecreds-tests-")
	if err != nil {
		return fail("making a work folder: %v", err)
	}
	defer os.RemoveAll(work)

	stop, err := startVault(work)
	if err != nil {
		return fail("starting the Vault dev server: %v", err)
	}
	code := m.Run()
	stop()

	if leaks := secretsInLog(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the server's log holds %d secret values the tests wrote (first: a value of %d characters)\n", len(leaks), len(leaks[0]))
		return 1
	}
	return code
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	return 1
}

// findVault asks scripts/vault.sh, which honours $VAULT_BIN and builds bin/vault if needed.
func findVault() (string, error) {
	cmd := exec.Command("../scripts/vault.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/vault.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildPlugin builds the plugin as name into dir, with the given build tags and -ldflags, and
// answers its sha256.
func buildPlugin(dir, name, tags, ldflags string) (sha string, err error) {
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags", tags, "-ldflags", ldflags, "-o", bin, "../cmd/vault-plugin-pecreds")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the plugin: %w", err)
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startVault(work string) (stop func(), err error) {
	if env.vaultBin, err = findVault(); err != nil {
		return nil, err
	}
	pluginDir := filepath.Join(work, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	sha, err := buildPlugin(pluginDir, pluginName, "", "")
	if err != nil {
		return nil, err
	}
	// The tests' build links in a short outbox dead limit (24h in production) and a kill switch
	// armed by a file: nothing at run time, no environment knob, can change the production build.
	// Only the tests of dead events and of crashes mount it.
	env.killFile = filepath.Join(work, "kill")
	testBuildSHA, err := buildPlugin(pluginDir, testBuildPluginName, "pecreds_faults", fmt.Sprintf(
		"-X github.com/pecreds/vault-plugin-pecreds.notifyDeadAfterBuild=%s -X github.com/pecreds/vault-plugin-pecreds.faultKillFile=%s",
		notifyDeadAfter, env.killFile))
	if err != nil {
		return nil, err
	}
	env.work, env.pluginDir, env.pluginSHA = work, pluginDir, sha
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env.addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	configPath := filepath.Join(work, "vault.hcl")
	if err := os.WriteFile(configPath, []byte(fmt.Sprintf("plugin_directory = %q\n", pluginDir)), 0o600); err != nil {
		return nil, err
	}
	env.logPath = filepath.Join(work, "vault.log")
	if dir := os.Getenv("PECREDS_TEST_LOG_DIR"); dir != "" {
		env.logPath = filepath.Join(dir, "vault.log")
	}
	logFile, err := os.Create(env.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(env.vaultBin, "server", "-dev",
		"-dev-root-token-id="+rootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-config="+configPath,
		"-log-level=trace",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID="+rootToken)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", env.vaultBin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	}

	cfg := api.DefaultConfig()
	cfg.Address = env.addr
	if env.client, err = api.NewClient(cfg); err != nil {
		stop()
		return nil, err
	}
	env.client.SetToken(rootToken)
	if err := waitUnsealed(env.client, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w (server log: %s)", err, env.logPath)
	}
	if err := env.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    pluginName,
		Type:    api.PluginTypeSecrets,
		Command: pluginName,
		SHA256:  sha,
		Version: pecreds.Version,
	}); err != nil {
		stop()
		return nil, fmt.Errorf("registering the plugin: %w", err)
	}
	if err := env.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name: testBuildPluginName, Type: api.PluginTypeSecrets, Command: testBuildPluginName, SHA256: testBuildSHA,
	}); err != nil {
		stop()
		return nil, fmt.Errorf("registering the tests' build of the plugin: %w", err)
	}
	return stop, nil
}

func waitUnsealed(c *api.Client, exited <-chan struct{}) error {
	gone := false
	up := poll(60*time.Second, 100*time.Millisecond, func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		h, err := c.Sys().Health()
		return err == nil && h.Initialized && !h.Sealed
	})
	switch {
	case gone:
		return fmt.Errorf("the server exited at start")
	case !up:
		return fmt.Errorf("the server did not come up within 60s")
	}
	return nil
}

func secretsInLog() []string {
	secrets.Lock()
	defer secrets.Unlock()
	log, err := os.ReadFile(env.logPath)
	if err != nil {
		return nil
	}
	var found []string
	for _, s := range secrets.values {
		if bytes.Contains(log, []byte(s)) {
			found = append(found, s)
		}
	}
	return found
}

var mountNameRegexp = regexp.MustCompile(`[^a-z0-9]+`)

// newMount enables the plugin on a mount of the test's own, removed when the test ends.
func newMount(t testing.TB) string {
	t.Helper()
	mount := "pecreds-" + strings.Trim(mountNameRegexp.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(mount) > 60 {
		mount = mount[:60]
	}
	return newMountNamed(t, mount)
}

// newMountNamed enables the plugin at mount, removed when the test ends.
func newMountNamed(t testing.TB, mount string) string {
	t.Helper()
	enableMount(t, mount)
	return removedAtEnd(t, mount)
}

// removedAtEnd disables mount when the test ends.
func removedAtEnd(t testing.TB, mount string) string {
	t.Helper()
	t.Cleanup(func() {
		if err := env.client.Sys().Unmount(mount); err != nil {
			t.Errorf("disabling %s: %v", mount, err)
		}
	})
	return mount
}

// enableMount enables the plugin at mount and leaves it there.
func enableMount(t testing.TB, mount string) {
	t.Helper()
	err := env.client.Sys().Mount(mount, &api.MountInput{
		Type:   pluginName,
		Config: api.MountConfigInput{PluginVersion: pecreds.Version},
	})
	if err != nil {
		t.Fatalf("enabling the plugin at %s: %v", mount, err)
	}
}

// waitFor polls cond until it holds, failing the test after within: tests wait by polling with
// a deadline, never by a fixed sleep.
func waitFor(t testing.TB, within time.Duration, cond func() bool) {
	t.Helper()
	if !poll(within, 50*time.Millisecond, cond) {
		t.Fatalf("the condition did not hold within %s", within)
	}
}

// poll asks cond every interval until it holds or within has passed, and says whether it held:
// waitFor's loop, for a caller that explains a failure itself or goes on either way.
func poll(within, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every) // the pause between two looks, the one sleep a poll needs
	}
	return true
}

// cliResult is what the vault CLI printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// vaultCLI runs the real vault CLI against the test server, from the project's root so that
// paths like @examples/... work as in the README.
func vaultCLI(t testing.TB, args ...string) cliResult {
	t.Helper()
	return vaultCLIWithEnv(t, nil, args...)
}

// vaultCLIWithEnv runs the vault CLI with extra environment (later entries win).
func vaultCLIWithEnv(t testing.TB, extra []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(env.vaultBin, args...)
	cmd.Dir = ".."
	cmd.Env = append(append(os.Environ(), "VAULT_ADDR="+env.addr, "VAULT_TOKEN="+rootToken, "VAULT_FORMAT="), extra...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		res.code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running vault %v: %v", args, err)
	}
	return res
}

// mustCLI runs the vault CLI and fails the test unless it exits 0.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	res := vaultCLI(t, args...)
	if res.code != 0 {
		t.Fatalf("vault %s: exit %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// testCertificate makes a self-signed certificate and its key.
func testCertificate(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	certPEM, keyPEM, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// process is a program a test started, stopped when the test ends.
type process struct {
	cmd     *exec.Cmd
	logPath string
}

func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// startProcess runs a program with its output in logPath, and stops it when the test ends.
func startProcess(t *testing.T, logPath, name string, args ...string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	return &process{cmd: cmd, logPath: logPath}
}
