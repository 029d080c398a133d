package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeCommand is one command of the README's walkthrough, and whether it is shown failing.
type readmeCommand struct {
	line  int
	text  string
	fails bool
}

// walkthroughCommands extracts, in order, every command of the README between "## Walkthrough"
// and the next second-level heading: each line of a sh block, and each "$ " line of a console
// block (with its continuation lines). A command fails on purpose when its console output begins
// with "Error", or its comment says "# 400", "# 403" or "# 404". A block right after a line
// "<!-- not run: why -->" is skipped.
func walkthroughCommands(readme string) []readmeCommand {
	var out []readmeCommand
	inWalkthrough, block, skip := false, "", false
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "## "):
			inWalkthrough = strings.HasPrefix(l, "## Walkthrough")
			continue
		case !inWalkthrough:
			continue
		case strings.HasPrefix(l, "<!-- not run:"):
			skip = true
			continue
		case block == "" && (l == "```sh" || l == "```console"):
			block = strings.TrimPrefix(l, "```")
			continue
		case block != "" && l == "```":
			block, skip = "", false
			continue
		case block == "" || skip:
			continue
		}
		text := l
		if block == "console" {
			if !strings.HasPrefix(l, "$ ") {
				continue
			}
			text = strings.TrimPrefix(l, "$ ")
		}
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		start := i + 1
		for strings.HasSuffix(text, `\`) && i+1 < len(lines) {
			i++
			text += "\n" + lines[i]
		}
		fails := strings.Contains(text, "# 400") || strings.Contains(text, "# 403") || strings.Contains(text, "# 404")
		if block == "console" && i+1 < len(lines) && (strings.HasPrefix(lines[i+1], "Error") || strings.HasPrefix(lines[i+1], "...")) {
			fails = true
		}
		out = append(out, readmeCommand{line: start, text: text, fails: fails})
	}
	return out
}

// The README's walkthrough runs as written, in order, against a fresh scripts/dev.sh: every
// command shown succeeding succeeds, every one shown failing fails, and no placeholder is left.
func TestREADMEWalkthroughRunsAsIs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := walkthroughCommands(string(readme))
	if len(cmds) < 40 {
		t.Fatalf("only %d commands found in the walkthrough", len(cmds))
	}
	for _, c := range cmds {
		if strings.Contains(c.text, "<") && strings.Contains(c.text, ">") && !strings.Contains(c.text, "<<") {
			t.Errorf("README line %d has a placeholder: %s", c.line, c.text)
		}
	}

	dev := startDevSh(t)
	addr, devDir := dev.addr, dev.dir
	checkDevFilesPrivate(t, devDir)

	// The commands, as one bash script, so that shell variables carry from one to the next.
	binDir := t.TempDir()
	if err := os.Symlink(env.vaultBin, filepath.Join(binDir, "vault")); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -o pipefail\n")
	for _, c := range cmds {
		want := "0"
		if c.fails {
			want = "1"
		}
		fmt.Fprintf(&script, "echo %q\n%s\nrc=$?\n", fmt.Sprintf(">>> README line %d", c.line), c.text)
		fmt.Fprintf(&script, "if [ %s = 0 ] && [ $rc != 0 ]; then echo \"FAILED: README line %d exited $rc\"; exit 1; fi\n", want, c.line)
		fmt.Fprintf(&script, "if [ %s = 1 ] && [ $rc = 0 ]; then echo \"SUCCEEDED, shown failing: README line %d\"; exit 1; fi\n", want, c.line)
	}
	run := exec.Command("bash", "-c", script.String())
	run.Dir = ".."
	run.Env = append(os.Environ(), "VAULT_ADDR=http://"+addr, "VAULT_TOKEN=root", "PATH="+binDir+":"+os.Getenv("PATH"), "VAULT_FORMAT=")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough stopped: %v\n%s", err, lastLines(string(out), 60))
	}
	failing := 0
	for _, c := range cmds {
		if c.fails {
			failing++
		}
	}
	t.Logf("the walkthrough ran: %d commands, %d of them shown failing and failing", len(cmds), failing)
}

// devServer is a fresh scripts/dev.sh, up and printing its hints.
type devServer struct {
	addr string // Vault's listen address
	dir  string // PECREDS_DEV_DIR
}

// startDevSh starts scripts/dev.sh on a free port, its files in a temporary directory, with
// extraEnv, and stops it (and all it started) when the test ends.
func startDevSh(t *testing.T, extraEnv ...string) devServer {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	devDir := t.TempDir()
	dev := exec.Command("scripts/dev.sh")
	dev.Dir = ".."
	dev.Env = append(append(os.Environ(), "PECREDS_ADDR="+addr, "PECREDS_DEV_DIR="+devDir, "VAULT_BIN="+env.vaultBin), extraEnv...)
	dev.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var devOut bytes.Buffer
	pipe, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dev.Stderr = &devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-dev.Process.Pid, syscall.SIGTERM)
		_ = dev.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			devOut.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C here stops the server") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatalf("scripts/dev.sh did not come up:\n%s", devOut.String())
	}
	return devServer{addr: addr, dir: devDir}
}

// checkDevFilesPrivate: what scripts/dev.sh writes holds secrets (the agent's token, the
// AppRole secret id, the server's log with its root token and unseal key), so none of it is
// readable by another user of the machine: files 0600, directories 0700.
func checkDevFilesPrivate(t *testing.T, devDir string) {
	t.Helper()
	for _, name := range []string{"agent-token", "engine-host-secret-id", "engine-host-role-id", "vault.log", "ann-entity-id"} {
		if _, err := os.Stat(filepath.Join(devDir, name)); err != nil {
			t.Errorf("dev.sh did not write %s: %v", name, err)
		}
	}
	err := filepath.WalkDir(devDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v: readable beyond its owner", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
