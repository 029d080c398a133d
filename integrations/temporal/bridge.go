package temporal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// WebhookBridge receives pecreds's Task Manager webhook (config notify_url, or a Task Manager
// that forwards its deliveries) and wakes the workflow whose process a task-completed or
// process-resumed event names (ResumeProcess), so that it runs its activity again at once rather
// than at its next check. It verifies every delivery's Standard Webhooks signature and answers
// 401 to one that fails; other events are acknowledged and ignored. Waking is only a hint: the
// workflow reads its process's health from pecreds before it goes on.
type WebhookBridge struct {
	temporal client.Client
	verifier *standardwebhooks.Webhook
}

// NewWebhookBridge is a bridge that signals through c and verifies with the mount's signing
// secret (whsec_..., config notify_secret).
func NewWebhookBridge(c client.Client, secret string) (*WebhookBridge, error) {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, errors.New("pecreds temporal: the signing secret is not a Standard Webhooks secret (whsec_...)")
	}
	return &WebhookBridge{temporal: c, verifier: v}, nil
}

// maxEvent bounds a delivery's body: pecreds's events are at most 4 KiB.
const maxEvent = 64 << 10

func (b *WebhookBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEvent+1))
	if err != nil || len(body) > maxEvent {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if b.verifier.Verify(body, r.Header) != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type      string `json:"type"`
		ProcessID string `json:"process_id"`
	}
	if json.Unmarshal(body, &ev) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if ev.Type == "task-completed" || ev.Type == "process-resumed" {
		var nf *serviceerror.NotFound
		if err := ResumeProcess(r.Context(), b.temporal, ev.ProcessID); err != nil && !errors.As(err, &nf) {
			// Temporal unreachable: pecreds delivers the event again later.
			http.Error(w, "signalling the workflow failed", http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ResumeProcess wakes the workflow run whose process is processID (ProcessID's form), as Resume
// does. A process id holds the run id after its last '.', and before it the workflow id, unless
// ProcessID had to change that; then the run is found by its id. A process that is no run's, or
// a run that has closed, is a *serviceerror.NotFound.
func ResumeProcess(ctx context.Context, c client.Client, processID string) error {
	i := strings.LastIndexByte(processID, '.')
	if i < 1 {
		return serviceerror.NewNotFound("pecreds: " + processID + " is not the process of a workflow run")
	}
	workflowID, runID := processID[:i], processID[i+1:]
	err := Resume(ctx, c, workflowID, runID)
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		return err
	}
	// The run id is letters, digits and '-' ('_' for anything else): safe inside the quotes.
	resp, lerr := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("RunId = '%s'", runID), PageSize: 2})
	if lerr != nil {
		return lerr
	}
	for _, e := range resp.GetExecutions() {
		if run := e.GetExecution(); ProcessID(run.GetWorkflowId(), run.GetRunId()) == processID && run.GetWorkflowId() != workflowID {
			return Resume(ctx, c, run.GetWorkflowId(), run.GetRunId())
		}
	}
	return err
}
