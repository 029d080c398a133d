package temporal_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// fast are the interceptor's settings in the tests: a short lease renewed often, and a broken
// process read every second.
var fast = temporal.Options{LeaseTTL: 15 * time.Second, RenewEvery: 5 * time.Second, CheckEvery: time.Second}

// A workflow for Ann runs three activities against loopback services with her password. Her
// password changes: the second activity's call is refused, the activity reports it, pecreds
// breaks the process and opens Ann's task, and the workflow waits. The worker is restarted while
// it waits. Ann completes her task with her new password; the workflow resumes (at its next
// check, or at once when the Task Manager's bridge signals it), runs the activity again, and
// finishes; its process ends. Nothing of Ann's credentials is in the workflow's history or its
// payloads.
func TestWorkflowForAnnWaitsForHerTaskAcrossAWorkerRestart(t *testing.T) {
	t.Run("resumed at its next check", func(t *testing.T) { annStory(t, "check", fast, false) })
	// Checks an hour apart: only the signal can resume it within the test's few minutes, sent by
	// the webhook bridge when pecreds delivers task-completed. Here the crm's call is a local
	// activity, which waits the same way.
	slow := fast
	slow.CheckEvery = time.Hour
	t.Run("woken by the Task Manager's signal", func(t *testing.T) { annStory(t, "signal", slow, true) })
}

// annStory is the story; with signal, the workflow checks rarely, pecreds's webhook through the
// bridge wakes it, and the refused call is a local activity.
func annStory(t *testing.T, name string, o temporal.Options, signal bool) {
	f := newFixture(t, "story-"+name)
	if signal {
		f.bridgeWebhook(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stopFirst := f.startWorker(t, o)
	id := "ann-order-7-" + name
	if signal { // a workflow id that is no pecreds name: the bridge finds the run by its id
		id = "ann's order 7, " + name
	}
	run := f.startForAnn(t, ctx, id, "order-7", signal)
	process := temporal.ProcessID(run.GetID(), run.GetRunID())
	waitFor(t, time.Minute, "the ledger booked", func() bool { return slices.Equal(f.services.answered("ledger"), []int{200}) })
	if st, err := f.engine.Process(process).State(ctx); err != nil || st.Health != "running" || st.CurrentCredentials != "kept" {
		t.Fatalf("process %s: %+v %v", process, st, err)
	}

	f.services.setPassword("ann-service-password-2")
	if err := f.temporal.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), GoOn, nil); err != nil {
		t.Fatal(err)
	}
	task := f.waitingFor(t, ctx, run)
	cliShowsTask(t, ctx, run, task)

	stopFirst()
	f.startWorker(t, o)
	if _, err := f.ann.Logical().WriteWithContext(ctx, f.mount+"/task/"+task+"/complete", map[string]any{
		"credentials": map[string]any{"type": "password", "username": "ann", "password": "ann-service-password-2"},
	}); err != nil {
		t.Fatalf("Ann completes her task: %v", err)
	}
	var results []string
	if err := run.Get(ctx, &results); err != nil {
		t.Fatalf("the workflow: %v", err)
	}
	if len(results) != 4 || !strings.HasPrefix(results[3], "docs: 200") {
		t.Fatalf("results %q", results)
	}
	if got := f.services.answered("crm"); !slices.Equal(got, []int{401, 200}) {
		t.Errorf("the crm answered %v, want 401 then 200", got)
	}
	waitFor(t, 30*time.Second, "the finished workflow's process ends", func() bool { return f.processGone(ctx, process) })
	noCredentialsInTemporal(t, ctx, f.temporal, run, process)
}

// waitingFor waits until the workflow says it waits for a task (StatusQuery), checks that the
// task is Ann's and that the refused call was reported once and not retried, and answers it.
func (f *fixture) waitingFor(t *testing.T, ctx context.Context, run client.WorkflowRun) string {
	t.Helper()
	var status temporal.Status
	waitFor(t, time.Minute, "the workflow waits for Ann's task", func() bool {
		v, err := f.temporal.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), temporal.StatusQuery)
		return err == nil && v.Get(&status) == nil && status.Health == "broken" && status.TaskID != ""
	})
	mine, err := f.ann.Logical().ListWithContext(ctx, f.mount+"/task/mine")
	if err != nil || mine == nil || !slices.Contains(mine.Data["keys"].([]any), any(status.TaskID)) {
		t.Fatalf("Ann's open tasks %v (%v), want %s", mine, err, status.TaskID)
	}
	if got := f.services.answered("crm"); !slices.Equal(got, []int{401}) {
		t.Fatalf("the crm answered %v, want one 401 (reported, not retried while broken)", got)
	}
	return status.TaskID
}

// A terminated workflow runs no more code: its process ends when the lease it no longer renews
// expires. Before that, the worker has brought the lease down to LeaseTTL.
func TestTerminatedWorkflowsProcessEndsWithItsLease(t *testing.T) {
	f := newFixture(t, "terminated")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f.startWorker(t, fast)
	run := f.startForAnn(t, ctx, "ann-order-8", "order-8", false)
	id := temporal.ProcessID(run.GetID(), run.GetRunID())
	waitFor(t, time.Minute, "the ledger booked", func() bool { return len(f.services.answered("ledger")) == 1 })
	if err := f.temporal.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "the test terminates it"); err != nil {
		t.Fatal(err)
	}
	if f.processGone(ctx, id) {
		t.Fatal("the process ended at once: this test would not show the lease ending it")
	}
	waitFor(t, 2*fast.LeaseTTL+10*time.Second, "the terminated workflow's process ends", func() bool { return f.processGone(ctx, id) })
}

// processGone says whether the process is gone (a read answers 404).
func (f *fixture) processGone(ctx context.Context, id string) bool {
	_, err := f.engine.Process(id).State(ctx)
	return errors.Is(err, pecreds.ErrNotFound)
}

// A process pecreds refuses (here, a definition registry that does not exist) starts no
// workflow for nobody's credentials: the starter terminates the run it started and answers
// pecreds's 400.
func TestStarterTerminatesTheRunWhenPecredsRefusesItsProcess(t *testing.T) {
	f := newFixture(t, "refused")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &temporal.Starter{Temporal: f.temporal, Pecreds: f.engine}
	_, err := s.Start(ctx, temporal.StartOptions{
		Workflow:   client.StartWorkflowOptions{ID: "ann-order-9", TaskQueue: f.queue},
		Definition: "no-such-registry", Owner: "ann", OwnerEntityID: f.annEntity,
		Credentials: pecreds.Password("ann", "ann-service-password-1"),
	}, AnnOrder, "order-9", false)
	var bad *pecreds.BadRequestError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "no-such-registry") {
		t.Fatalf("start: %v, want pecreds's 400 naming the registry", err)
	}
	if strings.Contains(err.Error(), "ann-service-password-1") {
		t.Fatal("the error holds Ann's password")
	}
	d, err := f.temporal.DescribeWorkflowExecution(ctx, "ann-order-9", "")
	if err != nil {
		t.Fatal(err)
	}
	if st := d.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Fatalf("the run is %s, want terminated", st)
	}
}
