package pecreds

import (
	"context"
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
						"pending":            {Type: framework.TypeInt, Description: "Events waiting for delivery.", Required: true},
						"delivered":          {Type: framework.TypeInt, Description: "Events delivered since the mount was created.", Required: true},
						"dead":               {Type: framework.TypeInt, Description: "Events still undelivered after the limit (24h), kept until notify/retry.", Required: true},
						"oldest_pending_age": {Type: framework.TypeInt, Description: "Seconds since the oldest pending event was made; 0 when none.", Required: true},
						"last_error":         {Type: framework.TypeString, Description: "The last delivery failure.", Required: true},
						"notify_url":         {Type: framework.TypeString, Description: "Where events go; empty when notifications are off.", Required: true},
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
					}}}},
				},
			},
			HelpSynopsis:    "Queue the dead notifications for delivery again.",
			HelpDescription: "Every dead event is queued again, with its id, in its place in its process's order; its dead limit counts from now.",
		},
	}
}

func (b *backend) pathNotifyStatus(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	events, err := loadOutbox(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	stats, err := b.notifier.getStats(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c := outbox.Count(events)
	age := int64(0)
	if !c.OldestPending.IsZero() {
		age = int64(time.Since(c.OldestPending).Seconds())
	}
	pending, dead := c.Pending, c.Dead
	return &logical.Response{Data: map[string]any{
		"pending": pending, "delivered": stats.Delivered, "dead": dead,
		"oldest_pending_age": age, "last_error": stats.LastError, "notify_url": cfg.NotifyURL,
	}}, nil
}

func (b *backend) pathNotifyRetry(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	events, err := loadOutbox(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	requeued := outbox.Retry(events, time.Now().UTC())
	for _, ev := range requeued {
		if err := putOutboxEvent(ctx, req.Storage, ev); err != nil {
			return nil, err
		}
	}
	b.notifier.poke()
	return &logical.Response{Data: map[string]any{"requeued": len(requeued)}}, nil
}

const notifyHelpDescription = `
With config's notify_url set, every task-created, task-completed, task-cancelled, process-broken
and process-resumed event is written to an outbox in the request that changes the state, and the
active node delivers it at least once, in order per process, as a JSON POST:

  {"id", "type", "time", "process_id", "task_id", "service", "owner", "owner_entity_id", "reason"}

with the headers X-Pecreds-Event-Id (the same on every retry: drop duplicates by it) and
X-Pecreds-Signature: sha256=<hex HMAC-SHA256 of the body under notify_secret>. A failed delivery
(no connection, no answer within notify_timeout, or an answer that is not 2xx) is retried with
backoff from 1s to 10m; an event still undelivered 24 hours after it was made is kept as dead
until notify/retry. A process's later events wait while an earlier one is pending.

  $ vault read pecreds/notify/status
  $ vault write -f pecreds/notify/retry
`
