package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Broken processes: the engine reports a failed call, config.error_health_mapping decides the
// health, a failure of the user's own credentials opens a task for the owner, and an operator
// resumes a process broken by a technical credential.

// actionFor is what the engine should do at a health.
func actionFor(health string) string {
	switch health {
	case lifecycle.Running:
		return "retry"
	case lifecycle.Broken:
		return "wait"
	}
	return "abort"
}

func pathProcessReport(b *backend) []*framework.Path {
	idField := &framework.FieldSchema{Type: framework.TypeString, Description: "The process id."}
	return []*framework.Path{
		{
			Pattern:        "process/" + nameSegment("id") + "/report$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "report", OperationSuffix: "failure"},
			ExistenceCheck: actionExists,
			Fields: map[string]*framework.FieldSchema{
				"id":      idField,
				"service": {Type: framework.TypeString, Description: "The service whose call failed; required."},
				"error": {Type: framework.TypeString, Description: "The error class: auth_failed, credentials_expired, credentials_unavailable, " +
					"forbidden, unavailable, or a class named in config's error_health_mapping; required. Any other word is a 400 that lists the known classes. config.error_health_mapping maps it to a health."},
				"message": {Type: framework.TypeString, Description: "Free text about the failure, for the engine's own records, at most 1 KiB; it is neither stored nor logged. Defaults to empty."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathProcessReport,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"health":  {Type: framework.TypeString, Description: "running, broken or failed.", Required: true},
						"action":  {Type: framework.TypeString, Description: "retry, wait (for the owner's task, or an operator) or abort.", Required: true},
						"task_id": {Type: framework.TypeString, Description: "The open task, when the owner was asked for new credentials.", Required: true},
					}}}},
				},
			},
			HelpSynopsis:    "Report a failed call: answers the process's health and what the engine should do.",
			HelpDescription: reportHelpDescription,
		},
		{
			Pattern:        "process/" + nameSegment("id") + "/resume$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "resume", OperationSuffix: "process"},
			ExistenceCheck: actionExists,
			Fields:         map[string]*framework.FieldSchema{"id": idField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  named("id", "process id", b.pathProcessResume),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: processResponseFields}}},
				},
			},
			HelpSynopsis:    "Set a broken process running again (an operator's act).",
			HelpDescription: "For a process broken by a technical or registry credential, once the credential is fixed. A process broken by its current credentials resumes through its task instead, so resuming it is a 400 naming the task. Completing a task never resumes what a technical credential broke: a process the owner was asked about early (preflight, reason expiring) and that a technical credential then broke stays broken after the task is completed, until this resume; a task still open then stays open.",
		},
	}
}

func (b *backend) pathProcessReport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, service, class := d.Get("id").(string), d.Get("service").(string), d.Get("error").(string)
	for _, check := range []struct{ what, v string }{{"process id", id}, {"service", service}, {"error", class}} {
		if err := credential.ValidateName(check.what, check.v); err != nil {
			return badRequest(err)
		}
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	health, known := cfg.healthFor(class)
	if !known {
		return badRequest(fmt.Errorf("error: %q is not a known error class: use one of %s (an operator adds classes in config's error_health_mapping)",
			class, strings.Join(cfg.errorClasses(), ", ")))
	}
	// One config for the whole report: the mapping above, the layers, the verdict, the change.
	w := b.writerWith(req.Storage, cfg)
	if class == "auth_failed" || class == "credentials_expired" {
		if resp, err := b.refreshReported(ctx, w, id, service); resp != nil || err != nil {
			return resp, err
		}
	}
	st, unlock, err := w.lock(ctx, id)
	defer unlock()
	if err != nil {
		return nil, err
	}
	if st.Process == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("process %q does not exist", id))
	}
	res, err := b.resolveProcess(ctx, w.s, w.cfg, st.Process, resolve.Query{Service: service}, false)
	if errors.Is(err, resolve.ErrNoService) {
		return badRequest(fmt.Errorf("service: process %q has no service %q in any layer", id, service))
	}
	if err != nil {
		return nil, err
	}
	if st.Process.Health == lifecycle.Failed {
		return reportAnswer(st.Process), nil
	}
	ev, err := b.reportVerdict(ctx, w, st.Process, res, service, class, health)
	if err != nil {
		return nil, err
	}
	next, err := w.change(ctx, st, ev)
	if err != nil {
		return nil, err
	}
	return reportAnswer(next.Process), nil
}

// reportVerdict decides what a reported failure means for the process, as a lifecycle event:
// internal/lifecycle decides from the credential the call was served with and, for an OAuth2
// technical token, the state refreshReported left.
func (b *backend) reportVerdict(ctx context.Context, w *writer, p *lifecycle.Process, res *resolve.Resolution, service, class, health string) (lifecycle.Event, error) {
	r := lifecycle.Report{Service: service, Class: class, Mapped: health, CurrentUnusable: res.CurrentUnusable,
		TaskManager: w.cfg.TaskManager, KeepNone: p.KeepCredentials == lifecycle.KeepNone}
	if len(res.Found) > 0 {
		var err error
		if r.Used, r.Token, err = b.usedCredential(ctx, w.s, p, res.Tried[res.Found[0].Index]); err != nil {
			return lifecycle.Event{}, err
		}
	}
	v := lifecycle.DecideReport(r)
	ev := lifecycle.Event{Kind: lifecycle.Failure, Service: service, Reason: class, Health: v.Health, HealthReason: v.Reason, CurrentFailed: v.OpenTask}
	if v.RetryGeneration != 0 {
		ev.Retried = map[string]int{}
		for k, g := range p.Retried {
			ev.Retried[k] = g
		}
		ev.Retried[r.Used.Name] = v.RetryGeneration
	}
	if ev.CurrentFailed {
		id, err := newTaskID()
		if err != nil {
			return ev, err
		}
		ev.NewTaskID = id
	}
	return ev, nil
}

// usedCredential is the credential a reported call was served with, as the decision sees it;
// for an OAuth2 technical credential, with its token as it is now.
func (b *backend) usedCredential(ctx context.Context, s logical.Storage, p *lifecycle.Process, t resolve.Tried) (lifecycle.Used, lifecycle.Token, error) {
	used := lifecycle.Used{Kind: lifecycle.UsedStatic, Index: t.Index, Type: t.Type, Name: t.Name}
	switch t.Type {
	case "current":
		used.Kind = lifecycle.UsedCurrent
		return used, lifecycle.Token{}, nil
	case "technical":
		used.Kind = lifecycle.UsedTechnical
	default:
		return used, lifecycle.Token{}, nil
	}
	e, err := b.getTechnical(ctx, s, t.Name)
	if err != nil || e == nil || !e.rotates() {
		return used, lifecycle.Token{}, err
	}
	used.Rotates = true
	st, err := b.getTokenState(ctx, s, t.Name)
	if err != nil || st == nil {
		return used, lifecycle.Token{}, err
	}
	retried, ok := p.Retried[t.Name]
	return used, lifecycle.Token{Generation: st.Generation, Fresh: st.Valid(b.deps.now()) && st.Failures == 0,
		Retried: ok && retried == st.Generation, LastError: st.LastError}, nil
}

// refreshReported asks once for a fresh token of the OAuth2 technical credential a reported
// failure was served with — before the process is locked, since a token request may take long —
// so that the verdict under the lock finds it. A request still in flight after the token wait is
// a retryable answer, and changes nothing. nil, nil when there is nothing to ask for.
func (b *backend) refreshReported(ctx context.Context, w *writer, id, service string) (*logical.Response, error) {
	began, s := b.deps.now(), w.s
	p, err := b.getProcess(ctx, s, id)
	if err != nil || p == nil || p.Health == lifecycle.Failed {
		return nil, err
	}
	// A token that is not valid now is asked for first, as a resolve would (for a bounded time).
	res, err := b.resolveProcess(ctx, s, w.cfg, p, resolve.Query{Service: service}, true)
	switch {
	case err != nil:
		return nil, nil // the verdict under the lock says why
	case len(res.Found) == 0 && len(res.Pending) > 0:
		return retryAnswer(fmt.Sprintf("process %q: the token request of technical credential %q is still in flight after %s; nothing changed: report again, or retry the call, in a few seconds",
			id, res.Pending[0], b.deps.tokenWait))
	case len(res.Found) == 0:
		return nil, nil // nothing to be had: the verdict under the lock applies the mapping
	}
	used := res.Tried[res.Found[0].Index]
	e, err := b.getTechnical(ctx, s, used.Name)
	if used.Type != "technical" || err != nil || e == nil || !e.rotates() {
		return nil, err
	}
	st, err := b.getTokenState(ctx, s, e.Name)
	if err != nil || st == nil {
		return nil, err
	}
	if retried, ok := p.Retried[e.Name]; ok && retried == st.Generation {
		return nil, nil // the fresh token failed too: the mapping decides
	}
	if !st.LastRefresh.Before(began) {
		return nil, nil // the resolve above just fetched it: that is the fresh token
	}
	_, pending, err := b.awaitToken(ctx, s, w.cfg, e.Name, tokenWant{force: true, after: st.Generation, version: e.Version})
	if err != nil || !pending {
		return nil, err
	}
	return retryAnswer(fmt.Sprintf("process %q: technical credential %q failed, and the request for a fresh token is still in flight after %s; nothing changed: report again, or retry the call, in a few seconds",
		id, e.Name, b.deps.tokenWait))
}

func reportAnswer(p *lifecycle.Process) *logical.Response {
	return &logical.Response{Data: map[string]any{"health": p.Health, "action": actionFor(p.Health), "task_id": p.TaskID}}
}

func (b *backend) pathProcessResume(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	lock := locksutil.LockForKey(b.processLocks, id)
	lock.Lock()
	defer lock.Unlock()
	p, err := b.liveProcess(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	next, err := b.change(ctx, req.Storage, lifecycle.State{Process: p}, lifecycle.Event{Kind: lifecycle.Resume})
	if err != nil {
		return asRefusal(err)
	}
	cur, err := b.getCurrent(ctx, req.Storage, next.Process)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: processResponseData(next.Process, next.Process.CurrentStatus(cur, b.deps.now()))}, nil
}

const reportHelpDescription = `
The engine reports a failed call with the service and an error class. config.error_health_mapping
maps the class to a health — running (action retry), broken (wait) or failed (abort); defaults:
auth_failed, credentials_expired, credentials_unavailable → broken; forbidden → failed;
unavailable → running. A class the operator named in error_health_mapping is known too; any
other word is a 400 that lists the known classes, so a typo never fails a process for good.
A failed process is final: it resolves nothing, and its current credentials are wiped.

  $ vault write pecreds/process/order-42/report service=crm error=auth_failed

- The process's current credentials failed and the mapping says broken: the process is broken and
  its owner gets one task (never two); the answer names it. Without a Task Manager
  (config.task_manager=false) the process fails instead.
- An OAuth2 technical token failed (auth_failed, credentials_expired): the token is re-created
  once and the answer is retry; if the refresh fails, or the fresh token fails again, the mapping
  applies, and a broken process waits for an operator's process/:id/resume (no task: the owner
  cannot fix it).
`
