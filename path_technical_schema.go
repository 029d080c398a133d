package pecreds

import (
	"github.com/hashicorp/vault/sdk/framework"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// The technical credentials' field schemas, response schemas and help: the manual that
// "vault path-help pecreds/technical/..." shows.

// technicalFields declares every field a technical credential's type may take, built from the
// credential types so that path-help lists them all.
func technicalFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"name":  {Type: framework.TypeString, Description: "The technical credential's name: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit."},
		"type":  {Type: framework.TypeString, Description: "The credential's type: password, token, api_key, certificate or oauth2. Required on create; an update without it keeps the type and merges the given fields over the stored ones."},
		"label": {Type: framework.TypeString, Description: "Free text about the credential, at most 1 KiB. Defaults to empty."},
	}
	for _, f := range credential.Fields(credential.UseTechnical) {
		if _, ok := fields[f.Name]; ok {
			continue
		}
		fs := &framework.FieldSchema{Type: framework.TypeString, Description: technicalFieldHelp[f.Name]}
		if f.List {
			fs.Type = framework.TypeCommaStringSlice
		}
		if f.Secret {
			fs.DisplayAttrs = &framework.DisplayAttributes{Sensitive: true}
		}
		fields[f.Name] = fs
	}
	return fields
}

var technicalFieldHelp = map[string]string{
	"username":      "password: the user name. Required for that type.",
	"password":      "password: the password. Secret: never read back. Required for that type.",
	"domain":        "password: the user's domain. Defaults to empty.",
	"token":         "token: the token. Secret: never read back. Required for that type.",
	"token_type":    "token: how the token is presented. Defaults to Bearer.",
	"expires_at":    "token: when the token expires, RFC 3339. Defaults to never.",
	"key":           "api_key: the key. Secret: never read back. Required for that type.",
	"header":        "api_key: the HTTP header that carries the key. Defaults to X-API-Key.",
	"certificate":   "certificate: the client certificate, PEM (at most 64 KiB). Required for that type.",
	"private_key":   "certificate: the certificate's private key, PEM; it must match the certificate. Secret: never read back. Required for that type.",
	"ca_chain":      "certificate: the CA chain, PEM. Defaults to empty.",
	"token_url":     "oauth2: the token endpoint, an absolute https URL (plain http only to a loopback host) without user info, query or fragment. An update that changes it must give client_secret too. Required for that type.",
	"client_id":     "oauth2: the client id. An update that changes it must give client_secret too. Required for that type.",
	"client_secret": "oauth2: the client secret. Secret: never read back. Required for that type.",
	"scopes":        "oauth2: the scopes to request, a list or a comma-separated string. Defaults to none.",
	"audience":      "oauth2: the audience parameter of the token request, for endpoints that want one. Defaults to none.",
}

var technicalResponseFields = map[string]*framework.FieldSchema{
	"name":         {Type: framework.TypeString, Description: "The technical credential's name.", Required: true},
	"type":         {Type: framework.TypeString, Description: "The credential's type.", Required: true},
	"version":      {Type: framework.TypeInt, Description: "1 at creation, one more at every write.", Required: true},
	"created_time": {Type: framework.TypeTime, Description: "When it was created.", Required: true},
	"updated_time": {Type: framework.TypeTime, Description: "When it was last written.", Required: true},
	"label":        {Type: framework.TypeString, Description: "Free text about the credential."},
	"username":     {Type: framework.TypeString, Description: "password: the user name."},
	"domain":       {Type: framework.TypeString, Description: "password: the domain."},
	"token_type":   {Type: framework.TypeString, Description: "token: how the token is presented."},
	"header":       {Type: framework.TypeString, Description: "api_key: the header."},
	"certificate":  {Type: framework.TypeString, Description: "certificate: the certificate, PEM."},
	"ca_chain":     {Type: framework.TypeString, Description: "certificate: the CA chain, PEM."},
	"token_url":    {Type: framework.TypeString, Description: "oauth2: the token endpoint."},
	"client_id":    {Type: framework.TypeString, Description: "oauth2: the client id."},
	"scopes":       {Type: framework.TypeStringSlice, Description: "oauth2: the scopes."},
	"audience":     {Type: framework.TypeString, Description: "oauth2: the audience."},
	"expires_at":   {Type: framework.TypeString, Description: "token: its expiry; oauth2: the current token's expiry (RFC 3339, empty when none)."},
	"last_refresh": {Type: framework.TypeString, Description: "oauth2: when the current token was fetched."},
	"next_refresh": {Type: framework.TypeString, Description: "oauth2: when the token is re-created next."},
	"last_error":   {Type: framework.TypeString, Description: "oauth2: the last token request's failure, cleared by the next success."},
	"failures":     {Type: framework.TypeInt, Description: "oauth2: consecutive failed token requests."},
}

var technicalCredsResponseFields = map[string]*framework.FieldSchema{
	"name":            {Type: framework.TypeString, Description: "The technical credential's name.", Required: true},
	"type":            {Type: framework.TypeString, Description: "The credential's type.", Required: true},
	"label":           {Type: framework.TypeString, Description: "Free text about the credential."},
	"username":        {Type: framework.TypeString, Description: "password: the user name."},
	"password":        {Type: framework.TypeString, Description: "password: the password."},
	"domain":          {Type: framework.TypeString, Description: "password: the domain."},
	"token":           {Type: framework.TypeString, Description: "token: the token."},
	"token_type":      {Type: framework.TypeString, Description: "token and oauth2: how the token is presented."},
	"expires_at":      {Type: framework.TypeString, Description: "token and oauth2: when the token expires (RFC 3339)."},
	"key":             {Type: framework.TypeString, Description: "api_key: the key."},
	"header":          {Type: framework.TypeString, Description: "api_key: the header."},
	"certificate":     {Type: framework.TypeString, Description: "certificate: the certificate, PEM."},
	"private_key":     {Type: framework.TypeString, Description: "certificate: the private key, PEM."},
	"ca_chain":        {Type: framework.TypeString, Description: "certificate: the CA chain, PEM."},
	"access_token":    {Type: framework.TypeString, Description: "oauth2: the access token."},
	"ttl":             {Type: framework.TypeInt, Description: "oauth2: seconds until the next token; Vault Agent re-fetches after it."},
	"rotation_period": {Type: framework.TypeInt, Description: "oauth2: the token's lifetime in seconds."},
}

const technicalHelpSynopsis = "Manage a technical credential: a named credential that registries refer to by name."

const technicalHelpDescription = `
The technical credentials manager holds named credentials. A registry's service names one with
{"type": "technical", "name": "crm-service"}, so one change here reaches every process at once.

  $ vault write pecreds/technical/crm-service type=password username=svc-crm password=...
  $ vault write pecreds/technical/idp type=oauth2 token_url=https://idp.example.com/oauth2/token \
        client_id=pecreds client_secret=... scopes=crm.read,crm.write
  $ vault read pecreds/technical/idp
  $ vault read pecreds/technical/idp/creds

An oauth2 credential fetches its token by the client-credentials grant when it is created, and
re-creates it at refresh_fraction (config, default 0.67) of its lifetime. A failing refresh keeps
serving the old token while it is valid and retries with backoff from 5s to 5m; an expired token is
never served. A create whose first token request fails is stored all the same, with last_error and
a warning, so the endpoint can be fixed later.

An update that gives no type (or the same one) changes only the fields it gives: writing
client_secret alone rotates the secret, which the next refresh uses. An update that changes
token_url or client_id must give client_secret in the same write: the stored secret is never sent
to a new endpoint. Token requests follow no redirect, and never go to link-local, unspecified or
multicast addresses; their failures read as the HTTP status and a standard OAuth2 error code,
never the endpoint's own text. Reads never show a secret:
not the password, token, key, private key, client secret, nor the current access token; they show
version, and for oauth2 expires_at, last_refresh, next_refresh, last_error and failures.
`

const technicalCredsHelpSynopsis = "Read a technical credential's current material."

const technicalCredsHelpDescription = `
Answers the credential's material: its fields for static types, and for oauth2 a valid
access_token with token_type and expires_at, fetched on demand when none is valid (concurrent
readers share one token request). Rotating material carries ttl (seconds until the next token) and
rotation_period (the token's lifetime), so a Vault Agent template re-renders in time:

  {{ with secret "pecreds/technical/idp/creds" }}{{ .Data.access_token }}{{ end }}

No valid token and none to be had is an error (502) naming the credential and the upstream failure.
`
