package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/temporal"
)

// findTemporal asks scripts/temporal.sh, which honours $TEMPORAL_BIN and builds bin/temporal
// if needed.
func findTemporal() (string, error) {
	cmd := exec.Command("../scripts/temporal.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/temporal.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startTemporal runs a real Temporal dev server for the test, with the given namespaces besides
// "default", stopped when the test ends; its log is shown if the test fails. Only the tests that
// need a process engine start one (TestMain does not).
func startTemporal(t *testing.T, name string, namespaces ...string) *temporal.Server {
	t.Helper()
	bin, err := findTemporal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if d := os.Getenv("PECREDS_TEST_LOG_DIR"); d != "" {
		dir = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := temporal.Start(ctx, temporal.Options{
		Bin:        bin,
		LogPath:    filepath.Join(dir, name+".log"),
		Namespaces: namespaces,
	})
	if err != nil {
		t.Fatalf("starting Temporal: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("the Temporal server's log (%s):\n%s", name, tail(s.Log(), 8000))
		}
	})
	return s
}

// TestTemporalDevServer pins down what the Temporal integration will stand on: the dev server
// the tests build (scripts/temporal.sh) starts headless on loopback with an in-memory store,
// serves the default namespace and the ones asked for through the CLI (gRPC) and the HTTP API,
// refuses a namespace it does not have, and runs a workflow execution through its history
// service (started, described, terminated: no worker is needed for that).
func TestTemporalDevServer(t *testing.T) {
	// The CLI's JSON and the HTTP API both print enums by their proto names.
	const registered = "NAMESPACE_STATE_REGISTERED"
	const ns = "pecreds-smoke"
	s := startTemporal(t, "temporal-smoke", ns)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := s.CLI(ctx, "--version"); err == nil {
		t.Logf("Temporal at %s (HTTP %s): %s", s.Address, s.HTTPURL, strings.TrimSpace(string(out)))
	}

	t.Run("the CLI describes the default namespace over gRPC", func(t *testing.T) {
		var got struct {
			Info struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"namespaceInfo"`
		}
		cliJSON(ctx, t, s, &got, "operator", "namespace", "describe", "--namespace", temporal.DefaultNamespace, "--output", "json")
		if got.Info.Name != temporal.DefaultNamespace || got.Info.State != registered {
			t.Fatalf("namespace %q in state %q, want %q registered", got.Info.Name, got.Info.State, temporal.DefaultNamespace)
		}
	})

	t.Run("the HTTP API describes the namespace asked for, and no other", func(t *testing.T) {
		got, err := s.DescribeNamespace(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		if got.Info.Name != ns || got.Info.State != registered || got.Info.ID == "" {
			t.Fatalf("namespace %+v, want %q registered with an id", got.Info, ns)
		}
		if _, err := s.DescribeNamespace(ctx, "no-such-namespace"); !errors.Is(err, temporal.ErrNotFound) {
			t.Fatalf("an unknown namespace: %v, want ErrNotFound", err)
		}
	})

	t.Run("a workflow execution starts, runs and is terminated", func(t *testing.T) {
		const id = "pecreds-smoke-1"
		var started struct {
			RunID string `json:"runId"`
		}
		cliJSON(ctx, t, s, &started, "workflow", "start", "--namespace", ns, "--workflow-id", id,
			"--type", "PecredsSmoke", "--task-queue", "pecreds-smoke", "--output", "json")
		if started.RunID == "" {
			t.Fatal("workflow start answered no run id")
		}
		if st := workflowStatus(ctx, t, s, ns, id); st != "WORKFLOW_EXECUTION_STATUS_RUNNING" {
			t.Fatalf("a started workflow is %q, want running", st)
		}
		if _, err := s.CLI(ctx, "workflow", "terminate", "--namespace", ns, "--workflow-id", id, "--reason", "smoke test"); err != nil {
			t.Fatal(err)
		}
		if st := workflowStatus(ctx, t, s, ns, id); st != "WORKFLOW_EXECUTION_STATUS_TERMINATED" {
			t.Fatalf("a terminated workflow is %q, want terminated", st)
		}
	})
}

// cliJSON runs the Temporal CLI against s and decodes its JSON answer into out.
func cliJSON(ctx context.Context, t *testing.T, s *temporal.Server, out any, args ...string) {
	t.Helper()
	b, err := s.CLI(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("temporal %s: %v in %s", strings.Join(args, " "), err, b)
	}
}

func workflowStatus(ctx context.Context, t *testing.T, s *temporal.Server, ns, id string) string {
	t.Helper()
	var d struct {
		Info struct {
			Status string `json:"status"`
		} `json:"workflowExecutionInfo"`
	}
	cliJSON(ctx, t, s, &d, "workflow", "describe", "--namespace", ns, "--workflow-id", id, "--output", "json")
	return d.Info.Status
}
