package temporal

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdktemporal "go.temporal.io/sdk/temporal"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
)

// processKey is the context key of an activity's process.
type processKey struct{}

// InterceptActivity is called by the worker for each activity it runs: the activity's context
// carries its workflow's process, and an AuthFailed error is reported.
func (i *Interceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, root: i}
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	root *Interceptor
}

// processHeader is the activity header by which a workflow's interceptor says that the activity
// runs for its process: the process id.
const processHeader = "pecreds-process"

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	// Only an activity of a workflow started for a user, and only for its own run's process.
	run := activity.GetInfo(ctx).WorkflowExecution
	var id string
	h := interceptor.Header(ctx)[processHeader]
	if h == nil || converter.GetDefaultDataConverter().FromPayload(h, &id) != nil || id != ProcessID(run.ID, run.RunID) {
		return a.Next.ExecuteActivity(ctx, in)
	}
	p := a.root.o.Pecreds.Process(id)
	result, err := a.Next.ExecuteActivity(context.WithValue(ctx, processKey{}, p), in)
	if err != nil {
		err = a.outcome(ctx, p, err)
	}
	return result, err
}

// outcome is the activity's error as the workflow's interceptor reads it: a service's failure
// (AuthFailed, ServiceFailed) is reported to pecreds and answered by its verdict; a process found
// broken is WaitErrorType; anything else is left as it is.
func (a *activityInbound) outcome(ctx context.Context, p *pecreds.Process, err error) error {
	var broken *pecreds.BrokenError
	if errors.As(err, &broken) {
		return waitError(p.ID, broken.TaskID)
	}
	var failed *ServiceError
	if !errors.As(err, &failed) {
		return err
	}
	verdict, rerr := p.Report(ctx, failed.Service, failed.Class)
	if rerr != nil {
		// Not reported: the attempt fails as retryable, and the next attempt meets the service again.
		return sdktemporal.NewApplicationError(fmt.Sprintf("pecreds: reporting %s of %s failed: %v", failed.Class, failed.Service, rerr), RetryErrorType)
	}
	activity.GetLogger(ctx).Info("pecreds: a service refused the process's credentials; reported",
		"process", p.ID, "service", failed.Service, "error", failed.Class, "action", verdict.Action, "task", verdict.TaskID)
	switch verdict.Action {
	case pecreds.ActionWait:
		return waitError(p.ID, verdict.TaskID)
	case pecreds.ActionAbort:
		return sdktemporal.NewNonRetryableApplicationError(fmt.Sprintf("pecreds: process %s failed: %s answered %s", p.ID, failed.Service, failed.Class), FailedErrorType, nil)
	}
	return sdktemporal.NewApplicationError(fmt.Sprintf("pecreds: %s answered %s; retrying with credentials resolved again", failed.Service, failed.Class), RetryErrorType)
}

// waitError ends the activity's attempts: the workflow waits for the task, then runs it again.
func waitError(process, task string) error {
	msg := fmt.Sprintf("pecreds: process %s is broken: it waits for its owner's task %s", process, task)
	if task == "" {
		msg = fmt.Sprintf("pecreds: process %s is broken: an operator resumes it", process)
	}
	return sdktemporal.NewNonRetryableApplicationError(msg, WaitErrorType, nil, waitDetails{TaskID: task})
}

// Credentials answers the credentials the activity's process resolves for service: the fields
// (username and password, token, key...) are in Fields. Keep them in the activity: never return
// them, log them, or put them in an error (a Credentials printed, returned or logged whole names
// its fields, never their values). A process broken meanwhile is a *pecreds.BrokenError,
// which the interceptor turns into a wait.
func Credentials(ctx context.Context, service string, opts ...pecreds.ResolveOption) (*pecreds.Credentials, error) {
	p, err := process(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := p.Resolve(ctx, service, opts...)
	return creds, ended(p, err)
}

// CredentialsForURL answers the credentials for the URL the activity is about to call (the
// service whose url matches it best), as Credentials does for a service's name.
func CredentialsForURL(ctx context.Context, url string, opts ...pecreds.ResolveOption) (*pecreds.Credentials, error) {
	p, err := process(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := p.ResolveURL(ctx, url, opts...)
	return creds, ended(p, err)
}

// ended is a resolve's error, or when the process is gone (ended by an operator, or its lease
// expired) a non-retryable failure: no attempt can succeed.
func ended(p *pecreds.Process, err error) error {
	if errors.Is(err, pecreds.ErrNotFound) {
		return sdktemporal.NewNonRetryableApplicationError("pecreds: process "+p.ID+" has ended", FailedErrorType, nil)
	}
	return err
}

// ProcessOf is the activity's process (its workflow's), for what Credentials does not cover
// (runtime credentials, preflight).
func ProcessOf(ctx context.Context) (*pecreds.Process, error) { return process(ctx) }

func process(ctx context.Context) (*pecreds.Process, error) {
	p, ok := ctx.Value(processKey{}).(*pecreds.Process)
	if !ok {
		return nil, sdktemporal.NewNonRetryableApplicationError(
			"pecreds: this activity has no process: run the worker with the pecreds interceptor, and call it from a workflow a Starter started", FailedErrorType, nil)
	}
	return p, nil
}

// ServiceError says that a service refused the credentials pecreds resolved: the interceptor
// reports Class for Service, and pecreds's verdict decides what happens to the activity. Its
// message names the service and the class only.
type ServiceError struct {
	Service string
	Class   string // pecreds.AuthFailed, pecreds.CredentialsExpired, pecreds.Forbidden...
	Err     error  // the call's own error, kept out of Temporal
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s refused the credentials (%s)", e.Service, e.Class)
}

func (e *ServiceError) Unwrap() error { return e.Err }

// AuthFailed is the error an activity returns when service refused its credentials (an HTTP
// 401, a failed login).
func AuthFailed(service string, err error) error {
	return &ServiceError{Service: service, Class: pecreds.AuthFailed, Err: err}
}

// ServiceFailed is the error an activity returns when service failed with another class of
// pecreds's (pecreds.CredentialsExpired, pecreds.Forbidden, pecreds.Unavailable, or one the
// operator mapped).
func ServiceFailed(service, class string, err error) error {
	return &ServiceError{Service: service, Class: class, Err: err}
}
