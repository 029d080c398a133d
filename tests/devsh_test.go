package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devServer is a scripts/dev.sh a test started: its address, its folder, and what it printed
// up to its last hint.
type devServer struct {
	addr, dir string
	output    string
}

// startDevSh runs scripts/dev.sh on a free port with its files in a temporary folder
// (PECREDS_ADDR, PECREDS_DEV_DIR: never the defaults, which a user's own dev.sh may hold), with
// extra environment, until it prints its hints; it is stopped when the test ends.
func startDevSh(t *testing.T, extraEnv ...string) devServer {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	d := devServer{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: t.TempDir()}
	cmd := exec.Command("scripts/dev.sh")
	cmd.Dir = ".."
	cmd.Env = append(append(os.Environ(), "PECREDS_ADDR="+d.addr, "PECREDS_DEV_DIR="+d.dir, "VAULT_BIN="+env.vaultBin), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var mu sync.Mutex
	var out bytes.Buffer
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &mu, w: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Ctrl-C here stops the server") {
				ready <- true
			}
		}
	}()
	text := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatalf("scripts/dev.sh did not come up:\n%s", text())
	}
	d.output = text()
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// scripts/dev.sh with PECREDS_ADDR, PECREDS_DEV_DIR and PECREDS_PROXY_ADDR set to non-defaults:
// its hints name that address and folder and no default, the proxy's and the agent's
// configurations it writes do too, and every hint runs as printed, from another folder: the
// engine host's Vault Proxy logs in with the AppRole ids in the dev folder and serves a read
// without a token, the agent renders the engine's token, and the reference engine runs its story.
func TestDevShHintsFollowItsAddressAndFolder(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", port)
	d := startDevSh(t, "PECREDS_PROXY_ADDR="+proxyAddr)
	hints := devHints(t, d.output)
	for _, name := range []string{"proxy.hcl", "agent.hcl"} {
		text, err := os.ReadFile(filepath.Join(d.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		hints = append(hints, string(text))
	}
	for _, h := range hints {
		for _, stale := range []string{"127.0.0.1:8200", "127.0.0.1:8100", " bin/dev", `"bin/dev`} {
			if strings.Contains(h, stale) {
				t.Errorf("a hint or configuration names the default %s:\n%s", stale, h)
			}
		}
	}

	export := pick(t, hints, "export VAULT_ADDR=")
	if !strings.Contains(export, "http://"+d.addr) {
		t.Fatalf("the export line: %s", export)
	}
	binDir := t.TempDir()
	if err := os.Symlink(env.vaultBin, filepath.Join(binDir, "vault")); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir() // the hints work from any folder
	shell := func(line string) *exec.Cmd {
		cmd := exec.Command("bash", "-c", export+"\n"+line)
		cmd.Dir = elsewhere
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "VAULT_FORMAT=")
		return cmd
	}
	runHint := func(line string) string {
		out, err := shell(line).CombinedOutput()
		if err != nil {
			t.Errorf("the hint %q: %v\n%s", line, err, out)
		}
		return string(out)
	}
	for _, h := range hints {
		if strings.HasPrefix(h, "vault read ") || strings.HasPrefix(h, "vault list ") || strings.HasPrefix(h, "vault path-help ") || strings.HasPrefix(h, "ANN_TOKEN=") {
			runHint(h)
		}
	}
	checkDevProxyAndAgent(t, d, hints, shell)
	engine := runHint(pick(t, hints, "(cd "))
	if !strings.Contains(engine, "all 3 processes resumed and booked with Ann's new password") {
		t.Errorf("the reference engine:\n%s", engine)
	}
}

// checkDevProxyAndAgent starts the proxy and the agent as dev.sh's hints say, and waits for the
// proxy to serve a read with no token and for the agent to render the engine's token.
func checkDevProxyAndAgent(t *testing.T, d devServer, hints []string, shell func(string) *exec.Cmd) {
	t.Helper()
	logs := map[string]*lockedWriter{}
	for _, prefix := range []string{"vault proxy ", "vault agent "} {
		line := strings.TrimSuffix(strings.TrimSpace(strings.SplitN(pick(t, hints, prefix), "#", 2)[0]), "&")
		cmd := shell("exec " + line)
		logs[prefix] = &lockedWriter{mu: &sync.Mutex{}, w: &bytes.Buffer{}}
		cmd.Stdout, cmd.Stderr = logs[prefix], logs[prefix]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
	}
	viaProxy := pick(t, hints, "VAULT_ADDR=http://")
	var out []byte
	ok := poll(30*time.Second, 200*time.Millisecond, func() bool {
		var err error
		out, err = shell(viaProxy).CombinedOutput()
		return err == nil
	})
	if !ok {
		t.Errorf("the read through the proxy: %s\nthe proxy's log:\n%s", out, logs["vault proxy "])
	}
	rendered := filepath.Join(d.dir, "engine-token.json")
	ok = poll(30*time.Second, 200*time.Millisecond, func() bool {
		b, err := os.ReadFile(rendered)
		return err == nil && strings.Contains(string(b), `"access_token": "tok-`)
	})
	if !ok {
		t.Errorf("the agent did not render %s; its log:\n%s", rendered, logs["vault agent "])
	}
}

// devHints are the commands dev.sh prints after "In another shell:", trimmed.
func devHints(t *testing.T, output string) []string {
	t.Helper()
	_, after, found := strings.Cut(output, "In another shell:")
	if !found {
		t.Fatalf("dev.sh printed no hints:\n%s", output)
	}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Ctrl-C") {
			out = append(out, l)
		}
	}
	return out
}

// pick is the hint that begins with prefix.
func pick(t *testing.T, hints []string, prefix string) string {
	t.Helper()
	for _, h := range hints {
		if strings.HasPrefix(h, prefix) {
			return h
		}
	}
	t.Fatalf("no hint begins with %q: %q", prefix, hints)
	return ""
}
