package pecreds

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Vault event types this plugin emits. Metadata never carries a secret.
const (
	eventTechnicalRefreshed     = "pecreds/technical-refreshed"
	eventTechnicalRefreshFailed = "pecreds/technical-refresh-failed"
	eventProcessBroken          = "pecreds/process-broken"
	eventProcessResumed         = "pecreds/process-resumed"
	eventTaskCreated            = "pecreds/task-created"
	eventTaskCompleted          = "pecreds/task-completed"
	eventTaskCancelled          = "pecreds/task-cancelled"
)

// emit sends a Vault event. Community Edition has no event system (ErrNoEvents): not an error.
func (b *backend) emit(ctx context.Context, eventType string, metadataPairs ...string) {
	err := logical.SendEvent(ctx, b, eventType, metadataPairs...)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Debug("sending an event failed", "type", eventType, "error", err)
	}
}
