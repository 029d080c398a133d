// Package temporal runs a real Temporal server on loopback for the integration tests: the dev
// server of the Temporal CLI (v1.5.1, built by scripts/temporal.sh), `temporal server start-dev
// --headless`, with its in-memory SQLite store, no Web UI, the namespaces the test asks for, and
// the frontend's gRPC and HTTP APIs on free ports.
//
// It lives under tests/internal so that only the integration tests can import it: the compiler
// keeps it out of the plugin binary and out of the unit tests, which never start a server. It
// uses no Temporal library: it drives the CLI binary and the frontend's HTTP API, so the plugin's
// go.mod stays free of the Temporal SDK (integrations/temporal has its own go.mod).
package temporal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/child"
)

// DefaultNamespace is the namespace the dev server always creates.
const DefaultNamespace = "default"

// Options say how to run the server. Bin and LogPath are required.
type Options struct {
	Bin     string // the temporal CLI binary (scripts/temporal.sh prints its path)
	LogPath string // the server's own output goes here
	// Namespaces are created at start besides "default", and waited for.
	Namespaces []string
	// StartTimeout bounds the wait for the frontend to serve every namespace; default 60s.
	StartTimeout time.Duration
}

// Server is a running Temporal dev server.
type Server struct {
	Address    string   // the frontend's gRPC endpoint, host:port: an SDK client's HostPort, the CLI's --address
	HTTPURL    string   // the frontend's HTTP API, http://host:port (/api/v1/...)
	Namespaces []string // "default" first, then Options.Namespaces

	bin  string
	home string // HOME of the server and of the CLI commands: no config of the caller's is read
	proc *child.Proc
	http *http.Client
}

// Start runs the dev server on free loopback ports and answers once the frontend says SERVING
// on gRPC and describes every namespace over HTTP. A port taken between choosing it and the
// server binding it (other suites share the machine) is retried on new ports.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Bin == "" || o.LogPath == "" {
		return nil, errors.New("temporal: Options.Bin and Options.LogPath are required")
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	for _, ns := range o.Namespaces {
		if ns == "" || ns == DefaultNamespace {
			return nil, fmt.Errorf("temporal: Options.Namespaces names %q; the dev server always creates %q", ns, DefaultNamespace)
		}
	}
	return child.RetryOnPortTaken(func() (*Server, error) { return start(ctx, o) })
}

func start(ctx context.Context, o Options) (*Server, error) {
	grpcPort, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "pecreds-temporal-home-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Address:    net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
		HTTPURL:    "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		Namespaces: append([]string{DefaultNamespace}, o.Namespaces...),
		bin:        o.Bin,
		home:       home,
		http:       &http.Client{Timeout: 10 * time.Second},
	}
	// --headless: no Web UI (and no UI port to find). No --db-filename: the store is SQLite in
	// memory, gone with the process. The metrics endpoint and the internal services (history,
	// matching, worker) take free ports the CLI chooses itself.
	args := []string{"server", "start-dev", "--headless",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(grpcPort), "--http-port", strconv.Itoa(httpPort)}
	for _, ns := range o.Namespaces {
		args = append(args, "--namespace", ns)
	}
	if s.proc, err = child.Start(o.Bin, args, s.environ(), o.LogPath); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	if err := s.waitReady(ctx, o.StartTimeout); err != nil {
		s.Close()
		return nil, s.proc.StartFailed("the Temporal server", err)
	}
	return s, nil
}

// environ is the environment of the server and of the CLI commands, built from nothing, so
// that no variable of the caller's (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*,
// TEMPORAL_API_KEY...) and no config file in the caller's HOME can change what the tests get.
// The dev server also writes its cluster id under HOME (.config/temporalio): a folder of its own.
func (s *Server) environ() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.home,
		"TEMPORAL_ADDRESS=" + s.Address,
	}
}

// waitReady polls until every namespace is described over HTTP and the gRPC health check says
// SERVING, the server exits, or within passes.
func (s *Server) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("not polled yet")
	for {
		if last = s.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return errors.New("the Temporal server exited at start")
		case <-ctx.Done():
			return fmt.Errorf("the Temporal server was not ready within %s (last: %v)", within, last)
		case <-tick.C:
		}
	}
}

// ready checks the cheap thing first: the HTTP API answers for every namespace (which also
// means they are created); only then is the CLI run for the gRPC health check, the endpoint
// SDK clients and workers use.
func (s *Server) ready(ctx context.Context) error {
	for _, ns := range s.Namespaces {
		if _, err := s.DescribeNamespace(ctx, ns); err != nil {
			return err
		}
	}
	out, err := s.CLI(ctx, "operator", "cluster", "health", "--command-timeout", "5s")
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), "SERVING") {
		return fmt.Errorf("temporal operator cluster health answered %q", bytes.TrimSpace(out))
	}
	return nil
}

// Namespace is what the frontend's HTTP API says of a namespace (DescribeNamespaceResponse).
type Namespace struct {
	Info struct {
		Name  string `json:"name"`
		State string `json:"state"`
		ID    string `json:"id"`
	} `json:"namespaceInfo"`
	Config struct {
		Retention string `json:"workflowExecutionRetentionTtl"`
	} `json:"config"`
}

// ErrNotFound is answered for a namespace the server does not have.
var ErrNotFound = errors.New("no such namespace")

// DescribeNamespace asks the frontend's HTTP API, GET /api/v1/namespaces/{name}.
func (s *Server) DescribeNamespace(ctx context.Context, name string) (Namespace, error) {
	var ns Namespace
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL+"/api/v1/namespaces/"+url.PathEscape(name), nil)
	if err != nil {
		return ns, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return ns, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return ns, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	default:
		return ns, fmt.Errorf("describing namespace %q: HTTP %d: %s", name, resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &ns); err != nil {
		return ns, fmt.Errorf("decoding namespace %q: %w", name, err)
	}
	return ns, nil
}

// Command is the Temporal CLI (the same binary) set to talk to this server: TEMPORAL_ADDRESS
// is its frontend, and nothing else of the caller's environment or HOME reaches it.
func (s *Server) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.environ()
	return cmd
}

// CLI runs the Temporal CLI against this server and answers its standard output; a failure
// carries its standard error.
func (s *Server) CLI(ctx context.Context, args ...string) ([]byte, error) {
	cmd := s.Command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("temporal %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Close stops the server (SIGTERM, then SIGKILL after 10s); the in-memory store goes with it.
func (s *Server) Close() {
	s.proc.Stop()
	os.RemoveAll(s.home)
}

// Log is the server's output so far, for a failing test to show.
func (s *Server) Log() string { return s.proc.Log() }
