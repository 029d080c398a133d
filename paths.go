package pecreds

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// What every path shares: the OpenAPI operation prefix, the name a path names (checked before its
// handler runs), the answer to bad input, and how an answer shows a time.

// operationPrefix is the one OpenAPI operation prefix of every path.
const operationPrefix = "pecreds"

// named is the prelude of a handler whose path names one object: the name from the path, checked
// (a 400 that says why), handed to the handler.
func named(field, what string, handler func(context.Context, *logical.Request, *framework.FieldData, string) (*logical.Response, error)) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		name := d.Get(field).(string)
		if err := credential.ValidateName(what, name); err != nil {
			return badRequest(err)
		}
		return handler(ctx, req, d, name)
	}
}

// nameSegment matches any one path segment, so that the handler, not the router, judges the
// name and a bad one is a 400 that says why.
func nameSegment(field string) string {
	return "(?P<" + field + ">[^/]+)"
}

// badRequest is the answer to bad input: a 400 whose message names the field and the rule.
func badRequest(err error) (*logical.Response, error) {
	return logical.ErrorResponse(err.Error()), nil
}

// formatTime is how an answer or a log line shows a time: RFC 3339 in UTC, empty for the zero
// time.
func formatTime(t time.Time) string { return oauth.FormatTime(t) }

// asRefusal answers a refusal (lifecycle.Refusal) as a 400; any other error as it is.
func asRefusal(err error) (*logical.Response, error) {
	var r lifecycle.Refusal
	if errors.As(err, &r) {
		return badRequest(r)
	}
	return nil, err
}

// actionExists keeps a write to an action path (rotate, complete, ...) an update, so that the
// handler answers 404 for an unknown object instead of Vault refusing a "create".
func actionExists(context.Context, *logical.Request, *framework.FieldData) (bool, error) {
	return true, nil
}
