package temporal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

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
	seen     seenDeliveries
}

// A delivery is acted on once: a captured one replayed within the signature's 5 minutes (the
// only window its timestamp allows) is acknowledged and ignored, so replays cannot flood a
// workflow's history with signals. pecreds sends a failed delivery again with the same id, so an
// id is remembered only once its delivery succeeded.
const (
	replayWindow = 10 * time.Minute
	maxSeen      = 100_000
)

// seenDeliveries are the webhook-ids of the deliveries acted on within replayWindow, oldest first.
type seenDeliveries struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []seenDelivery
}

type seenDelivery struct {
	id string
	at time.Time
}

// add remembers id, and says whether it is new.
func (s *seenDeliveries) add(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	for len(s.order) > 0 && (now.Sub(s.order[0].at) > replayWindow || len(s.order) >= maxSeen) {
		if old := s.order[0]; s.at[old.id].Equal(old.at) {
			delete(s.at, old.id) // not when the id was forgotten and seen again since
		}
		s.order = s.order[1:]
	}
	if _, ok := s.at[id]; ok {
		return false
	}
	s.at[id] = now
	s.order = append(s.order, seenDelivery{id: id, at: now})
	return true
}

// forget takes id back: its delivery failed, and pecreds sends it again.
func (s *seenDeliveries) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.at, id) // its place in order goes when it is the oldest
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
	id := r.Header.Get("webhook-id")
	if !b.seen.add(id, time.Now()) {
		w.WriteHeader(http.StatusNoContent) // a replay, or pecreds's retry of one acted on
		return
	}
	if ev.Type == "task-completed" || ev.Type == "process-resumed" {
		var nf *serviceerror.NotFound
		if err := ResumeProcess(r.Context(), b.temporal, ev.ProcessID); err != nil && !errors.As(err, &nf) {
			// Temporal unreachable: pecreds delivers the event again later.
			b.seen.forget(id)
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
