package pecreds

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Vault event types this plugin emits (with the prefix "pecreds/"). Metadata never carries a
// secret. The process and task ones also go to the Task Manager (notify.go).
const (
	eventTechnicalRefreshed     = "pecreds/technical-refreshed"
	eventTechnicalRefreshFailed = "pecreds/technical-refresh-failed"
	eventProcessBroken          = "process-broken"
	eventProcessResumed         = "process-resumed"
	eventTaskCreated            = "task-created"
	eventTaskCompleted          = "task-completed"
	eventTaskCancelled          = "task-cancelled"
)

// emit sends a Vault event. Community Edition has no event system (ErrNoEvents): not an error.
func (b *backend) emit(ctx context.Context, eventType string, metadataPairs ...string) {
	err := logical.SendEvent(ctx, b, eventType, metadataPairs...)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Debug("sending an event failed", "type", eventType, "error", err)
	}
}
