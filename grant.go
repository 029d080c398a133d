package pecreds

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A user's delegated grant (oauth2_user) at the edge: before it is kept — as a process's current
// credentials, a task's completion or a runtime entry — it is settled at the backend's clock
// (expires_in becomes expires_at; a dead grant is refused) and its client must be an oauth2
// technical credential that exists, the one its refreshes will authenticate as.

// settleCurrent readies a current credential given in field (current, credentials) to be kept.
// Bad input is a lifecycle.Refusal; any other error is storage's.
func (b *backend) settleCurrent(ctx context.Context, s logical.Storage, field string, c Credential) (Credential, error) {
	settled, err := c.Settle(b.deps.now())
	if err != nil {
		return Credential{}, lifecycle.Refusal{Reason: fmt.Sprintf("%s: %v", field, err)}
	}
	if err := b.checkGrantClient(ctx, s, field, settled); err != nil {
		return Credential{}, err
	}
	return settled, nil
}

// settleRuntime readies services added to a runtime layer to be kept, as settleCurrent does.
func (b *backend) settleRuntime(ctx context.Context, s logical.Storage, services []Service) ([]Service, error) {
	settled, err := credential.SettleServices(services, b.deps.now())
	if err != nil {
		return nil, lifecycle.Refusal{Reason: err.Error()}
	}
	for i, svc := range settled {
		for j, c := range svc.Credentials {
			if err := b.checkGrantClient(ctx, s, fmt.Sprintf("services[%d] (%s).credentials[%d]", i, svc.Name, j), c); err != nil {
				return nil, err
			}
		}
	}
	return settled, nil
}

// checkGrantClient: a grant's client names an oauth2 technical credential that exists. place
// names the credential in the refusal.
func (b *backend) checkGrantClient(ctx context.Context, s logical.Storage, place string, c Credential) error {
	if c.Type != credential.GrantType {
		return nil
	}
	name := c.Fields["client"]
	e, err := b.getTechnical(ctx, s, name)
	switch {
	case err != nil:
		return err
	case e == nil:
		return lifecycle.Refusal{Reason: fmt.Sprintf(`%s: field "client": technical credential %q does not exist; a grant's client is an oauth2 technical credential (its token URL and client authentication refresh the grant): write technical/%s first`, place, name, name)}
	case e.Credential.Type != "oauth2":
		return lifecycle.Refusal{Reason: fmt.Sprintf(`%s: field "client": technical credential %q is of type %s; a grant's client must be of type oauth2 (its token URL and client authentication refresh the grant)`, place, name, e.Credential.Type)}
	}
	return nil
}
