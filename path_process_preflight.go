package pecreds

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Preflight: which credentials a process can reach will expire before a long step ends and not
// renew themselves; with open_tasks, the owner is asked early.

func pathProcessPreflight(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:        "process/" + nameSegment("id") + "/preflight$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "preflight", OperationSuffix: "process"},
			ExistenceCheck: actionExists,
			Fields: map[string]*framework.FieldSchema{
				"id":         {Type: framework.TypeString, Description: "The process id."},
				"duration":   {Type: framework.TypeDurationSecond, Description: "How far ahead to look, in seconds or as a Go duration such as 72h; required."},
				"open_tasks": {Type: framework.TypeBool, Description: "When the current credentials expire within the duration, open the owner's task now (reason expiring); the process stays running. Defaults to false."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: named("id", "process id", b.pathProcessPreflight),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"horizon":  {Type: framework.TypeString, Description: "Now plus duration (RFC 3339).", Required: true},
						"expiring": {Type: framework.TypeSlice, Description: "The credentials that expire before the horizon and do not renew themselves: {service, source, index, type, expires_at, technical}.", Required: true},
						"task_id":  {Type: framework.TypeString, Description: "With open_tasks: the owner's open task, if the current credentials expire."},
					}}}},
				},
			},
			HelpSynopsis: "List the credentials a process can reach that expire within a duration.",
			HelpDescription: `Answers the credentials this process can resolve (every service of its runtime layer,
definition and global registries, as the most specific layer defines it) that expire before now
plus duration and will not renew themselves: static tokens with expires_at, technical static
tokens, and the current credentials. OAuth2 technical credentials renew themselves and are left out;
so does a user's grant (oauth2_user with a refresh token) until its refresh token ends: it is listed
when its refresh_expires_at falls before the horizon.
With open_tasks=true, current credentials that expire open the owner's task now (reason
expiring), while the process keeps running.

  $ vault write pecreds/process/order-42/preflight duration=72h
  $ vault write pecreds/process/order-42/preflight duration=72h open_tasks=true`,
		},
	}
}

func (b *backend) pathProcessPreflight(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	raw, given := d.GetOk("duration")
	secs, ok := raw.(int) // the framework's TypeDurationSecond
	if !given || !ok || secs <= 0 {
		return badRequest(errors.New("duration is required: how far ahead to look, such as 72h"))
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	p, err := b.liveProcess(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	horizon := b.deps.now().Add(time.Duration(secs) * time.Second)
	expiring, err := b.expiringBefore(ctx, req.Storage, cfg, p, horizon)
	if err != nil {
		return nil, err
	}
	items := make([]map[string]any, 0, len(expiring))
	for _, e := range expiring {
		items = append(items, e.data())
	}
	data := map[string]any{"horizon": horizon.UTC().Format(time.RFC3339), "expiring": items}
	if open, _ := d.Get("open_tasks").(bool); open && cfg.TaskManager {
		for _, e := range expiring {
			if e.Type == "current" {
				taskID, err := b.openExpiringTask(ctx, b.writerWith(req.Storage, cfg), id, e.Service)
				if err != nil {
					return nil, err
				}
				data["task_id"] = taskID
				break
			}
		}
	}
	return &logical.Response{Data: data}, nil
}

// openExpiringTask asks the owner early for credentials that will expire; the process runs on.
func (b *backend) openExpiringTask(ctx context.Context, w *writer, id, service string) (string, error) {
	st, unlock, err := w.lock(ctx, id)
	defer unlock()
	if err != nil || st.Process == nil {
		return "", err
	}
	taskID, err := newTaskID()
	if err != nil {
		return "", err
	}
	next, err := w.change(ctx, st, lifecycle.Event{Kind: lifecycle.Expiring, Service: service, Reason: "expiring", NewTaskID: taskID})
	if err != nil || next.Task == nil {
		return "", err
	}
	return next.Task.ID, nil
}

// expiringEntry is one credential preflight reports.
type expiringEntry struct {
	Service, Source, Type string
	Index                 int
	Technical             string    // the technical credential's name, if it is one
	ExpiresAt             time.Time // for the order
	StatedExpiry          string    // expires_at as the credential states it
}

func (e expiringEntry) data() map[string]any {
	return map[string]any{"service": e.Service, "source": e.Source, "index": e.Index, "type": e.Type,
		"technical": e.Technical, "expires_at": e.StatedExpiry}
}

// grantEnds is a refreshable grant as preflight sees it: expiring when its refresh token does
// (refresh_expires_at); no expiry when the provider stated none.
func grantEnds(cur *Credential) (Credential, bool) {
	at, ok := cur.Fields["refresh_expires_at"]
	if !ok || at == "" {
		return Credential{}, false
	}
	return Credential{Type: cur.Type, Fields: map[string]string{"expires_at": at}}, true
}

// expiringBefore lists what the process can resolve that expires before the horizon and will not
// renew itself, soonest first.
func (b *backend) expiringBefore(ctx context.Context, s logical.Storage, cfg *configEntry, p *lifecycle.Process, horizon time.Time) ([]expiringEntry, error) {
	layers, err := b.processLayers(ctx, s, cfg, p)
	if err != nil {
		return nil, err
	}
	cur, err := b.getCurrent(ctx, s, p)
	if err != nil {
		return nil, err
	}
	var out []expiringEntry
	for _, ss := range resolve.EffectiveServices(layers) {
		for i, c := range ss.Service.Credentials {
			e := expiringEntry{Service: ss.Service.Name, Source: ss.Source, Index: i, Type: c.Type}
			subject := &c
			switch c.Type {
			case "technical":
				t, err := b.getTechnical(ctx, s, c.Fields["name"])
				if err != nil {
					return nil, err
				}
				if t == nil || t.rotates() {
					continue
				}
				subject, e.Technical, e.Type = &t.Credential, t.Name, t.Credential.Type
			case "current":
				if cur == nil || p.KeepCredentials == lifecycle.KeepNone {
					continue
				}
				subject = cur
				if refreshable(cur) {
					// A grant renews itself until its refresh token ends: that is what expires.
					grantEnd, ok := grantEnds(cur)
					if !ok {
						continue
					}
					subject = &grantEnd
				}
			}
			if subject.Expired(horizon) {
				e.ExpiresAt, _ = subject.ExpiresAt()
				e.StatedExpiry = subject.Fields["expires_at"]
				out = append(out, e)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ExpiresAt.Before(out[j].ExpiresAt) })
	return out, nil
}
