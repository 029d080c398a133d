package pecreds

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// A lane holds limit refreshes in the air; the next waits in it, once however often it is popped,
// and is answered when a place frees; a grant popped while its refresh is in the air is neither
// let in nor left waiting, and goes back to the schedule when that refresh ends. Lanes are
// separate.
func TestGrantLanes(t *testing.T) {
	l := newGrantLanes()
	steps := []struct {
		enter      bool // enter, else leave
		client, id string
		want       bool     // enter's answer
		again      []string // leave's answer
	}{
		{enter: true, client: "slow", id: "a", want: true},
		{enter: true, client: "slow", id: "b", want: true},
		{enter: true, client: "slow", id: "c"},               // full: c waits
		{enter: true, client: "slow", id: "c"},               // popped again: still waits, once
		{enter: true, client: "slow", id: "a"},               // in the air
		{enter: true, client: "fast", id: "d", want: true},   // another lane
		{client: "slow", id: "a", again: []string{"a", "c"}}, // a popped meanwhile, c waited longest
		{enter: true, client: "slow", id: "c", want: true},   // c's turn
		{client: "slow", id: "b", again: nil},                // nobody waits
		{client: "fast", id: "d", again: nil},                //
		{enter: true, client: "fast", id: "e", want: true},   //
		{enter: true, client: "slow", id: "f", want: true},   // a place freed by b
		{enter: true, client: "slow", id: "g"},               // full again
		{client: "slow", id: "c", again: []string{"g"}},      //
		{enter: true, client: "slow", id: "g", want: true},   //
		{enter: true, client: "slow", id: "h"},               //
		{client: "slow", id: "f", again: []string{"h"}},      //
		{client: "slow", id: "g", again: nil},                //
		{enter: true, client: "slow", id: "h", want: true},   //
		{client: "slow", id: "h", again: nil},                //
		{client: "fast", id: "e", again: nil},                // every lane empty
		{enter: true, client: "slow", id: "a", want: true},   // a's "again" was spent
	}
	for i, s := range steps {
		if s.enter {
			if got := l.enter(s.client, s.id, 2); got != s.want {
				t.Fatalf("step %d: enter %s %s = %v, want %v", i, s.client, s.id, got, s.want)
			}
			continue
		}
		if got := l.leave(s.client, s.id); !slices.Equal(got, s.again) {
			t.Fatalf("step %d: leave %s %s = %v, want %v", i, s.client, s.id, got, s.again)
		}
	}
	l.enter("slow", "b", 1)
	if got := l.waitingAll(); !slices.Equal(got, []string{"b"}) || len(l.waiting) != 0 || l.enter("slow", "b", 2) != true {
		t.Errorf("taken out of the lanes: %v; then waiting %v", got, l.waiting)
	}
	l.leave("slow", "b")
	if len(l.parked) != 0 || len(l.again) != 0 || len(l.inAir) != 1 || l.busy["slow"] != 1 || len(l.busy) != 1 {
		t.Errorf("left: busy %v, in the air %v, parked %v, again %v", l.busy, l.inAir, l.parked, l.again)
	}
}

// Grants of a provider that hangs fill their own lane (grant_refresh_concurrency 1) and hold back
// no other provider's grant: it is refreshed, and served, while theirs hang, one at a time; a
// limit raised lets the waiting one in at once.
func TestGrantRefreshSlowProviderHoldsBackNoOther(t *testing.T) {
	r := newGrantRig(t, "persistent")
	r.do(logical.UpdateOperation, "config", map[string]any{"grant_refresh_concurrency": 1})
	slow := startTokenServer(t)
	r.do(logical.CreateOperation, "technical/idp-slow", oauth2Input(slow, "app"))
	slow.SetLifetime(grantLifetime)
	slow.SetFault(tokenserver.Fault{Delay: time.Minute}) // cut short when the rig's backend stops
	var slowRTs []string
	for i := range 2 {
		at, rt := slow.IssueGrant("app")
		slowRTs = append(slowRTs, rt)
		g := fmt.Sprintf(`{"type": "oauth2_user", "access_token": %q, "refresh_token": %q, "expires_in": %d, "client": "idp-slow"}`, at, rt, int(grantLifetime.Seconds()))
		r.do(logical.CreateOperation, fmt.Sprintf("process/s%d", i), map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann", "current": g})
	}
	r.instantiate("p")

	r.tick(41 * time.Second) // every grant is due
	inAir := func() int {
		n := 0
		for _, rt := range slowRTs {
			log, _ := slow.Grant(rt)
			n += log.InFlight
		}
		return n
	}
	waitUntil(t, 10*time.Second, func() bool { return inAir() == 1 && len(r.refreshes()) == 1 })
	if got := r.served("p"); got != r.refreshes()[0].Token {
		t.Errorf("the other provider's grant serves %q, want its refreshed token", got)
	}
	r.tick(41 * time.Second) // due again: it is refreshed again, the slow lane still held by one
	waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 2 })
	if n := inAir(); n != 1 {
		t.Errorf("%d refreshes in the air at the slow provider, want 1 (its lane's one place)", n)
	}
	// A second place, given by a config write, lets the waiting grant in at once.
	r.do(logical.UpdateOperation, "config", map[string]any{"grant_refresh_concurrency": 2})
	waitUntil(t, 10*time.Second, func() bool { return inAir() == 2 })
	r.noRefreshTokenShown()
}
