package pecreds

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Vault event types this plugin emits of its technical credentials. Metadata never carries a
// secret. The process and task ones are internal/lifecycle's, sent with the prefix "pecreds/"
// (announce, notify.go), and go to the Task Manager too.
const (
	eventTechnicalRefreshed     = "pecreds/technical-refreshed"
	eventTechnicalRefreshFailed = "pecreds/technical-refresh-failed"
)

// emit sends a Vault event. Community Edition has no event system (ErrNoEvents): not an error.
func (b *backend) emit(ctx context.Context, eventType string, metadataPairs ...string) {
	err := logical.SendEvent(ctx, b, eventType, metadataPairs...)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Debug("sending an event failed", "type", eventType, "error", err)
	}
}
