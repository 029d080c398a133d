package pecreds

import "github.com/hashicorp/vault/sdk/framework"

// The process path's field schemas, response schema and help: the manual that
// "vault path-help pecreds/process/..." shows.

var processFields = map[string]*framework.FieldSchema{
	"id":         {Type: framework.TypeString, Description: "The process id: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit. Used once."},
	"definition": {Type: framework.TypeString, Description: "The process definition: a registry that must exist (an empty value is a 400). Defaults to none when left out: the process resolves through its runtime layer and the global registries only."},
	"current": {Type: framework.TypeMap, Description: "The credentials of the user who starts the process, a credential object " +
		"({type: password|token|api_key|certificate|oauth2_user, ...}) or JSON text holding one; kept per keep_credentials. Defaults to none. " +
		"An oauth2_user grant takes access_token, refresh_token, expires_at (RFC 3339) or expires_in (seconds, made expires_at on arrival), " +
		"refresh_expires_at, scope, token_type (Bearer) and client: an oauth2 technical credential that exists. A grant already expired " +
		"(its access token without a refresh token, or its refresh token) is a 400; resolve never answers its refresh token."},
	"owner":           {Type: framework.TypeString, Description: "The name of the user who owns the process, for people and the Task Manager; at most 256 bytes. Defaults to empty."},
	"owner_entity_id": {Type: framework.TypeString, Description: "The Vault identity entity of the owner, who alone may complete the process's tasks; it must exist. Defaults to the entity of the calling token (none for a token without one, such as root: then only a Task Manager can complete the tasks, through complete-on-behalf)."},
	"ttl":             {Type: framework.TypeDurationSecond, Description: "The lease TTL, in seconds or as a Go duration. Defaults to config's process_ttl; capped at process_max_ttl with a warning."},
}

var processResponseFields = map[string]*framework.FieldSchema{
	"id":                  {Type: framework.TypeString, Description: "The process id.", Required: true},
	"definition":          {Type: framework.TypeString, Description: "Its definition registry.", Required: true},
	"owner":               {Type: framework.TypeString, Description: "Its owner's name.", Required: true},
	"owner_entity_id":     {Type: framework.TypeString, Description: "Its owner's identity entity.", Required: true},
	"keep_credentials":    {Type: framework.TypeString, Description: "How it keeps its current credentials, fixed at instantiation.", Required: true},
	"current_credentials": {Type: framework.TypeString, Description: "kept, lost (transient and the plugin restarted), expired, refreshing (a grant whose access token expired while its refresh fails for now), or none.", Required: true},
	"health":              {Type: framework.TypeString, Description: "running, broken or failed.", Required: true},
	"health_reason":       {Type: framework.TypeString, Description: "Why it is not running.", Required: true},
	"task_id":             {Type: framework.TypeString, Description: "Its open credential-update task, if any.", Required: true},
	"runtime_services":    {Type: framework.TypeStringSlice, Description: "The services of its runtime layer.", Required: true},
	"created_time":        {Type: framework.TypeTime, Description: "When it was instantiated.", Required: true},
	"updated_time":        {Type: framework.TypeTime, Description: "When it last changed.", Required: true},
}

const processHelpSynopsis = "Instantiate a process (a Vault lease), read its status, or end it."

const processHelpDescription = `
A process is one running process instance, held as a renewable Vault lease of secret type
"process". Instantiating it records its definition registry, its owner and the current
credentials of the user who started it, kept per config's keep_credentials (persistent,
transient or none; fixed for the process's life):

  $ vault write pecreds/process/order-42 definition=orders owner=ann current=@ann.json
  $ vault read pecreds/process/order-42
  $ vault lease renew <lease_id>
  $ vault lease revoke <lease_id>       # or: vault delete pecreds/process/order-42

Renewals stay within process_ttl, process_max_ttl and the mount's max lease TTL (raise it for
long processes: vault secrets tune -max-lease-ttl=8760h pecreds). Revoking the lease or deleting
the process wipes it and its current credentials. Creating an id that exists is a 400.

A read shows health, health_reason, task_id, current_credentials (kept, lost, expired, refreshing, none) and
the runtime layer's service names; never a credential.
`

var resolveResponseFields = map[string]*framework.FieldSchema{
	"service":         {Type: framework.TypeString, Description: "The service resolved.", Required: true},
	"source":          {Type: framework.TypeString, Description: "The layer it came from: runtime, definition:<registry> or global:<registry>.", Required: true},
	"index":           {Type: framework.TypeInt, Description: "The credential's place in the service's list."},
	"type":            {Type: framework.TypeString, Description: "The credential's type."},
	"technical":       {Type: framework.TypeString, Description: "The technical credential's name, for a technical entry."},
	"credentials":     {Type: framework.TypeSlice, Description: "With all=true: every usable credential, in order."},
	"explain":         {Type: framework.TypeMap, Description: "With explain=true: the layers, candidates and each credential tried."},
	"label":           {Type: framework.TypeString, Description: "The credential's label."},
	"username":        {Type: framework.TypeString, Description: "password: the user name."},
	"password":        {Type: framework.TypeString, Description: "password: the password."},
	"domain":          {Type: framework.TypeString, Description: "password: the domain."},
	"token":           {Type: framework.TypeString, Description: "token: the token."},
	"token_type":      {Type: framework.TypeString, Description: "token, oauth2, oauth2_user: how the token is presented."},
	"expires_at":      {Type: framework.TypeString, Description: "token, oauth2, oauth2_user: when it expires."},
	"key":             {Type: framework.TypeString, Description: "api_key: the key."},
	"header":          {Type: framework.TypeString, Description: "api_key: the header."},
	"certificate":     {Type: framework.TypeString, Description: "certificate: PEM."},
	"private_key":     {Type: framework.TypeString, Description: "certificate: the private key, PEM."},
	"ca_chain":        {Type: framework.TypeString, Description: "certificate: the CA chain, PEM."},
	"access_token":    {Type: framework.TypeString, Description: "oauth2, oauth2_user: the access token (a grant's refresh token is never answered)."},
	"ttl":             {Type: framework.TypeInt, Description: "oauth2: seconds until the next token."},
	"rotation_period": {Type: framework.TypeInt, Description: "oauth2: the token's lifetime in seconds."},
}
