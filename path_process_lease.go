package pecreds

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The process lease: Vault renews and revokes it through these (secret type process); a
// revocation, like a delete of the process, ends it (endProcess).

// processSecretType is the secret type of a process's lease.
const processSecretType = "process"

func processSecret(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: processSecretType,
		Fields: map[string]*framework.FieldSchema{
			"id": {Type: framework.TypeString, Description: "The process id."},
		},
		Renew:  b.processRenew,
		Revoke: b.processRevoke,
	}
}

// leaseProcess is the process id and nonce a lease was issued for.
func leaseProcess(req *logical.Request) (id, nonce string, err error) {
	id, ok := req.Secret.InternalData["process_id"].(string)
	if !ok || id == "" {
		return "", "", fmt.Errorf("the lease carries no process id")
	}
	nonce, _ = req.Secret.InternalData["nonce"].(string)
	return id, nonce, nil
}

// processRenew extends a live process's lease by process_ttl (or the increment asked for);
// Vault caps it at process_max_ttl and the mount's limit.
func (b *backend) processRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, nonce, err := leaseProcess(req)
	if err != nil {
		return nil, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = cfg.ProcessTTL
	if req.Secret.Increment > 0 {
		resp.Secret.TTL = req.Secret.Increment
	}
	resp.Secret.MaxTTL = cfg.ProcessMaxTTL
	w := b.writerWith(req.Storage, cfg)
	st, unlock, err := w.lock(ctx, id)
	defer unlock()
	if err != nil {
		return nil, err
	}
	if st.Process == nil || (nonce != "" && st.Process.Nonce != nonce) {
		return nil, fmt.Errorf("process %q has ended: its lease cannot be renewed", id)
	}
	// The process's own expiry follows the lease (an upper bound: Vault may cap the TTL lower).
	if _, err := w.change(ctx, st, lifecycle.Event{Kind: lifecycle.Renew, ExpiresAt: b.deps.now().UTC().Add(resp.Secret.TTL)}); err != nil {
		return nil, err
	}
	return resp, nil
}

// processRevoke ends the process. Idempotent: the process may already be deleted.
func (b *backend) processRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, nonce, err := leaseProcess(req)
	if err != nil {
		return nil, err
	}
	return nil, b.endProcess(ctx, req.Storage, id, nonce)
}

// endProcess ends a process: its current credentials wiped, its open task cancelled.
// Idempotent: revoking the lease of a deleted process is not an error. With a nonce (a lease's
// revocation), only the process that lease was issued for is ended.
func (b *backend) endProcess(ctx context.Context, s logical.Storage, id, nonce string) error {
	w, st, unlock, err := b.lockLife(ctx, s, id)
	defer unlock()
	if err != nil {
		return err
	}
	if st.Process == nil {
		// Nothing to end; whatever a crash left of its credentials goes.
		return b.deleteCurrent(ctx, s, &lifecycle.Process{ID: id, KeepCredentials: lifecycle.KeepPersistent})
	}
	if nonce != "" && st.Process.Nonce != nonce {
		return nil // a newer process of the same id: not this lease's
	}
	_, err = w.change(ctx, st, lifecycle.Event{Kind: lifecycle.End})
	return err
}
