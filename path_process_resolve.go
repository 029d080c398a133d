package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Resolve and preflight: the handlers gather the layers and a snapshot, and internal/resolve decides.

func pathProcessResolve(b *backend) []*framework.Path {
	idField := &framework.FieldSchema{Type: framework.TypeString, Description: "The process id."}
	queryFields := map[string]*framework.FieldSchema{
		"id":      idField,
		"type":    {Type: framework.TypeString, Query: true, Description: "Keep only credentials of this type (password, token, api_key, certificate, oauth2, oauth2_user). Defaults to any type."},
		"all":     {Type: framework.TypeBool, Query: true, Description: "Answer every usable credential, in order, as credentials: [...]. Defaults to false: the first usable one, flat."},
		"explain": {Type: framework.TypeBool, Query: true, Description: "Add the whole trace: the layers, the candidate services, each credential tried and why it was skipped. Defaults to false."},
	}
	byName := map[string]*framework.FieldSchema{"service": {Type: framework.TypeString, Description: "The service's name."}}
	byURL := map[string]*framework.FieldSchema{
		"url":   {Type: framework.TypeString, Query: true, Description: "The URL the process is about to call; required. It is normalized first (RFC 3986: percent-encoded unreserved characters decoded, dot segments removed); a path that servers read in different ways — a backslash, an encoded slash or backslash (%2F, %5C, so also ..%2F), a double encoding of a dot, slash or backslash (%252E, %252F, %255C), or a dot segment with parameters (..;) — is a 400, never matched. A service matches when scheme, host and port are equal and its path is a whole-segment prefix; the longest path wins."},
		"realm": {Type: framework.TypeString, Query: true, Description: "The request's realm (RFC 7235), once a challenge named it: a service with this realm beats one without at equal path length; a service with another realm never matches. Defaults to none: services with or without a realm match, one without wins at equal path length, and several with different realms (none without) are a 400 naming the realms."},
	}
	for k, v := range queryFields {
		byName[k], byURL[k] = v, v
	}
	return []*framework.Path{
		{
			Pattern:      "process/" + nameSegment("id") + "/resolve/" + nameSegment("service") + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "resolve", OperationSuffix: "service"},
			Fields:       byName,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("service", "service name", b.pathResolveByName),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: resolveResponseFields}}},
				},
			},
			HelpSynopsis:    "Resolve a service's credentials for a process, by the service's name.",
			HelpDescription: resolveHelpDescription,
		},
		{
			Pattern:        "process/" + nameSegment("id") + "/resolve$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "resolve", OperationSuffix: "url"},
			Fields:         byURL,
			ExistenceCheck: actionExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathResolveByURL,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: resolveResponseFields}}},
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:     b.pathResolveByURL,
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "resolve", OperationSuffix: "url-with-parameters"},
					Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: resolveResponseFields}}},
				},
			},
			HelpSynopsis:    "Resolve the credentials for a URL a process is about to call.",
			HelpDescription: resolveHelpDescription,
		},
	}
}

func (b *backend) pathResolveByName(ctx context.Context, req *logical.Request, d *framework.FieldData, service string) (*logical.Response, error) {
	return b.resolveFor(ctx, req, d, resolve.Query{Service: service})
}

func (b *backend) pathResolveByURL(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	u := d.Get("url").(string)
	if u == "" {
		return badRequest(errors.New("url is required: the URL the process is about to call"))
	}
	if _, err := resolve.ParseEndpoint(u); err != nil {
		return badRequest(err)
	}
	return b.resolveFor(ctx, req, d, resolve.Query{URL: u, Realm: d.Get("realm").(string)})
}

// resolveFor answers a resolve: the process's layers, resolve.go's verdict, a flat answer.
func (b *backend) resolveFor(ctx context.Context, req *logical.Request, d *framework.FieldData, q resolve.Query) (*logical.Response, error) {
	id := d.Get("id").(string)
	if err := credential.ValidateName("process id", id); err != nil {
		return badRequest(err)
	}
	q.Type, q.All, q.Explain = d.Get("type").(string), d.Get("all").(bool), d.Get("explain").(bool)

	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	p, err := b.liveProcessCold(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if p.Health == lifecycle.Failed {
		return badRequest(fmt.Errorf("process %q is failed (%s): a failed process resolves nothing", id, p.HealthReason))
	}
	res, rerr := b.resolveProcess(ctx, req.Storage, cfg, p, q, true)
	var ambiguous resolve.AmbiguousRealmError
	if errors.As(rerr, &ambiguous) {
		return badRequest(fmt.Errorf("process %q: %v", id, ambiguous))
	}
	if rerr != nil && !errors.Is(rerr, resolve.ErrNoService) {
		return nil, rerr
	}
	if rerr == nil && len(res.Found) == 0 && len(res.Pending) > 0 {
		// A token on its way: retry, and nothing changes (not even for lost current credentials).
		return retryAnswer(describeFailure(p, q, res, nil) + "; " + whenToRetry(time.Time{}, b.deps.now()))
	}
	if rerr == nil && len(res.Found) == 0 && res.CurrentUnusable != "" && q.Type == "" {
		// Every entry was tried (nothing was found), so the trace is whole.
		// Nothing usable because the user's own credentials are gone: the owner is asked.
		msg, err := b.breakForCurrent(ctx, b.writerWith(req.Storage, cfg), p.ID, res.Service, res.CurrentUnusable)
		if err != nil {
			return nil, err
		}
		return badRequest(errors.New(msg + "; " + describeFailure(p, q, res, nil)))
	}
	if rerr == nil && len(res.Found) == 0 && !res.RetryAt.IsZero() {
		return retryAnswer(describeFailure(p, q, res, nil) + "; " + whenToRetry(res.RetryAt, b.deps.now()))
	}
	if rerr != nil || len(res.Found) == 0 {
		return badRequest(errors.New(describeFailure(p, q, res, rerr)))
	}
	data := resolveAnswer(res, q.All)
	if q.Explain {
		trace := map[string]any{"layers": res.Layers, "tried": res.Tried}
		if q.URL != "" {
			trace["candidates"] = res.Candidates
		}
		data["explain"] = trace
	}
	return &logical.Response{Data: data}, nil
}

// breakForCurrent is a resolve's verdict when the current credentials are lost or expired and
// nothing else is usable: the process goes broken and its owner gets a task (failed without a
// Task Manager). The answer names the task.
func (b *backend) breakForCurrent(ctx context.Context, w *writer, id, service, status string) (string, error) {
	st, unlock, err := w.lock(ctx, id)
	defer unlock()
	if err != nil || st.Process == nil {
		return fmt.Sprintf("process %q has ended", id), err
	}
	p := st.Process
	// Decided again under the lock: a task may have been completed since the resolve looked.
	cur, err := b.getCurrent(ctx, w.s, p)
	if err != nil {
		return "", err
	}
	switch now := p.CurrentStatus(cur, b.deps.now()); {
	case p.Health == lifecycle.Failed:
		return fmt.Sprintf("process %q has failed", id), nil
	case now != resolve.CurrentLost && now != resolve.CurrentExpired:
		return fmt.Sprintf("process %q: its current credentials were just replaced; resolve again", id), nil
	}
	cfg := w.cfg
	ev := lifecycle.Event{Kind: lifecycle.Failure, Service: service, Reason: status, Health: lifecycle.Failed,
		HealthReason: fmt.Sprintf("the current credentials are %s (service %q)", status, service)}
	if cfg.TaskManager {
		if ev.NewTaskID, err = newTaskID(); err != nil {
			return "", err
		}
		ev.Health, ev.CurrentFailed = lifecycle.Broken, true
	}
	next, err := w.change(ctx, st, ev)
	if err != nil {
		return "", err
	}
	if !cfg.TaskManager {
		return fmt.Sprintf("process %q failed: its current credentials are %s and no Task Manager is configured", id, status), nil
	}
	return fmt.Sprintf("process %q is broken: its current credentials are %s; task %s asks its owner for new ones", id, status, next.Process.TaskID), nil
}

// resolveAnswer is the flat answer: {service, source, index, type, fields...}, or with all,
// {service, source, credentials: [{index, type, fields...}]}.
func resolveAnswer(res *resolve.Resolution, all bool) map[string]any {
	if all {
		creds := make([]map[string]any, 0, len(res.Found))
		for _, f := range res.Found {
			m := copyMap(f.Material)
			m["index"] = f.Index
			creds = append(creds, m)
		}
		return map[string]any{"service": res.Service, "source": res.Source, "credentials": creds}
	}
	data := copyMap(res.Found[0].Material)
	data["service"], data["source"], data["index"] = res.Service, res.Source, res.Found[0].Index
	return data
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+3)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// describeFailure is the 400's message: every candidate and why it was not used.
func describeFailure(p *lifecycle.Process, q resolve.Query, res *resolve.Resolution, err error) string {
	var sb strings.Builder
	switch {
	case err != nil && !errors.Is(err, resolve.ErrNoService):
		return err.Error()
	case err != nil && q.URL != "":
		fmt.Fprintf(&sb, "process %q: no service matches url %q", p.ID, redactURL(q.URL))
		var reasons []string
		for _, c := range res.Candidates {
			reasons = append(reasons, fmt.Sprintf("%v (%v): %v", c["service"], c["source"], c["reason"]))
		}
		if len(reasons) > 0 {
			fmt.Fprintf(&sb, "; candidates: %s", strings.Join(reasons, "; "))
		}
		return sb.String()
	case err != nil:
		var sources []string
		for _, l := range res.Layers {
			sources = append(sources, fmt.Sprint(l["source"]))
		}
		return fmt.Sprintf("process %q: no layer defines service %q (looked in %s)", p.ID, q.Service, strings.Join(sources, ", "))
	}
	fmt.Fprintf(&sb, "process %q: no usable credential for service %q (from %s)", p.ID, res.Service, res.Source)
	for _, t := range res.Tried {
		what := t.Type
		if t.Name != "" {
			what += " " + t.Name
		}
		fmt.Fprintf(&sb, "; [%d] %s: %s", t.Index, what, t.Skipped)
	}
	return sb.String()
}

// resolveProcess resolves for a process from what the backend holds (served from memory): it
// finds the service, snapshots the technical credentials it names and the current credentials,
// and chooses. A technical entry before the answer without a valid token is passed over when a
// later entry is usable now (its token is asked for in the background); when nothing is usable,
// and wait, the tokens are asked for and waited on for a bounded time (awaitTokens).
func (b *backend) resolveProcess(ctx context.Context, s logical.Storage, cfg *configEntry, p *lifecycle.Process, q resolve.Query, wait bool) (*resolve.Resolution, error) {
	layers, err := b.processLayers(ctx, s, cfg, p)
	if err != nil {
		return nil, err
	}
	m, found, err := resolve.Find(layers, q)
	if err != nil {
		return found, err // no service, or an ambiguous realm: found says what was looked at
	}
	snap, err := b.resolveSnapshot(ctx, s, p, m.Technicals())
	if err != nil {
		return nil, err
	}
	res := resolve.Choose(m, q, snap, b.deps.now())
	switch {
	case len(res.Refresh) == 0:
		return res, nil
	case len(res.Found) > 0:
		// A later credential is usable now: it is the answer, and the tokens of those passed over
		// are asked for in the background, for the next resolve.
		for _, name := range res.Refresh {
			b.demandToken(s, cfg, name, false)
		}
		passedOver(res)
		return res, nil
	}
	if !wait {
		return res, nil // the caller holds a lock: it never waits on a token request
	}
	return b.awaitTokens(ctx, s, cfg, m, q, snap, res.Refresh)
}

// redactURL drops what a URL may carry that is secret (user info, query, fragment) before it is
// echoed in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// processLayers is the process's resolution order: runtime, definition, global registries.
func (b *backend) processLayers(ctx context.Context, s logical.Storage, cfg *configEntry, p *lifecycle.Process) ([]resolve.Layer, error) {
	layers := []resolve.Layer{{Source: "runtime", Services: p.Runtime}}
	add := func(kind, name string) error {
		reg, err := b.getRegistry(ctx, s, name)
		if err != nil {
			return err
		}
		l := resolve.Layer{Source: kind + ":" + name, Missing: reg == nil}
		if reg != nil {
			l.Services = reg.Services
		}
		layers = append(layers, l)
		return nil
	}
	if p.Definition != "" {
		if err := add("definition", p.Definition); err != nil {
			return nil, err
		}
	}
	for _, g := range cfg.GlobalRegistries {
		if err := add("global", g); err != nil {
			return nil, err
		}
	}
	return layers, nil
}

// resolveSnapshot is what resolution needs beyond the layers: the named technical credentials as
// they stand (no token is fetched here) and the process's current credentials.
func (b *backend) resolveSnapshot(ctx context.Context, s logical.Storage, p *lifecycle.Process, technicals []string) (resolve.Snapshot, error) {
	now := b.deps.now()
	cur, err := b.getCurrent(ctx, s, p)
	if err != nil {
		return resolve.Snapshot{}, err
	}
	snap := resolve.Snapshot{Technical: make(map[string]resolve.Technical, len(technicals)), CurrentStatus: p.CurrentStatus(cur, now)}
	if cur != nil {
		snap.Current = *cur
	}
	if snap.CurrentStatus == resolve.CurrentRefreshing {
		snap.CurrentRetryAt, snap.CurrentWhy = b.grants.retryAt(p.ID)
		if !snap.CurrentRetryAt.After(now) {
			snap.CurrentRetryAt = now.Add(oauth.MinBackoff) // due, or this node does not refresh
		}
	}
	for _, name := range technicals {
		e, err := b.getTechnical(ctx, s, name)
		if err != nil || e == nil {
			if err != nil {
				return resolve.Snapshot{}, err
			}
			continue // resolution says it does not exist
		}
		var st *oauth.State
		if e.rotates() {
			if st, err = b.getTokenState(ctx, s, name); err != nil {
				return resolve.Snapshot{}, err
			}
		}
		snap.Technical[name] = b.technicalAsResolved(e, st, now, b.tokenPlan(e, st, false))
	}
	return snap, nil
}

const resolveHelpDescription = `
Resolves which credentials a process uses for a service, through three layers, most specific
first: its runtime layer, its definition registry, then the global registries in config order. The
first layer that has the service wins (lists are not merged); in its list, the first usable
credential is answered. A technical entry whose credential is missing or has no valid token, a
current entry whose credentials are not kept, lost or expired, and an expired token are skipped.

  $ vault read pecreds/process/order-42/resolve/crm
  $ vault read pecreds/process/order-42/resolve/crm explain=true
  $ vault read pecreds/process/order-42/resolve url=https://crm.example.com/api/customers/7
  $ vault read pecreds/process/order-42/resolve/crm all=true type=password

The answer is flat, so a template reads .Data.username: service, source, index, type, the
credential's fields, technical (the name, for a technical entry), and for OAuth2 tokens
expires_at, ttl and rotation_period. all=true answers credentials: [...]; explain=true adds the
trace. Nothing usable is a 400 that lists every candidate and why it was skipped.

A user's grant (oauth2_user, as current credentials or a runtime entry) answers token_type,
access_token and expires_at only: never its refresh token, client, scope or refresh expiry. Its
access token is never answered once expired. pecreds refreshes a current grant that has a
refresh token before it expires; if its provider cannot be reached until the access token has
expired, the resolve answers 503 with the reason and when to retry, and the process stays running.
A refresh the provider refuses (invalid_grant: revoked, expired or reused) is a failure of the
current credentials of class credentials_expired: broken, by default, with a task for the owner.

By URL, the request URL is normalized first (RFC 3986: percent-encoded unreserved characters
decoded, dot segments removed), so /admin/../public/x matches the /public service. A request
without a realm matches services with or without one (one without wins at equal path length);
several with different realms and none without are a 400 that names them: ask again with realm.
A failed process resolves nothing: a 400 naming its health.
`
