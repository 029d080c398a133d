package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// ErrWrappingTokenInvalid: the wrapping token was already unwrapped, has expired, or never was
// one. A wrapping token opens once: a second unwrap is this error, and so is an attacker's
// unwrap of a token the worker already used.
var ErrWrappingTokenInvalid = errors.New("pecreds: the wrapping token is not valid (used, expired or unknown)")

// ErrWrappingTokenForeign: the wrapping token is valid but wraps something other than a resolve
// of this client's pecreds mount (a token anyone can make with sys/wrapping/wrap, handed in place
// of the engine host's): it is not unwrapped, so the worker never acts on credentials it was not
// meant to get.
var ErrWrappingTokenForeign = errors.New("pecreds: the wrapping token does not wrap a resolve of this pecreds mount")

// Wrapped is a resolve's answer response-wrapped by Vault: a single-use token that an activity
// worker unwraps (Client.Unwrap) to get the credentials, which the engine host never sees.
type Wrapped struct {
	Token        string        // the wrapping token: hand it to the worker, nowhere else
	Accessor     string        // the token's accessor (sys/wrapping/lookup, audit), not a secret
	TTL          time.Duration // how long the worker has to unwrap it
	CreationTime time.Time
	CreationPath string // the resolve path it wraps
}

// String describes the wrapping token without it, so that logging a Wrapped shows no secret.
func (w Wrapped) String() string {
	return fmt.Sprintf("wrapping token (accessor %s, ttl %s, path %s)", w.Accessor, w.TTL, w.CreationPath)
}

// GoString is String, for %#v.
func (w Wrapped) GoString() string { return w.String() }

// MarshalJSON leaves the token out, so that a Wrapped logged or stored as JSON (a structured
// log, a workflow engine's history) shows no secret: hand w.Token itself to the worker.
func (w Wrapped) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"accessor": w.Accessor, "ttl": w.TTL.String(),
		"creation_time": w.CreationTime, "creation_path": w.CreationPath})
}

// LogValue leaves the token out of log/slog records too.
func (w Wrapped) LogValue() slog.Value {
	return slog.GroupValue(slog.String("accessor", w.Accessor), slog.Duration("ttl", w.TTL), slog.String("creation_path", w.CreationPath))
}

// ResolveWrapped resolves a service by name as Resolve does, but Vault answers with a single-use
// wrapping token living ttl (X-Vault-Wrap-TTL) instead of the credentials. An error is never
// wrapped: it comes back as Resolve's would. ttl is rounded down to whole seconds, at least one.
func (p *Process) ResolveWrapped(ctx context.Context, service string, ttl time.Duration, opts ...ResolveOption) (*Wrapped, error) {
	if err := checkName("service", service); err != nil {
		return nil, err
	}
	path, err := p.c.processPath(p.ID, "resolve", service)
	if err != nil {
		return nil, err
	}
	if ttl < time.Second {
		return nil, &BadRequestError{Messages: []string{fmt.Sprintf("wrap ttl: %s is less than a second", ttl)}}
	}
	wrapTTL := fmt.Sprintf("%ds", int(ttl/time.Second))
	q := map[string][]string{}
	for k, v := range options(opts) {
		q[k] = []string{fmt.Sprint(v)}
	}
	vault := p.c.vault.WithRequestCallbacks(func(r *api.Request) { r.WrapTTL = wrapTTL })
	s, err := vault.Logical().ReadWithDataWithContext(ctx, path, q)
	if err != nil {
		_, err = p.answer(ctx, path, nil, err) // the typed error Resolve answers, *BrokenError included
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if s.WrapInfo == nil || s.WrapInfo.Token == "" {
		// The credentials came back in the clear (a proxy or server that does not wrap): they are
		// dropped here rather than handed on as if wrapped.
		return nil, fmt.Errorf("pecreds: %s answered without wrapping the credentials", path)
	}
	w := s.WrapInfo
	return &Wrapped{Token: w.Token, Accessor: w.Accessor, TTL: time.Duration(w.TTL) * time.Second,
		CreationTime: w.CreationTime, CreationPath: w.CreationPath}, nil
}

// Unwrap is the activity worker's side of ResolveWrapped: it opens the wrapping token once
// (sys/wrapping/unwrap) and answers the credentials, after checking that it wraps a resolve of
// this client's mount (ErrWrappingTokenForeign otherwise). The request carries the wrapping token as
// its only token, whatever token the client holds, so a worker needs no Vault token or policy of
// its own; it calls Vault directly (a Vault Proxy that forces its own token would unwrap that
// token instead). A token already unwrapped, expired or unknown is ErrWrappingTokenInvalid.
func (c *Client) Unwrap(ctx context.Context, wrappingToken string) (*Credentials, error) {
	token := strings.TrimSpace(wrappingToken)
	if token == "" {
		return nil, &BadRequestError{Messages: []string{"wrapping token: it is empty"}}
	}
	if err := c.checkWrapped(ctx, token); err != nil {
		return nil, err
	}
	vault := c.vault.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = token })
	s, err := vault.Logical().UnwrapWithContext(ctx, "")
	if err != nil {
		return nil, classifyUnwrap(err)
	}
	if s == nil || len(s.Data) == 0 {
		return nil, fmt.Errorf("%w: the wrapping token held no credentials", ErrNotFound)
	}
	return credentialsOf(s.Data), nil
}

// checkWrapped looks the wrapping token up (sys/wrapping/lookup, which takes no token of its own
// and does not use the wrapping token up) and refuses one whose creation path is not a resolve of
// this mount.
func (c *Client) checkWrapped(ctx context.Context, token string) error {
	look := c.vault.WithRequestCallbacks(func(r *api.Request) { r.ClientToken = "" })
	s, err := look.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": token})
	if err != nil {
		return classifyUnwrap(err)
	}
	if s == nil {
		return ErrWrappingTokenInvalid
	}
	path, _ := s.Data["creation_path"].(string)
	if rest, ok := strings.CutPrefix(path, c.mount+"/process/"); !ok || !strings.Contains(rest, "/resolve") {
		return fmt.Errorf("%w (it wraps %q)", ErrWrappingTokenForeign, path)
	}
	return nil
}

// classifyUnwrap: Vault answers a used, expired or unknown wrapping token with a 400
// ("wrapping token is not valid or does not exist"), which is ErrWrappingTokenInvalid.
func classifyUnwrap(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return fmt.Errorf("%w: %s", ErrWrappingTokenInvalid, strings.Join(re.Errors, "; "))
	}
	return classify(err)
}
