package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// A technical credential as stored, and the token state of an oauth2 one, with their typed,
// cached storage helpers: token refresh and the handlers share them.

const technicalStoragePrefix = "technical/"

// technicalStatePrefix: an oauth2 credential's token and its refresh bookkeeping (oauth.State).
const technicalStatePrefix = "technical-state/"

// technicalEntry is a stored technical credential: its configuration, secrets included. The
// token an oauth2 credential produces lives apart, in technical-state/ (below).
type technicalEntry struct {
	Name        string     `json:"name"`
	Credential  Credential `json:"credential"`
	Version     int        `json:"version"`
	CreatedTime time.Time  `json:"created_time"`
	UpdatedTime time.Time  `json:"updated_time"`
}

func (e *technicalEntry) rotates() bool { return e.Credential.Type == "oauth2" }

// getTechnical returns a technical credential, or nil when it does not exist. The answer is
// shared with the cache: callers must not modify it.
func (b *backend) getTechnical(ctx context.Context, s logical.Storage, name string) (*technicalEntry, error) {
	return cachedGet(ctx, s, b.technicals, technicalStoragePrefix, name, fmt.Sprintf("technical credential %q", name))
}

func (b *backend) putTechnical(ctx context.Context, s logical.Storage, e *technicalEntry) error {
	return cachedPut(ctx, s, b.technicals, technicalStoragePrefix, e.Name, fmt.Sprintf("technical credential %q", e.Name), e)
}

func (b *backend) deleteTechnical(ctx context.Context, s logical.Storage, name string) error {
	return cachedDelete(ctx, s, b.technicals, technicalStoragePrefix, name, fmt.Sprintf("technical credential %q", name))
}

func (b *backend) getTokenState(ctx context.Context, s logical.Storage, name string) (*oauth.State, error) {
	return cachedGet(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}

func (b *backend) putTokenState(ctx context.Context, s logical.Storage, name string, st *oauth.State) error {
	return cachedPut(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name), st)
}

func (b *backend) deleteTokenState(ctx context.Context, s logical.Storage, name string) error {
	return cachedDelete(ctx, s, b.tokenStates, technicalStatePrefix, name, fmt.Sprintf("the token state of %q", name))
}
