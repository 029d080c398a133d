package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// responseData is the read view: configuration without secrets, and for oauth2 the token's
// bookkeeping (never the token).
func (e *technicalEntry) responseData(st *oauth.State) map[string]any {
	data := e.Credential.Redacted()
	data["name"] = e.Name
	data["version"] = e.Version
	data["created_time"] = e.CreatedTime.Format(time.RFC3339Nano)
	data["updated_time"] = e.UpdatedTime.Format(time.RFC3339Nano)
	if e.rotates() {
		if st == nil {
			st = &oauth.State{}
		}
		data["expires_at"] = formatTime(st.ExpiresAt)
		data["last_refresh"] = formatTime(st.LastRefresh)
		data["next_refresh"] = formatTime(st.NextRefresh)
		data["last_error"] = st.LastError
		data["failures"] = st.Failures
	}
	return data
}

func pathTechnical(b *backend) []*framework.Path {
	nameField := &framework.FieldSchema{Type: framework.TypeString, Description: "The technical credential's name."}
	// The action paths come before the catch-all pattern of technical/:name, which would
	// otherwise take "crm/creds" as a (bad) name.
	return []*framework.Path{
		{
			Pattern:      "technical/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "technical-credentials"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: listKeys(technicalStoragePrefix, "technical credentials"),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys": {Type: framework.TypeStringSlice, Description: "The technical credential names."},
					}}}},
				},
			},
			HelpSynopsis:    "List the technical credentials.",
			HelpDescription: "Lists the names of the credentials held by the technical credentials manager.",
		},
		{
			Pattern:      "technical/" + nameSegment("name") + "/creds$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "technical-credential-material"},
			Fields:       map[string]*framework.FieldSchema{"name": nameField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("name", "technical credential name", b.pathTechnicalCredsRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: technicalCredsResponseFields}}},
				},
			},
			HelpSynopsis:    technicalCredsHelpSynopsis,
			HelpDescription: technicalCredsHelpDescription,
		},
		{
			Pattern:        "technical/" + nameSegment("name") + "/rotate$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "rotate", OperationSuffix: "technical-credential"},
			Fields:         map[string]*framework.FieldSchema{"name": nameField},
			ExistenceCheck: actionExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  named("name", "technical credential name", b.pathTechnicalRotate),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: technicalResponseFields}}},
				},
			},
			HelpSynopsis:    "Re-create an OAuth2 technical credential's token now.",
			HelpDescription: "Fetches a new token from the token endpoint now and serves it from then on. Static credentials (password, token, api_key, certificate) change by writing technical/:name instead, so rotating one is a 400.",
		},
		{
			Pattern:      "technical/" + nameSegment("name") + "/usage$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "technical-credential-usage"},
			Fields:       map[string]*framework.FieldSchema{"name": nameField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: named("name", "technical credential name", b.pathTechnicalUsage),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"name":        {Type: framework.TypeString, Description: "The technical credential's name.", Required: true},
						"registries":  {Type: framework.TypeStringSlice, Description: "The registries with a service that names it.", Required: true},
						"processes":   {Type: framework.TypeInt, Description: "How many live processes can reach it through any of their layers.", Required: true},
						"process_ids": {Type: framework.TypeStringSlice, Description: "Up to 100 of those processes' ids.", Required: true},
					}}}},
				},
			},
			HelpSynopsis:    "Show where a technical credential is used.",
			HelpDescription: "Lists the registries that name the technical credential in a service's credential list, and counts the live processes that can reach it through any of their layers (runtime, definition, global), listing up to 100 of their ids, so an operator knows what a change reaches.",
		},
		{
			// Any segment matches, so that a bad name is a 400 that says why, not Vault's 404.
			Pattern:        "technical/" + framework.MatchAllRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "technical-credential"},
			Fields:         technicalFields(),
			ExistenceCheck: existsByName(b, "name", "technical credential name", (*backend).getTechnical),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("name", "technical credential name", b.pathTechnicalRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: technicalResponseFields}}},
				},
				logical.CreateOperation: technicalWriteOperation(b),
				logical.UpdateOperation: technicalWriteOperation(b),
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  named("name", "technical credential name", b.pathTechnicalDelete),
					Responses: map[int][]framework.Response{http.StatusNoContent: {{Description: "No Content"}}},
				},
			},
			HelpSynopsis:    technicalHelpSynopsis,
			HelpDescription: technicalHelpDescription,
		},
	}
}

func technicalWriteOperation(b *backend) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     named("name", "technical credential name", b.pathTechnicalCreateUpdate),
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "write"},
		Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: technicalResponseFields}}},
	}
}

func (b *backend) pathTechnicalRead(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	e, err := b.getTechnical(ctx, req.Storage, name)
	if err != nil || e == nil {
		return nil, err
	}
	st, err := b.getTokenState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: e.responseData(st)}, nil
}

func (b *backend) pathTechnicalCreateUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	current, next, err := b.writeTechnical(ctx, req.Storage, d, name)
	var bad badInput
	if errors.As(err, &bad) {
		return badRequest(err)
	}
	if err != nil {
		return nil, err
	}
	st, err := b.getTokenState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{}
	// A new credential, one without a valid token (being fixed), or one whose token would come
	// from another endpoint, client, audience or scopes, or by another auth_method, private_key
	// or key_id, asks for a token now, outside the credential's lock and for at most the token
	// wait; a client secret's rotation alone keeps serving the token, and the new secret is used
	// at the next refresh.
	now := b.deps.now()
	if next.rotates() && (current == nil || !current.rotates() || !st.Valid(now) || tokenSettingsChanged(current, next)) {
		want := tokenWant{force: true, after: -1, version: next.Version}
		if st != nil {
			want.after = st.Generation
		}
		cfg, err := b.getConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		fresh, pending, err := b.awaitToken(ctx, req.Storage, cfg, name, want)
		if err != nil {
			return nil, err
		}
		st = fresh
		if w := b.tokenWriteWarning(next, st, want, pending); w != "" {
			resp.AddWarning(w)
		}
	}
	resp.Data = next.responseData(st)
	return resp, nil
}

func (b *backend) pathTechnicalDelete(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	lock := locksutil.LockForKey(b.technicalLocks, name)
	lock.Lock()
	defer lock.Unlock()
	// The credential goes before its token, both under the refresh lock: a flight in the air
	// that comes to store finds no credential, and stores nothing.
	b.refresher.unschedule(name)
	refresh := locksutil.LockForKey(b.refreshLocks, name)
	refresh.Lock()
	defer refresh.Unlock()
	if err := b.deleteTechnical(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := b.deleteTokenState(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.forgetFlights(name)
	b.census.RemoveTechnical(name)
	return nil, nil
}

func (b *backend) pathTechnicalCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	e, err := b.getTechnical(ctx, req.Storage, name)
	if err != nil || e == nil {
		return nil, err
	}
	m, err := b.technicalMaterial(ctx, req.Storage, e)
	var none noMaterial
	switch {
	case errors.As(err, &none) && none.retryable():
		return retryAnswer(none.reason + "; " + whenToRetry(none.retryAt, b.deps.now()))
	case errors.As(err, &none):
		return badRequest(none) // the credential itself is out of date: the operator writes it
	case err != nil:
		return nil, err
	}
	return &logical.Response{Data: m}, nil
}

// technicalMaterial is a technical credential's current material: the static fields, or a valid
// token (fetched on demand when none is) with its ttl and rotation_period; a noMaterial when
// there is none.
func (b *backend) technicalMaterial(ctx context.Context, s logical.Storage, e *technicalEntry) (map[string]any, error) {
	var st *oauth.State
	if e.rotates() {
		cfg, err := b.getConfig(ctx, s)
		if err != nil {
			return nil, err
		}
		if st, err = b.validToken(ctx, s, cfg, e); err != nil {
			return nil, err
		}
	}
	t := b.technicalAsResolved(e, st, b.deps.now(), planFetch)
	if t.Material == nil {
		return nil, noMaterial{reason: t.Unusable}
	}
	delete(t.Material, "technical")
	t.Material["name"] = e.Name
	return t.Material, nil
}

func (b *backend) pathTechnicalRotate(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	e, err := b.getTechnical(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("technical credential %q does not exist", name))
	}
	if !e.rotates() {
		return badRequest(fmt.Errorf("technical credential %q is of type %s, which is static: change it by writing technical/%s", name, e.Credential.Type, name))
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	st, err := b.getTokenState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	want := tokenWant{force: true, after: -1, version: e.Version}
	if st != nil {
		want.after = st.Generation
	}
	st, pending, err := b.awaitToken(ctx, req.Storage, cfg, name, want)
	now := b.deps.now()
	switch {
	case err != nil:
		return nil, err
	case pending:
		return retryAnswer(fmt.Sprintf("rotating technical credential %q: its token request is still in flight after %s; read technical/%s for the outcome", name, b.deps.tokenWait, name))
	case st == nil || st.Generation <= want.after:
		_, next := st.FetchAllowed(now, b.deps.minFetchInterval, e.Version)
		why := "a token request was made less than " + b.deps.minFetchInterval.String() + " ago"
		if st != nil && st.Failures > 0 {
			why = "token requests are failing (" + st.LastError + ")"
		}
		return retryAnswer(fmt.Sprintf("rotating technical credential %q: %s; %s", name, why, whenToRetry(next, now)))
	}
	return &logical.Response{Data: e.responseData(st)}, nil
}
