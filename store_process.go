package pecreds

import (
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/census"
	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// A process as stored, what resolution makes of its current credentials, and its summary for the
// census: the lifecycle, storage and the handlers share them.

const (
	processStoragePrefix = "process/"
)

// processEntry is a stored process, with its current credentials when they are persistent
// (transient ones live in the plugin's memory).
type processEntry struct {
	ID string `json:"id"`
	// Nonce tells this process from an earlier one of the same id: a lease acts only on the
	// process it was issued for.
	Nonce           string `json:"nonce"`
	Definition      string `json:"definition"`
	Owner           string `json:"owner"`
	OwnerEntityID   string `json:"owner_entity_id"`
	KeepCredentials string `json:"keep_credentials"`
	// HasCurrent: current credentials were given and kept per the mode.
	HasCurrent   bool   `json:"has_current"`
	Health       string `json:"health"`
	HealthReason string `json:"health_reason"`
	TaskID       string `json:"task_id"`
	// Why a broken process is broken (lifecycle_broken.go): its current credentials failed (the
	// owner's task resumes it), and/or something its owner cannot fix did (a technical credential,
	// a service: OperatorReason says what, and only an operator's resume clears it).
	BrokenByCurrent bool      `json:"broken_by_current,omitempty"`
	OperatorReason  string    `json:"operator_reason,omitempty"`
	Runtime         []Service `json:"runtime"`
	// Retried holds, per technical credential, the token generation this process was told to
	// retry with after reporting a failure: the same generation failing again is final.
	Retried map[string]int `json:"retried,omitempty"`
	// Current is the process's current credentials when its mode is persistent: one record, one
	// write per create. Storage written by v0.1.0 kept them apart, under process-current/<id>
	// (migrate.go). Never in an answer: responseData names what a read shows.
	Current *Credential `json:"current,omitempty"`
	// ExpiresAt is when its lease ends at the latest, as this plugin granted it (at create, moved
	// by each renewal; zero: not known, as for a process created before v0.2.0). A process still
	// here well past it has a lease Vault never registered (a crash between the create's write and
	// the lease) or failed to revoke: the periodic sweep ends it (expiry.go).
	ExpiresAt   time.Time `json:"expires_at,omitempty"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

// currentStatus says what resolution can make of the current credentials: kept, lost, expired
// or none. cur is what the plugin holds (nil: nothing).
func (p *processEntry) currentStatus(cur *Credential, now time.Time) string {
	switch {
	case !p.HasCurrent || p.KeepCredentials == keepNone:
		return resolve.CurrentNone
	case cur == nil:
		return resolve.CurrentLost
	case cur.Expired(now):
		return resolve.CurrentExpired
	}
	return resolve.CurrentKept
}

// summarize is what the census keeps of a process.
func summarize(p *processEntry) census.Process {
	return census.Process{ID: p.ID, Definition: p.Definition, Health: p.Health, Keep: p.KeepCredentials,
		OpenTask: p.TaskID != "", Technicals: credential.TechnicalNames(p.Runtime), TaskID: p.TaskID, OwnerEntityID: p.OwnerEntityID}
}
