package temporal_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// Unit tests of the interceptor in the SDK's test environment (its timers skip ahead), against a
// stand-in for pecreds: no server. The integration tests run the same against real ones.

// unitID is the process of the test environment's workflow run.
var unitID = temporal.ProcessID("default-test-workflow-id", "default-test-run-id")

// standIn answers as pecreds would for one process: a password resolve, a report that breaks it
// (task T-1), reads of its health (running again once fixAfter reads have seen it broken, or
// failed with cancelled), renewals, and its end. It counts what it was asked.
type standIn struct {
	mu        sync.Mutex
	health    string
	fixAfter  int
	cancelled bool
	calls     []string
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/pecreds/process/"+unitID)
	s.calls = append(s.calls, r.Method+" "+path)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/sys/leases/renew":
		_, _ = io.WriteString(w, `{"lease_id": "pecreds/process/`+unitID+`/L1", "renewable": true, "lease_duration": 60}`)
	case r.Method == http.MethodGet && path == "/resolve/crm":
		_, _ = io.WriteString(w, `{"data": {"service": "crm", "source": "definition:orders", "type": "password", "username": "ann", "password": "pw"}}`)
	case r.Method == http.MethodPut && path == "/report":
		s.health = "broken"
		_, _ = io.WriteString(w, `{"data": {"health": "broken", "action": "wait", "task_id": "T-1"}}`)
	case r.Method == http.MethodGet && path == "":
		if s.health == "broken" {
			if s.fixAfter--; s.fixAfter < 0 {
				s.health = map[bool]string{true: "failed", false: "running"}[s.cancelled]
			}
		}
		_, _ = io.WriteString(w, `{"data": {"health": "`+s.health+`", "task_id": "T-1"}}`)
	case r.Method == http.MethodDelete && path == "":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors": []}`)
	}
}

func (s *standIn) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c == call {
			n++
		}
	}
	return n
}

// unitEnv is a test workflow environment whose worker has the interceptor, calling s.
func unitEnv(t *testing.T, s *standIn) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = srv.URL, 0
	v, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := temporal.NewInterceptor(temporal.Options{Pecreds: pecreds.New(v, "pecreds"), LeaseTTL: time.Minute, CheckEvery: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{ic}})
	env.RegisterActivityWithOptions(crmCall, activity.RegisterOptions{Name: "CRM"})
	return env
}

// crmCalls counts crmCall's runs; the first is refused.
var crmCalls struct {
	sync.Mutex
	n int
}

// crmCall resolves the crm's credentials; its first run is refused (AuthFailed), later ones pass.
func crmCall(ctx context.Context) (string, error) {
	creds, err := temporal.Credentials(ctx, "crm")
	if err != nil {
		return "", err
	}
	crmCalls.Lock()
	defer crmCalls.Unlock()
	if crmCalls.n++; crmCalls.n == 1 {
		return "", temporal.AuthFailed("crm", errors.New("401"))
	}
	return "called as " + fmt.Sprint(creds.Fields["username"]), nil
}

func crmWorkflow(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &sdktemporal.RetryPolicy{MaximumAttempts: 3}})
	var r string
	err := workflow.ExecuteActivity(ctx, "CRM").Get(ctx, &r)
	return r, err
}

// startedForAnn sets what a Starter sets: the memo, and the signal with the lease.
func startedForAnn(env *testsuite.TestWorkflowEnvironment, lease string) {
	_ = env.SetMemoOnStart(map[string]any{temporal.MemoKey: "ann"})
	if lease != "" {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(temporal.ProcessSignal, map[string]string{"lease_id": lease})
		}, time.Second)
	}
}

func resetCRM() { crmCalls.Lock(); crmCalls.n = 0; crmCalls.Unlock() }

// The refused call is reported once; the workflow reads the broken process on its timer until
// it runs again, runs the activity again, finishes, and ends the process.
func TestBrokenProcessWaitsThenRunsTheActivityAgain(t *testing.T) {
	resetCRM()
	s := &standIn{health: "running", fixAfter: 2}
	env := unitEnv(t, s)
	startedForAnn(env, "pecreds/process/"+unitID+"/L1")
	env.ExecuteWorkflow(crmWorkflow)
	var got string
	if err := env.GetWorkflowError(); err != nil || env.GetWorkflowResult(&got) != nil || got != "called as ann" {
		t.Fatalf("workflow: %q %v", got, env.GetWorkflowError())
	}
	if s.count("PUT /report") != 1 || s.count("GET ") != 3 || s.count("DELETE ") != 1 || s.count("PUT /v1/sys/leases/renew") < 1 {
		t.Errorf("pecreds was asked %v", s.calls)
	}
	if crmCalls.n != 2 {
		t.Errorf("the activity ran %d times, want 2", crmCalls.n)
	}
}

// A task cancelled meanwhile fails the process: the activity's future fails, not retried.
func TestProcessFailedWhileWaitingFailsTheActivity(t *testing.T) {
	resetCRM()
	s := &standIn{health: "running", cancelled: true}
	env := unitEnv(t, s)
	startedForAnn(env, "pecreds/process/"+unitID+"/L1")
	env.ExecuteWorkflow(crmWorkflow)
	wantFailure(t, env, temporal.FailedErrorType)
	if crmCalls.n != 1 || s.count("DELETE ") != 1 {
		t.Errorf("the activity ran %d times; pecreds was asked %v", crmCalls.n, s.calls)
	}
}

// Without the starter's signal, or with a lease of another process, no user code runs.
func TestWorkflowRunsOnlyWithItsOwnProcess(t *testing.T) {
	for name, lease := range map[string]string{"no signal": "", "another process's lease": "pecreds/process/other/L1"} {
		t.Run(name, func(t *testing.T) {
			resetCRM()
			s := &standIn{health: "running"}
			env := unitEnv(t, s)
			startedForAnn(env, lease)
			env.ExecuteWorkflow(crmWorkflow)
			wantFailure(t, env, temporal.FailedErrorType)
			if crmCalls.n != 0 || len(s.calls) != 0 {
				t.Errorf("the activity ran %d times; pecreds was asked %v", crmCalls.n, s.calls)
			}
		})
	}
}

// A workflow no Starter started is left alone: its activities get no process and report nothing.
func TestWorkflowNotStartedForAUserIsLeftAlone(t *testing.T) {
	resetCRM()
	s := &standIn{health: "running"}
	env := unitEnv(t, s)
	env.ExecuteWorkflow(crmWorkflow)
	wantFailure(t, env, temporal.FailedErrorType)
	if !strings.Contains(env.GetWorkflowError().Error(), "has no process") || len(s.calls) != 0 {
		t.Errorf("workflow error %v; pecreds was asked %v", env.GetWorkflowError(), s.calls)
	}
}

func wantFailure(t *testing.T, env *testsuite.TestWorkflowEnvironment, errType string) {
	t.Helper()
	var app *sdktemporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != errType {
		t.Fatalf("workflow error %v, want a failure of type %s", err, errType)
	}
}
