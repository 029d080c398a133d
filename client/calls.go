package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/internal/backoff"
)

// Credentials is a resolved credential: where it came from, and its fields (username and
// password, token, key and header, certificate..., access_token for OAuth2).
type Credentials struct {
	Service   string
	Source    string // runtime, definition:<registry> or global:<registry>
	Index     int    // its place in the service's list
	Type      string
	Technical string // the technical credential's name, for a technical entry
	Fields    map[string]any
	// Explain is the trace (layers, candidates, each credential tried) when asked for.
	Explain map[string]any
}

// ResolveOption changes a resolve.
type ResolveOption func(map[string]any)

// WithExplain asks for the trace: the layers, candidates and every credential tried.
func WithExplain() ResolveOption { return func(m map[string]any) { m["explain"] = true } }

// WithType keeps only credentials of the type (password, token, api_key, ...).
func WithType(t string) ResolveOption { return func(m map[string]any) { m["type"] = t } }

// WithRealm resolves a URL for a realm the service challenged for.
func WithRealm(realm string) ResolveOption { return func(m map[string]any) { m["realm"] = realm } }

// Resolve answers the credentials to use for a service, by name. Nothing usable is a
// *BadRequestError that lists every candidate and why it was skipped, or a *BrokenError when the
// process broke because its user's own credentials are gone. A service name that breaks the
// server's name rule is a *BadRequestError before any call.
func (p *Process) Resolve(ctx context.Context, service string, opts ...ResolveOption) (*Credentials, error) {
	if err := checkName("service", service); err != nil {
		return nil, err
	}
	path, err := p.c.processPath(p.ID, "resolve", service)
	if err != nil {
		return nil, err
	}
	q := map[string][]string{}
	for k, v := range options(opts) {
		q[k] = []string{fmt.Sprint(v)}
	}
	s, err := p.c.vault.Logical().ReadWithDataWithContext(ctx, path, q)
	return p.answer(ctx, path, s, err)
}

// ResolveURL answers the credentials to use for the URL the process is about to call. The URL
// goes in the request body (a write), so it is in no request line, and in no proxy's or Vault's
// request log.
func (p *Process) ResolveURL(ctx context.Context, url string, opts ...ResolveOption) (*Credentials, error) {
	path, err := p.c.processPath(p.ID, "resolve")
	if err != nil {
		return nil, err
	}
	data := options(opts)
	data["url"] = url
	s, err := p.c.vault.Logical().WriteWithContext(ctx, path, data)
	return p.answer(ctx, path, s, err)
}

func options(opts []ResolveOption) map[string]any {
	data := map[string]any{}
	for _, o := range opts {
		o(data)
	}
	return data
}

// answer reads a resolve's answer into Credentials.
func (p *Process) answer(ctx context.Context, path string, s *api.Secret, err error) (*Credentials, error) {
	if err != nil {
		err = classify(err)
		var bad *BadRequestError
		if errors.As(err, &bad) {
			if broken := p.brokenNow(ctx); broken != nil {
				return nil, broken
			}
		}
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if s.WrapInfo != nil { // a wrapping lookup function (VAULT_WRAP_TTL) wrapped a plain resolve
		return nil, fmt.Errorf("pecreds: %s answered wrapped: use ResolveWrapped and Unwrap", path)
	}
	return credentialsOf(s.Data), nil
}

// credentialsOf reads a resolve's answer (its data) into Credentials.
func credentialsOf(data map[string]any) *Credentials {
	c := &Credentials{Fields: map[string]any{}}
	for k, v := range data {
		switch k {
		case "service":
			c.Service, _ = v.(string)
		case "source":
			c.Source, _ = v.(string)
		case "index":
			c.Index = asInt(v)
		case "type":
			c.Type, _ = v.(string)
			c.Fields[k] = v
		case "technical":
			c.Technical, _ = v.(string)
		case "explain":
			c.Explain, _ = v.(map[string]any)
		default:
			c.Fields[k] = v
		}
	}
	return c
}

// brokenNow is a *BrokenError when the process is broken now (nil otherwise, or when unknown).
func (p *Process) brokenNow(ctx context.Context) *BrokenError {
	st, err := p.State(ctx)
	if err != nil || st.Health != "broken" {
		return nil
	}
	return &BrokenError{ProcessID: p.ID, TaskID: st.TaskID, Reason: st.HealthReason}
}

// State is what a process read shows.
type State struct {
	Health             string // running, broken, failed
	HealthReason       string
	TaskID             string // the open task it waits for
	CurrentCredentials string // kept, lost, expired or none
}

// State reads the process.
func (p *Process) State(ctx context.Context) (*State, error) {
	path, err := p.c.processPath(p.ID)
	if err != nil {
		return nil, err
	}
	s, err := p.c.vault.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, classify(err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: process %s", ErrNotFound, p.ID)
	}
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	return &State{Health: str("health"), HealthReason: str("health_reason"), TaskID: str("task_id"), CurrentCredentials: str("current_credentials")}, nil
}

// Verdict is what a report means for the process.
type Verdict struct {
	Health string // running, broken, failed
	Action string // ActionRetry, ActionWait, ActionAbort
	TaskID string // with ActionWait: the owner's task (empty: an operator resumes it)
}

// Report tells pecreds that a call with the service's credentials failed, with an error class
// (AuthFailed, ...). The verdict says what to do.
func (p *Process) Report(ctx context.Context, service, class string) (*Verdict, error) {
	if err := checkName("service", service); err != nil {
		return nil, err
	}
	path, err := p.c.processPath(p.ID, "report")
	if err != nil {
		return nil, err
	}
	s, err := p.c.vault.Logical().WriteWithContext(ctx, path, map[string]any{"service": service, "error": class})
	if err != nil {
		return nil, classify(err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	return &Verdict{Health: str("health"), Action: str("action"), TaskID: str("task_id")}, nil
}

// AddRuntime adds services to the process's runtime layer (merged by name), in the registry's
// form: [{"name": ..., "url": ..., "credentials": [...]}].
func (p *Process) AddRuntime(ctx context.Context, services []map[string]any) error {
	path, err := p.c.processPath(p.ID, "credentials")
	if err != nil {
		return err
	}
	// A JSON list, not JSON text: Vault's listener answers a string over 1 MiB with a 500 before
	// pecreds sees it; a list reaches pecreds, whose 400 names the limit.
	_, err = p.c.vault.Logical().WriteWithContext(ctx, path, map[string]any{"services": services})
	return classify(err)
}

// Preflight asks which credentials the process would use expire within d; pecreds opens the
// owner's task early when its own do. It answers the raw report.
func (p *Process) Preflight(ctx context.Context, d time.Duration) (map[string]any, error) {
	path, err := p.c.processPath(p.ID, "preflight")
	if err != nil {
		return nil, err
	}
	s, err := p.c.vault.Logical().WriteWithContext(ctx, path, map[string]any{"duration": d.String()})
	if err != nil {
		return nil, classify(err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return s.Data, nil
}

// Wake makes a WaitRunning look again now (say, when the Task Manager's webhook told the engine
// the task was completed).
func (p *Process) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pollBackoff spaces WaitRunning's reads of a process that is not running yet.
var pollBackoff = backoff.Doubling{First: 500 * time.Millisecond, Limit: 30 * time.Second}

// WaitRunning waits until the process runs again: it reads the process with backoff (0.5 s
// doubling to 30 s), or at once after Wake. A failed process is an error; so is ctx's end.
func (p *Process) WaitRunning(ctx context.Context) error {
	for failures := 1; ; {
		st, err := p.State(ctx)
		if err != nil {
			return err
		}
		switch st.Health {
		case "running":
			return nil
		case "failed":
			return fmt.Errorf("pecreds: process %s failed (%s)", p.ID, st.HealthReason)
		}
		t := time.NewTimer(pollBackoff.After(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-p.wake:
			t.Stop()
		case <-t.C:
			failures++
		}
	}
}

func asInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}
