package tests

import (
	"net/http"
	"strings"
	"testing"
)

// Attack tests of the engine-host policy on leases (examples/policies/engine-host.hcl): the engine
// renews and ends its own mount's process leases, never another lease in the namespace.

// 8. The engine-host policy ends its own processes' leases, never another lease in the namespace.
func TestAttackEngineHostRevokesOnlyProcessLeases(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	other := newMountNamed(t, m+"-other")
	write(t, other+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	foreign := write(t, other+"/process/foreign", map[string]any{"definition": "orders"}).LeaseID

	_, err := p.engine.Logical().Write("sys/leases/revoke", map[string]any{"lease_id": foreign})
	if statusOf(err) != http.StatusForbidden {
		t.Errorf("the body form of sys/leases/revoke: %v", err)
	}
	_, err = p.engine.Logical().Write("sys/leases/revoke/"+foreign, nil)
	if statusOf(err) != http.StatusForbidden {
		t.Errorf("the URL form for another mount's lease: %v", err)
	}
	if read(t, other+"/process/foreign") == nil {
		t.Fatal("the foreign process was ended")
	}
	own, err := p.engine.Logical().Write(m+"/process/own", map[string]any{"definition": "orders", "owner_entity_id": p.annEntity})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.engine.Logical().Write("sys/leases/revoke/"+own.LeaseID, nil); err != nil {
		t.Fatalf("the engine revokes its own process's lease: %v", err)
	}
	if s, _ := env.client.Logical().Read(m + "/process/own"); s != nil {
		t.Errorf("the process outlived its lease: %v", s.Data)
	}
}

// 8b. The engine-host policy renews its own mount's process leases (the body form, as
// api.LifetimeWatcher and vault lease renew send it), never another lease: a lease of another
// pecreds mount stays as it was.
func TestAttackEngineHostRenewsOnlyProcessLeases(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	registry := map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}}
	write(t, m+"/registry/orders", registry)
	other := newMountNamed(t, m+"-other")
	write(t, other+"/registry/orders", registry)
	foreign := write(t, other+"/process/foreign", map[string]any{"definition": "orders", "ttl": "1h"}).LeaseID
	if !strings.HasPrefix(foreign, other+"/process/") || !strings.HasPrefix(foreign, m) {
		t.Fatalf("the foreign lease %q does not share the mount's prefix: the attack would prove nothing", foreign)
	}

	for _, increment := range []int{0, 7200} {
		_, err := p.engine.Sys().Renew(foreign, increment)
		if statusOf(err) != http.StatusForbidden {
			t.Errorf("renewing another mount's lease (increment %d): %v", increment, err)
		}
	}
	_, err := p.engine.Logical().Write("sys/leases/renew", map[string]any{"lease_id": foreign, "increment": 60, "sneak": "x"})
	if statusOf(err) != http.StatusForbidden {
		t.Errorf("a parameter the policy does not name: %v", err)
	}
	_, err = p.engine.Logical().Write("sys/leases/renew/"+foreign, nil)
	if statusOf(err) != http.StatusForbidden {
		t.Errorf("the URL form for another mount's lease: %v", err)
	}

	own, err := p.engine.Logical().Write(m+"/process/own", map[string]any{"definition": "orders", "owner_entity_id": p.annEntity, "ttl": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := p.engine.Sys().Renew(own.LeaseID, 7200)
	if err != nil || renewed.LeaseID != own.LeaseID || renewed.LeaseDuration < 3600 {
		t.Fatalf("the engine renews its own process's lease: %v %v", renewed, err)
	}
}
