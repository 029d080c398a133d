package pecreds

import "github.com/pecreds/vault-plugin-pecreds/internal/credential"

// The credential model lives in internal/credential; these names keep the plugin's code short.
type (
	Credential = credential.Credential
	Service    = credential.Service
)
