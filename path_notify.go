package pecreds

import (
	"context"
	"crypto/rand"

	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

func pathNotify(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "notify/status$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "notify-status"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathNotifyStatus,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"pending":             {Type: framework.TypeInt, Description: "Events waiting for delivery.", Required: true},
						"delivered":           {Type: framework.TypeInt, Description: "Events delivered since the mount was created.", Required: true},
						"dead":                {Type: framework.TypeInt, Description: "Events still undelivered after the limit (24h), kept until notify/retry.", Required: true},
						"oldest_pending_age":  {Type: framework.TypeString, Description: "How long ago the oldest pending event was made, as a duration such as 3m12s; 0s when none.", Required: true},
						"overflowed":          {Type: framework.TypeInt, Description: "Events lost to the bound (notify_max_events): new ones not kept, and dead ones dropped to make room. When it grows, reconcile by listing task/.", Required: true},
						"last_error":          {Type: framework.TypeString, Description: "The last delivery failure, at last_error_time; a delivery since (last_delivered_time later) means it has passed.", Required: true},
						"last_error_time":     {Type: framework.TypeString, Description: "When the last delivery failed (RFC 3339); empty when none has.", Required: true},
						"last_delivered_time": {Type: framework.TypeString, Description: "When the last event was delivered (RFC 3339); empty when none has been.", Required: true},
						"notify_url":          {Type: framework.TypeString, Description: "Where events go; empty when notifications are off.", Required: true},
					}}}},
				},
			},
			HelpSynopsis:    "Show the Task Manager webhook outbox.",
			HelpDescription: notifyHelpDescription,
		},
		{
			Pattern:        "notify/retry$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "retry", OperationSuffix: "dead-notifications"},
			ExistenceCheck: actionExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathNotifyRetry,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"requeued": {Type: framework.TypeInt, Description: "Dead events queued for delivery again.", Required: true},
						"due_now":  {Type: framework.TypeInt, Description: "Pending events that were waiting out their backoff after a failed delivery, now sent at once.", Required: true},
					}}}},
				},
			},
			HelpSynopsis:    "Send the pending notifications now, and queue the dead ones again.",
			HelpDescription: "Every dead event is queued again, with its id, in its place in its process's order; its dead limit counts from now. Pending events waiting out their backoff after a failed delivery (up to 10m) are sent at once: call it once the receiver is back.",
		},
		{
			Pattern:        "notify/rotate-secret$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "rotate", OperationSuffix: "notify-secret"},
			ExistenceCheck: actionExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathNotifyRotateSecret,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"notify_secret":         {Type: framework.TypeString, Description: "The new signing secret (whsec_...), answered this once: configure the receiver with it.", Required: true, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
						"previous_secret_until": {Type: framework.TypeString, Description: "Until when the replaced secret keeps signing alongside (RFC 3339); empty when there was none or the overlap is 0.", Required: true},
					}}}},
				},
			},
			HelpSynopsis:    "Make a new webhook signing secret; the old one keeps signing for the overlap.",
			HelpDescription: rotateSecretHelpDescription,
		},
	}
}

func (b *backend) pathNotifyStatus(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := b.activeOnly(); err != nil {
		return nil, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c, stats, err := b.notifier.counts(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	age := time.Duration(0)
	if !c.OldestPending.IsZero() {
		age = b.deps.now().Sub(c.OldestPending)
	}
	resp := &logical.Response{Data: map[string]any{
		"pending": c.Pending, "delivered": stats.Delivered, "dead": c.Dead, "overflowed": stats.Overflowed,
		"oldest_pending_age": formatDuration(age), "last_error": stats.LastError, "last_error_time": formatTime(stats.LastErrorTime),
		"last_delivered_time": formatTime(stats.LastDelivered), "notify_url": cfg.NotifyURL,
	}}
	if w := cfg.oldFormSecretWarning(b.deps.now()); w != "" {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathNotifyRetry(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	requeued, err := b.notifier.retry(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	dueNow, err := b.notifier.hurry(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"requeued": requeued, "due_now": dueNow}}, nil
}

// pathNotifyRotateSecret makes a new signing secret and answers it, once; the one it replaces
// keeps signing alongside for notify_secret_overlap.
func (b *backend) pathNotifyRotateSecret(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.configLock.Lock()
	defer b.configLock.Unlock()
	current, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	secret, err := outbox.NewSecret(rand.Reader)
	if err != nil {
		return nil, err
	}
	cfg := *current
	now := b.deps.now()
	cfg.setNotifySecret(secret, now)
	if err := b.putConfig(ctx, req.Storage, &cfg); err != nil {
		return nil, err
	}
	b.Logger().Info("notify_secret rotated", "previous_secret_until", cfg.previousSecretUntil(now))
	return &logical.Response{Data: map[string]any{"notify_secret": secret, "previous_secret_until": cfg.previousSecretUntil(now)}}, nil
}

const notifyHelpDescription = `
With config's notify_url set, every task-created, task-completed, task-cancelled, process-broken
and process-resumed event is written to an outbox in the request that changes the state, and the
active node delivers it at least once, in order per process, as a JSON POST:

  {"id", "type", "time", "process_id", "task_id", "service", "owner", "owner_entity_id", "reason"}

signed per Standard Webhooks v1 (standardwebhooks.com), so the receiver verifies with any of its
reference libraries: webhook-id (the event id, the same on every retry: drop duplicates by it),
webhook-timestamp (Unix seconds of this attempt: reject one more than 5 minutes off) and
webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> under notify_secret
(whsec_...); during a rotation's overlap, two space-separated signatures, new and previous.

A failed delivery (no connection, no answer within notify_timeout, or an answer that is not 2xx)
is retried with backoff from 1s to 10m; an event still undelivered 24 hours after it was made is
kept as dead until notify/retry. A write of config that changes notify_url, and notify/retry, send
the pending events at once instead of after their backoff. A process's later events wait while an earlier one is pending;
up to notify_concurrency processes are served at once. The outbox holds at most
notify_max_events: when full, the oldest dead event goes; with none dead a new event is not kept
(the state change still happens); either loss is counted under overflowed. The Task Manager reconciles by
listing task/ when it starts and when overflowed grows.

  $ vault read pecreds/notify/status
  $ vault write -f pecreds/notify/retry
  $ vault write -f pecreds/notify/rotate-secret
`

const rotateSecretHelpDescription = `
Makes a new Standard Webhooks signing secret (whsec_ + base64 of 32 random bytes), stores it as
notify_secret and answers it this once. For notify_secret_overlap (24h) after, every delivery
carries two signatures, new and previous, so the receiver verifies with either while it switches:
configure the receiver with the new secret within the overlap.

  $ vault write -f -field=notify_secret pecreds/notify/rotate-secret > whsec.txt
`
