package pecreds

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// Preflight: which credentials a process can reach will expire before a long step ends and not
// renew themselves; with open_tasks, the owner is asked early.

func (b *backend) pathProcessPreflight(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	raw, ok := d.GetOk("duration")
	if !ok || raw.(int) <= 0 {
		return badRequest(errors.New("duration is required: how far ahead to look, such as 72h"))
	}
	p, err := b.liveProcess(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	horizon := b.deps.now().Add(time.Duration(raw.(int)) * time.Second)
	expiring, err := b.expiringBefore(ctx, req.Storage, p, horizon)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"horizon": horizon.UTC().Format(time.RFC3339), "expiring": expiring}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if d.Get("open_tasks").(bool) && cfg.TaskManager {
		for _, item := range expiring {
			if item["type"] == "current" {
				taskID, err := b.openExpiringTask(ctx, req.Storage, id, item["service"].(string))
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
func (b *backend) openExpiringTask(ctx context.Context, s logical.Storage, id, service string) (string, error) {
	lock := locksutil.LockForKey(b.processLocks, id)
	lock.Lock()
	defer lock.Unlock()
	st, err := b.loadLife(ctx, s, id)
	if err != nil || st.Process == nil {
		return "", err
	}
	taskID, err := newTaskID()
	if err != nil {
		return "", err
	}
	next, err := b.change(ctx, s, st, lifeEvent{Kind: lifeExpiring, Service: service, Reason: "expiring", NewTaskID: taskID})
	if err != nil || next.Task == nil {
		return "", err
	}
	return next.Task.ID, nil
}

// expiringBefore lists what the process can resolve that expires before the horizon and will not
// renew itself.
func (b *backend) expiringBefore(ctx context.Context, s logical.Storage, p *processEntry, horizon time.Time) ([]map[string]any, error) {
	layers, err := b.processLayers(ctx, s, p)
	if err != nil {
		return nil, err
	}
	cur, err := b.getCurrent(ctx, s, p)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, ss := range resolve.EffectiveServices(layers) {
		for i, c := range ss.Service.Credentials {
			item := map[string]any{"service": ss.Service.Name, "source": ss.Source, "index": i, "type": c.Type, "technical": ""}
			subject := &c
			switch c.Type {
			case "technical":
				e, err := b.getTechnical(ctx, s, c.Fields["name"])
				if err != nil {
					return nil, err
				}
				if e == nil || e.rotates() {
					continue
				}
				subject, item["technical"], item["type"] = &e.Credential, e.Name, e.Credential.Type
			case "current":
				if cur == nil || p.KeepCredentials == keepNone {
					continue
				}
				subject, item["type"] = cur, "current"
			}
			if subject.Expired(horizon) {
				item["expires_at"] = subject.Fields["expires_at"]
				out = append(out, item)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return fmt.Sprint(out[i]["expires_at"]) < fmt.Sprint(out[j]["expires_at"]) })
	return out, nil
}
