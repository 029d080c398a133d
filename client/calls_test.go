package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// answering is a fakeVault that answers requests for path with status and body, and leaves the
// others to the fake's defaults. A zero status is 200.
func answering(path string, status int, body func() string) *fakeVault {
	return &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path || (r.Method == http.MethodPut && path == "/v1/pecreds/process/p") {
			return false
		}
		if status != 0 {
			w.WriteHeader(status)
		}
		_, _ = io.WriteString(w, body())
		return true
	}}
}

// A resolve that finds nothing usable is a *BrokenError when the process is broken now (the
// owner's task named), and stays a *BadRequestError when it runs.
func TestResolveOfABrokenProcessIsBrokenError(t *testing.T) {
	for _, tc := range []struct {
		health, task string
		broken       bool
	}{{"broken", "T-7", true}, {"broken", "", true}, {"running", "", false}} {
		f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
			switch r.URL.Path {
			case "/v1/pecreds/process/p/resolve/crm":
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"errors": ["no usable credential for service \"crm\""]}`)
			case "/v1/pecreds/process/p":
				if r.Method != http.MethodGet {
					return false
				}
				_, _ = io.WriteString(w, `{"data": {"health": "`+tc.health+`", "health_reason": "current credentials lost", "task_id": "`+tc.task+`"}}`)
			default:
				return false
			}
			return true
		}}
		_, p := start(t, f)
		_, err := p.Resolve(context.Background(), "crm")
		var broken *client.BrokenError
		var bad *client.BadRequestError
		switch {
		case tc.broken && (!errors.As(err, &broken) || broken.TaskID != tc.task || broken.ProcessID != "p"):
			t.Errorf("%s process: %v", tc.health, err)
		case tc.broken && (!strings.Contains(err.Error(), "current credentials lost") || (tc.task == "") != strings.Contains(err.Error(), "an operator resumes it")):
			t.Errorf("the message: %v", err)
		case !tc.broken && !errors.As(err, &bad):
			t.Errorf("a running process: %v", err)
		}
	}
}

// Vault's 403 and 404 are the package's typed errors; an empty answer to a process read is
// ErrNotFound.
func TestTypedErrors(t *testing.T) {
	ctx := context.Background()
	for status, want := range map[int]error{http.StatusForbidden: client.ErrPermissionDenied, http.StatusNotFound: client.ErrNotFound} {
		_, p := start(t, answering("/v1/pecreds/process/p/report", status, func() string { return `{"errors": ["nope"]}` }))
		if _, err := p.Report(ctx, "crm", client.Forbidden); !errors.Is(err, want) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("a %d: %v, want %v", status, err, want)
		}
	}
	_, p := start(t, &fakeVault{})
	if _, err := p.State(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("an empty process read: %v", err)
	}
	if err := p.AddRuntime(ctx, []map[string]any{{"name": "crm"}}); err != nil {
		t.Errorf("add runtime: %v", err)
	}
}

// What a process read and a report answer reach State and Verdict.
func TestStateAndVerdict(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/pecreds/process/p":
			_, _ = io.WriteString(w, `{"data": {"health": "broken", "health_reason": "r", "task_id": "T-1", "current_credentials": "expired"}}`)
		case r.URL.Path == "/v1/pecreds/process/p/report":
			_, _ = io.WriteString(w, `{"data": {"health": "broken", "action": "wait", "task_id": "T-1"}}`)
		default:
			return false
		}
		return true
	}}
	_, p := start(t, f)
	ctx := context.Background()
	st, err := p.State(ctx)
	if err != nil || *st != (client.State{Health: "broken", HealthReason: "r", TaskID: "T-1", CurrentCredentials: "expired"}) {
		t.Errorf("state %+v %v", st, err)
	}
	v, err := p.Report(ctx, "crm", client.CredentialsExpired)
	if err != nil || *v != (client.Verdict{Health: "broken", Action: client.ActionWait, TaskID: "T-1"}) {
		t.Errorf("verdict %+v %v", v, err)
	}
	last := f.requests()[len(f.requests())-1]
	if last.body["service"] != "crm" || last.body["error"] != client.CredentialsExpired {
		t.Errorf("report body %v", last.body)
	}
}

// WaitRunning returns when the process runs, is an error naming the reason when it failed, and
// ends with its context. (Each read but the last wakes it, so it never sits out a backoff.)
func TestWaitRunning(t *testing.T) {
	healths := func(p **client.Process, list ...string) *fakeVault {
		var reads atomic.Int32
		return answering("/v1/pecreds/process/p", 0, func() string {
			n := int(reads.Add(1)) - 1
			if n < len(list)-1 {
				(*p).Wake() // the webhook told the engine: look again now, not after the backoff
			}
			return `{"data": {"health": "` + list[min(n, len(list)-1)] + `", "health_reason": "forbidden on crm"}}`
		})
	}
	ctx := context.Background()
	var p *client.Process
	_, p = start(t, healths(&p, "broken", "broken", "running"))
	if err := p.WaitRunning(ctx); err != nil {
		t.Errorf("broken, then running: %v", err)
	}
	_, p = start(t, healths(&p, "broken", "failed"))
	if err := p.WaitRunning(ctx); err == nil || !strings.Contains(err.Error(), "failed (forbidden on crm)") {
		t.Errorf("broken, then failed: %v", err)
	}
	_, p = start(t, healths(&p, "broken"))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond) // shorter than the first backoff
	defer cancel()
	if err := p.WaitRunning(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("broken until the context ends: %v", err)
	}
}

// Start sends what it is given (a field without a value left out), and refuses an answer without
// a lease.
func TestStartSendsItsInputAndNeedsALease(t *testing.T) {
	f := &fakeVault{}
	c, _ := start(t, f)
	ctx := context.Background()
	p, err := c.Start(ctx, client.StartInput{ID: "p", Definition: "orders", Owner: "ann", OwnerEntityID: "ent-ann",
		Current: client.Password("ann", "pw"), TTL: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	body := f.requests()[len(f.requests())-1].body
	current, _ := body["current"].(map[string]any)
	if body["definition"] != "orders" || body["owner"] != "ann" || body["owner_entity_id"] != "ent-ann" ||
		body["ttl"] != float64(90) || current["type"] != "password" || current["password"] != "pw" {
		t.Errorf("start body %v", body)
	}
	if _, err := c.Start(ctx, client.StartInput{ID: "q"}); err == nil || !strings.Contains(err.Error(), "without a lease") {
		t.Errorf("a start answered without a lease: %v", err)
	}
}
