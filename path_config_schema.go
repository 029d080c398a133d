package pecreds

import (
	"github.com/hashicorp/vault/sdk/framework"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The config path's field schemas, response schema and help: the manual that
// "vault path-help pecreds/config" shows.

var configFields = map[string]*framework.FieldSchema{
	"keep_credentials": {
		Type:          framework.TypeString,
		Description:   "How new processes keep the credentials of the user who started them: persistent (in Vault storage, seal-wrapped; survives restarts), transient (in the plugin's memory only; lost on restart) or none (never kept). Defaults to persistent. A change affects new processes only.",
		AllowedValues: []any{lifecycle.KeepPersistent, lifecycle.KeepTransient, lifecycle.KeepNone},
		Default:       lifecycle.KeepPersistent,
	},
	"global_registries": {
		Type:        framework.TypeCommaStringSlice,
		Description: "The global registries, in the order resolution consults them after a process's runtime layer and definition registry. Defaults to none.",
	},
	"process_ttl": {
		Type:        framework.TypeDurationSecond,
		Description: "The lease TTL of a new process, in seconds or as a Go duration such as 24h; at most process_max_ttl, or the mount's max lease TTL when that is 0. Defaults to 24h.",
		Default:     int(defaultProcessTTL.Seconds()),
	},
	"process_max_ttl": {
		Type:        framework.TypeDurationSecond,
		Description: "The longest a process lease may live, renewals included, in seconds or as a Go duration; at most the mount's max lease TTL. Defaults to 0, meaning the mount's maximum lease TTL.",
		Default:     0,
	},
	"task_manager": {
		Type:        framework.TypeBool,
		Description: "Whether a failure of a user's own credentials opens a credential-update task for the process's owner (the process goes broken) instead of failing the process. Defaults to true.",
		Default:     true,
	},
	"error_health_mapping": {
		Type:        framework.TypeMap,
		Description: "Maps the error classes that the engine reports to a health: running (retry), broken (wait for a task) or failed (abort). A given mapping replaces the stored one; built-in classes it leaves out keep their defaults: auth_failed, credentials_expired and credentials_unavailable to broken, forbidden to failed, unavailable to running. A class that is not built in is accepted with a warning, as a new class that reports may name; a report naming a class that is neither is a 400.",
	},
	"refresh_fraction": {
		Type:        framework.TypeFloat,
		Description: "The fraction of an OAuth2 token's lifetime after which it is re-created, between 0.5 and 0.9. Defaults to 0.67.",
		Default:     defaultRefreshFraction,
	},
	"grant_refresh_concurrency": {
		Type:        framework.TypeInt,
		Description: "How many users' grants (oauth2_user) the active node refreshes at once for each provider (a grant's client), between 1 and 64: a slow provider holds back only its own grants' refreshes. Defaults to 8. A change takes effect at once.",
		Default:     defaultGrantRefreshConcurrency,
	},
	"notify_url": {
		Type:        framework.TypeString,
		Description: "The Task Manager's webhook that receives task and process events: an absolute https URL (plain http only to a loopback host) without user info, query or fragment. Defaults to empty: no notifications.",
	},
	"notify_secret": {
		Type:         framework.TypeString,
		Description:  "The Standard Webhooks signing secret: whsec_ followed by the standard base64 of 24 to 64 random bytes; required with notify_url. Write-only: never read back. A new value starts an overlap: the one it replaces keeps signing alongside for notify_secret_overlap. notify/rotate-secret makes one. Defaults to empty.",
		DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
	},
	"notify_timeout": {
		Type:        framework.TypeDurationSecond,
		Description: "How long one notification delivery may take, between 1s and 60s. Defaults to 10s.",
		Default:     int(defaultNotifyTimeout.Seconds()),
	},
	"notify_secret_overlap": {
		Type:        framework.TypeDurationSecond,
		Description: "After notify_secret changes, how long the previous secret keeps signing alongside the new one (deliveries carry both signatures), between 0 and 720h. Lowering it shortens a running overlap (0 ends it now). Defaults to 24h.",
		Default:     int(defaultNotifySecretOverlap.Seconds()),
	},
	"notify_concurrency": {
		Type:        framework.TypeInt,
		Description: "How many processes' events are delivered at once, between 1 and 32; each process's events go one at a time, in order. Defaults to 4.",
		Default:     defaultNotifyConcurrency,
	},
	"notify_max_events": {
		Type:        framework.TypeInt,
		Description: "The most events the outbox holds, pending and dead, between 1 and 1,000,000. When full, the oldest dead event makes room; with none dead, a new event is not kept (the state change still happens); notify/status counts either loss under overflowed. Defaults to 100,000.",
		Default:     defaultNotifyMaxEvents,
	},
}

var configResponseFields = map[string]*framework.FieldSchema{
	"keep_credentials":          {Type: framework.TypeString, Description: "How new processes keep their current credentials.", Required: true},
	"global_registries":         {Type: framework.TypeStringSlice, Description: "The global registries, in resolution order.", Required: true},
	"process_ttl":               {Type: framework.TypeString, Description: "The lease TTL of a new process, as a duration (24h).", Required: true},
	"process_max_ttl":           {Type: framework.TypeString, Description: "The longest a process lease may live, as a duration; 0s is the mount's maximum.", Required: true},
	"task_manager":              {Type: framework.TypeBool, Description: "Whether user-credential failures open a task.", Required: true},
	"error_health_mapping":      {Type: framework.TypeMap, Description: "The error class to health mapping in force, defaults included.", Required: true},
	"refresh_fraction":          {Type: framework.TypeFloat, Description: "The fraction of a token's lifetime after which it is re-created.", Required: true},
	"grant_refresh_concurrency": {Type: framework.TypeInt, Description: "How many users' grants are refreshed at once for each provider.", Required: true},
	"notify_url":                {Type: framework.TypeString, Description: "The Task Manager webhook URL; empty when off.", Required: true},
	"notify_timeout":            {Type: framework.TypeString, Description: "The timeout of one delivery, as a duration (10s).", Required: true},

	"notify_secret_overlap":        {Type: framework.TypeString, Description: "How long a replaced signing secret keeps signing, as a duration (24h).", Required: true},
	"notify_concurrency":           {Type: framework.TypeInt, Description: "How many processes' events are delivered at once.", Required: true},
	"notify_max_events":            {Type: framework.TypeInt, Description: "The most events the outbox holds.", Required: true},
	"notify_previous_secret_until": {Type: framework.TypeString, Description: "When the previous signing secret stops signing (RFC 3339); empty when none does.", Required: true},
}

const configHelpSynopsis = "Configure the engine: how processes keep credentials, global registries, TTLs, health mapping."

const configHelpDescription = `
The configuration of the pecreds engine. A read returns the values in force, defaults included,
even before any write. A write changes only the fields it gives. Durations accept seconds or Go
duration strings (24h, 90m), and read as Go durations (24h, 10s), which a write takes back as is.

  $ vault write pecreds/config keep_credentials=transient global_registries=common,partners
  $ vault write pecreds/config error_health_mapping='{"forbidden": "broken"}'
  $ vault read pecreds/config

keep_credentials and the TTLs apply to processes created after the change; a running process
keeps the mode it started with. notify_secret is write-only.
`
