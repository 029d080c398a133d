package temporal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/interceptor"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
)

// Options configure the worker's interceptor. Pecreds is required; a zero duration takes its
// default.
type Options struct {
	Pecreds *pecreds.Client // the engine host's client of the pecreds mount
	// LeaseTTL is what each renewal extends the process's lease by (1h): a terminated workflow's
	// process ends at most this long after its last renewal.
	LeaseTTL time.Duration
	// RenewEvery spaces the renewals (LeaseTTL/2). Each is a timer and a local activity in the
	// workflow's history: about six events.
	RenewEvery time.Duration
	// CheckEvery spaces the reads of a broken process's health while the workflow waits for its
	// owner's task (1m); ResumeSignal makes it read at once.
	CheckEvery time.Duration
	// StartTimeout bounds the wait for the starter's ProcessSignal (5m); then the workflow fails.
	StartTimeout time.Duration
}

// Interceptor is the worker interceptor (worker.Options.Interceptors): it acts on the workflows
// a Starter started (those whose memo has MemoKey) and on every activity.
type Interceptor struct {
	interceptor.WorkerInterceptorBase
	o Options
}

// NewInterceptor is the interceptor with o's settings.
func NewInterceptor(o Options) (*Interceptor, error) {
	if o.Pecreds == nil {
		return nil, errors.New("pecreds temporal: Options.Pecreds is required")
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = time.Hour
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.LeaseTTL / 2
	}
	if o.RenewEvery >= o.LeaseTTL {
		return nil, fmt.Errorf("pecreds temporal: RenewEvery %s must be shorter than LeaseTTL %s", o.RenewEvery, o.LeaseTTL)
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Minute
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 5 * time.Minute
	}
	return &Interceptor{o: o}, nil
}

// InterceptWorkflow is called by the worker for each workflow execution it runs.
func (i *Interceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, root: i}
}

// Status is what StatusQuery answers: the workflow's process, and while it waits, the task.
type Status struct {
	ProcessID string `json:"process_id"`
	Health    string `json:"health"` // running, broken (waiting for TaskID) or failed
	TaskID    string `json:"task_id,omitempty"`
}

// workflowInbound is one workflow execution's interceptor.
type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	root   *Interceptor
	status Status // ProcessID empty: a workflow not started for a user, left alone
}

func (w *workflowInbound) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return w.Next.Init(&workflowOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, in: w})
}

// ExecuteWorkflow waits for the starter's process, keeps its lease renewed while the workflow
// runs, and ends it when the workflow returns (completed, failed, cancelled or continued as new).
func (w *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	info := workflow.GetInfo(ctx)
	if info.Memo == nil || info.Memo.GetFields()[MemoKey] == nil {
		return w.Next.ExecuteWorkflow(ctx, in)
	}
	id := ProcessID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID)
	lease, err := w.awaitProcess(ctx, id)
	if err != nil {
		return nil, err
	}
	w.status = Status{ProcessID: id, Health: "running"}
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) { return w.status, nil }); err != nil {
		return nil, err
	}
	renewCtx, stopRenewing := workflow.WithCancel(ctx)
	workflow.Go(renewCtx, func(ctx workflow.Context) { w.keepRenewed(ctx, lease) })
	result, err := w.Next.ExecuteWorkflow(ctx, in)
	stopRenewing()
	// Cancelled or not, the workflow's end ends the process.
	endCtx, _ := workflow.NewDisconnectedContext(ctx)
	if eerr := workflow.ExecuteLocalActivity(w.root.local(endCtx, "end the process"), w.root.pecredsEndProcess, id).Get(endCtx, nil); eerr != nil {
		workflow.GetLogger(ctx).Warn("pecreds: ending the process failed; it ends when its lease expires", "process", id, "error", eerr)
	}
	return result, err
}

// awaitProcess waits for the starter's ProcessSignal, at most StartTimeout, and answers the
// lease id it carries.
func (w *workflowInbound) awaitProcess(ctx workflow.Context, id string) (string, error) {
	var started processStarted
	ch := workflow.GetSignalChannel(ctx, ProcessSignal)
	if !ch.ReceiveAsync(&started) {
		timerCtx, cancel := workflow.WithCancel(ctx)
		defer cancel()
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &started) })
		sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, w.root.o.StartTimeout,
			workflow.TimerOptions{Summary: "pecreds: waiting for the starter's process"}), func(workflow.Future) {})
		sel.Select(ctx)
		if err := ctx.Err(); err != nil {
			return "", err
		}
	}
	if started.LeaseID == "" {
		return "", sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"pecreds: no process was started for this run within %s", w.root.o.StartTimeout), FailedErrorType, nil)
	}
	// A lease id is <mount>/process/<id>/<nonce>: this run's own, or none.
	own := w.root.o.Pecreds.Mount() + "/process/" + id + "/"
	if nonce, ok := strings.CutPrefix(started.LeaseID, own); !ok || nonce == "" || strings.Contains(nonce, "/") {
		return "", sdktemporal.NewNonRetryableApplicationError("pecreds: the lease signalled is not this run's process "+id, FailedErrorType, nil)
	}
	return started.LeaseID, nil
}

// keepRenewed renews the lease now (bringing its TTL to LeaseTTL), then every RenewEvery, until
// ctx is cancelled. A failed renewal is logged and tried again at the next.
func (w *workflowInbound) keepRenewed(ctx workflow.Context, lease string) {
	for {
		err := workflow.ExecuteLocalActivity(w.root.local(ctx, "renew the process lease"), w.root.pecredsRenewLease, lease, w.root.o.LeaseTTL).Get(ctx, nil)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			workflow.GetLogger(ctx).Warn("pecreds: renewing the process lease failed", "process", w.status.ProcessID, "error", err)
		}
		if workflow.NewTimerWithOptions(ctx, w.root.o.RenewEvery, workflow.TimerOptions{Summary: "pecreds: next lease renewal"}).Get(ctx, nil) != nil {
			return
		}
	}
}

// local is ctx with the options of the interceptor's own local activities: short, retried a
// few times.
func (i *Interceptor) local(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &sdktemporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
		Summary:             "pecreds: " + summary,
	})
}

// The interceptor's local activities. They carry ids and lease ids, never a credential.

func (i *Interceptor) pecredsRenewLease(ctx context.Context, lease string, ttl time.Duration) (time.Duration, error) {
	return i.o.Pecreds.RenewLease(ctx, lease, ttl)
}

func (i *Interceptor) pecredsEndProcess(ctx context.Context, id string) error {
	return i.o.Pecreds.End(ctx, id)
}

func (i *Interceptor) pecredsProcessHealth(ctx context.Context, id string) (Status, error) {
	st, err := i.o.Pecreds.Process(id).State(ctx)
	if errors.Is(err, pecreds.ErrNotFound) {
		return Status{ProcessID: id, Health: "failed"}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return Status{ProcessID: id, Health: st.Health, TaskID: st.TaskID}, nil
}
