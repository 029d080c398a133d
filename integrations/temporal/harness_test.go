package temporal_test

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/testsuite"
)

// The integration tests of this module run against a real Vault dev server with the plugin
// freshly built from this repository, and a real Temporal dev server (the Temporal CLI's
// `server start-dev`), both started here. VAULT_ACC gates them, as in the plugin's own tests/
// (whose harness is internal to the plugin's module): scripts/test.sh runs them with the binaries
// it found or built, $VAULT_BIN and $TEMPORAL_BIN.

const (
	accEnv     = "VAULT_ACC"
	rootToken  = "root"
	pluginName = "vault-plugin-pecreds"
)

var env struct {
	vault    *api.Client
	vaultLog string
	temporal *testsuite.DevServer
	tempBin  string
}

// secrets are the values the tests gave pecreds: TestMain looks for them in Vault's log.
var secrets struct {
	sync.Mutex
	values []string
}

func rememberSecrets(values ...string) {
	secrets.Lock()
	defer secrets.Unlock()
	secrets.values = append(secrets.values, values...)
}

// TestMain starts the servers when VAULT_ACC is set; without it the unit tests run alone and the
// integration tests skip (newFixture), as HashiCorp gates its acceptance tests.
func TestMain(m *testing.M) {
	if os.Getenv(accEnv) == "" {
		fmt.Printf("the integration tests start a real Vault and a real Temporal server; run them with %s=1 (scripts/test.sh)\n", accEnv)
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	work, err := os.MkdirTemp("", "pecreds-temporal-tests-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(work)
	stopVault, err := startVault(work)
	if err != nil {
		return fail("starting Vault: %v", err)
	}
	defer stopVault()
	if err := startTemporal(work); err != nil {
		return fail("starting Temporal: %v", err)
	}
	defer env.temporal.Stop()
	code := m.Run()
	stopVault()
	log, _ := os.ReadFile(env.vaultLog)
	for _, s := range secrets.values {
		if bytes.Contains(log, []byte(s)) {
			return fail("Vault's log holds a secret value the tests wrote (%d characters)", len(s))
		}
	}
	return code
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	return 1
}

// binary is $name, else what the repository's script prints (it builds the binary if needed).
func binary(name, script string) (string, error) {
	if p := os.Getenv(name); p != "" {
		return p, nil
	}
	cmd := exec.Command("../../scripts/" + script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startVault builds the plugin into work, runs `vault server -dev` on a free loopback port with
// it, and registers it.
func startVault(work string) (stop func(), err error) {
	bin, err := binary("VAULT_BIN", "vault.sh")
	if err != nil {
		return nil, err
	}
	plugins := filepath.Join(work, "plugins")
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, pluginName), "./cmd/vault-plugin-pecreds")
	build.Dir = "../.."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building the plugin: %w", err)
	}
	sha, err := sha256File(filepath.Join(plugins, pluginName))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(work, "vault.hcl")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("plugin_directory = %q\n", plugins)), 0o600); err != nil {
		return nil, err
	}
	env.vaultLog = filepath.Join(work, "vault.log")
	logFile, err := os.Create(env.vaultLog)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+rootToken,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-config="+config, "-log-level=trace")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		})
	}
	if err := vaultReady(fmt.Sprintf("http://127.0.0.1:%d", port), exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w (log: %s)", err, env.vaultLog)
	}
	err = env.vault.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName, SHA256: sha})
	if err != nil {
		stop()
		return nil, fmt.Errorf("registering the plugin: %w", err)
	}
	return stop, nil
}

func vaultReady(addr string, exited <-chan struct{}) error {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	c.SetToken(rootToken)
	env.vault = c
	deadline := time.Now().Add(60 * time.Second)
	for {
		if h, err := c.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the Vault server exited at start")
		case <-time.After(100 * time.Millisecond): // the pause between two looks
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Vault server did not come up within 60s")
		}
	}
}

// startTemporal runs the Temporal CLI's dev server (in-memory store, no UI) through the SDK's own
// test helper, on a free loopback port.
func startTemporal(work string) error {
	bin, err := binary("TEMPORAL_BIN", "temporal.sh")
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(work, "temporal.log"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env.tempBin = bin
	env.temporal, err = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "warn", Stdout: logFile, Stderr: logFile,
	})
	return err
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
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

// waitFor polls cond until it holds, failing the test after within: no fixed sleeps.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond) // the pause between two looks, the one sleep a poll needs
	}
}
