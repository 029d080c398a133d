package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A technical credential as stored and its typed, cached storage helpers: token refresh and the
// handlers share them.

const technicalStoragePrefix = "technical/"

// technicalEntry is a stored technical credential: its configuration, secrets included. The
// token an oauth2 credential produces lives apart, in technical-state/ (token_renewal.go).
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
