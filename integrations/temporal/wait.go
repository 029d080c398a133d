package temporal

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// workflowOutbound runs a workflow's activities again once its broken process runs again.
type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	in *workflowInbound
}

// waitDetails are the details of a WaitErrorType failure: the owner's task (empty when an
// operator resumes the process).
type waitDetails struct {
	TaskID string `json:"task_id"`
}

// ExecuteActivity runs the activity; when it ends with WaitErrorType (its process broke), the
// workflow waits until the process runs again and runs the activity again, as often as it breaks.
// Any other outcome is the activity's own.
func (o *workflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	return o.repaired(ctx, activityType, func() workflow.Future { return o.Next.ExecuteActivity(ctx, activityType, args...) })
}

// ExecuteLocalActivity does the same for a local activity, but the interceptor's own (named by
// their functions), which never wait.
func (o *workflowOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	switch activityType {
	case "pecredsRenewLease", "pecredsEndProcess", "pecredsProcessHealth":
		return o.Next.ExecuteLocalActivity(ctx, activityType, args...)
	}
	return o.repaired(ctx, activityType, func() workflow.Future { return o.Next.ExecuteLocalActivity(ctx, activityType, args...) })
}

// repaired runs execute at once (so the workflow's commands come in the order its code gives
// them), and again after each wait for the process; its future is the last run's outcome.
func (o *workflowOutbound) repaired(ctx workflow.Context, activityType string, execute func() workflow.Future) workflow.Future {
	if o.in.status.ProcessID == "" {
		return execute()
	}
	// The header tells the activity's side that it runs for this process (an id, no secret).
	if p, err := converter.GetDefaultDataConverter().ToPayload(o.in.status.ProcessID); err == nil {
		interceptor.WorkflowHeader(ctx)[processHeader] = p
	}
	f := execute()
	future, settable := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			err := f.Get(ctx, nil)
			var app *sdktemporal.ApplicationError
			if !errors.As(err, &app) || app.Type() != WaitErrorType {
				settable.Chain(f)
				return
			}
			var d waitDetails
			_ = app.Details(&d)
			if err := o.in.waitRunning(ctx, activityType, d.TaskID); err != nil {
				settable.SetError(err)
				return
			}
			f = execute()
		}
	})
	return future
}

// waitRunning waits until the workflow's process runs again: it reads the process's health now,
// then after every CheckEvery or ResumeSignal. A failed or ended process is a non-retryable
// error; so is the workflow's cancellation (its own error).
func (w *workflowInbound) waitRunning(ctx workflow.Context, activityType, task string) error {
	resume := workflow.GetSignalChannel(ctx, ResumeSignal)
	logger := workflow.GetLogger(ctx)
	logger.Info("pecreds: the process is broken; waiting for its owner's task", "process", w.status.ProcessID, "task", task, "activity", activityType)
	defer workflow.SetCurrentDetails(ctx, "")
	for {
		var st Status
		err := workflow.ExecuteLocalActivity(w.root.local(ctx, "read the process's health"), w.root.pecredsProcessHealth, w.status.ProcessID).Get(ctx, &st)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			w.status = st
			switch st.Health {
			case "running":
				logger.Info("pecreds: the process runs again; running the activity again", "process", st.ProcessID, "activity", activityType)
				return nil
			case "failed":
				return sdktemporal.NewNonRetryableApplicationError("pecreds: process "+st.ProcessID+" failed", FailedErrorType, nil)
			}
			task = st.TaskID
		}
		workflow.SetCurrentDetails(ctx, waitingDetails(w.status.ProcessID, task, activityType))
		timerCtx, cancel := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(resume, func(c workflow.ReceiveChannel, _ bool) {
			for c.ReceiveAsync(nil) { // one look answers every wake-up sent so far
			}
		})
		sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, w.root.o.CheckEvery,
			workflow.TimerOptions{Summary: "pecreds: waiting for task " + task}), func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
	}
}

// waitingDetails is the workflow's current details while it waits (Markdown, as Temporal's UI
// shows them).
func waitingDetails(process, task, activityType string) string {
	if task == "" {
		return fmt.Sprintf("**pecreds**: process `%s` is broken; activity `%s` runs again once an operator resumes it.", process, activityType)
	}
	return fmt.Sprintf("**pecreds**: process `%s` is broken; activity `%s` runs again once its owner completes task `%s`.", process, activityType, task)
}
