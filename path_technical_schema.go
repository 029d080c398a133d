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
	"private_key":   "certificate: the certificate's private key, PEM; it must match the certificate. Required for that type. oauth2: the client's signing key for auth_method private_key_jwt, PEM: an RSA key of at least 2048 bits (PKCS#8 or PKCS#1, signs RS256) or an EC P-256 key (PKCS#8 or SEC 1, signs ES256), unencrypted; required with that method, refused with the others. At most 64 KiB. Secret: never read back.",
	"ca_chain":      "certificate: the CA chain, PEM. Defaults to empty.",
	"token_url":     "oauth2: the token endpoint, an absolute https URL (plain http only to a loopback host) without user info, query or fragment. An update that changes it must give client_secret (private_key for private_key_jwt) too. Required for that type.",
	"client_id":     "oauth2: the client id. An update that changes it must give client_secret (private_key for private_key_jwt) too. Required for that type.",
	"auth_method":   "oauth2: how the client authenticates at the token endpoint: client_secret_basic (HTTP Basic), client_secret_post (client_id and client_secret in the request body) or private_key_jwt (a client assertion JWT signed with private_key, RFC 7523; no secret is sent). Use the method the provider registered the client for. Defaults to client_secret_basic.",
	"client_secret": "oauth2: the client secret, for auth_method client_secret_basic and client_secret_post (required with them, refused with private_key_jwt). Secret: never read back.",
	"key_id":        "oauth2: the kid header of private_key_jwt assertions, for providers that pick the client's key by it; at most 1 KiB, one line. Refused with the other methods. Defaults to none.",
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
	"auth_method":  {Type: framework.TypeString, Description: "oauth2: how the client authenticates: client_secret_basic, client_secret_post or private_key_jwt."},
	"key_id":       {Type: framework.TypeString, Description: "oauth2: the kid of private_key_jwt assertions."},
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

The client authenticates at the token endpoint by auth_method, the method the provider
registered it for (a mismatch is answered 401 invalid_client):

  client_secret_basic   client_id and client_secret in an HTTP Basic header (the default)
  client_secret_post    client_id and client_secret in the request body
  private_key_jwt       a client assertion (RFC 7523) signed with private_key, fresh for every
                        request: iss and sub the client_id, aud the token_url, a random jti, exp
                        60s after iat; RS256 for an RSA key, ES256 for an EC P-256 key, and kid
                        key_id when given. No secret is sent. The provider holds the public key.

  $ vault write pecreds/technical/idp-post type=oauth2 auth_method=client_secret_post \
        token_url=https://idp.example.com/oauth2/token client_id=pecreds client_secret=...
  $ vault write pecreds/technical/idp-jwt type=oauth2 auth_method=private_key_jwt \
        token_url=https://idp.example.com/oauth2/token client_id=pecreds \
        private_key=@client-key.pem key_id=pecreds-2026

client_secret goes with the secret methods only, private_key and key_id with private_key_jwt
only: a secret of the other kind is refused, never ignored. An update that changes auth_method
leaves behind the stored secret of the other kind, and must give the new method's own.

An update that gives no type (or the same one) changes only the fields it gives: writing
client_secret alone rotates the secret, which the next refresh uses. Writing auth_method,
private_key or key_id asks for a token at once, as a change of token_url, client_id, audience or
scopes does, so that a key the provider does not know shows on the write. An update that changes
token_url or client_id must give the method's secret (client_secret, or private_key) in the same
write: the stored secret is never sent, and the stored key never signs, for a new endpoint. Token requests follow no redirect, and never go to link-local, unspecified or
multicast addresses; their failures read as the HTTP status and a standard OAuth2 error code,
never the endpoint's own text. Reads never show a secret:
not the password, token, key, private key, client secret, nor the current access token; they show
version, and for oauth2 auth_method, key_id, expires_at, last_refresh, next_refresh, last_error and
failures.
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
