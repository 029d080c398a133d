package pecreds

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// runtimeGrant writes a fresh grant of the rig's provider as process id's runtime service mail,
// after a password (so the grant is the service's credential [1]); it answers the refresh token.
func (r *grantRig) runtimeGrant(id string) (accessToken, refreshToken string) {
	r.t.Helper()
	at, rt := r.srv.IssueGrant("app")
	svc := fmt.Sprintf(`[{"name": "mail", "credentials": [{"type": "token", "token": "expired-tok", "expires_at": "2000-01-01T00:00:00Z"},
		{"type": "oauth2_user", "access_token": %q, "refresh_token": %q, "expires_in": %d, "client": "idp"}]}]`, at, rt, int(grantLifetime.Seconds()))
	r.do(logical.UpdateOperation, "process/"+id+"/credentials", map[string]any{"services": svc})
	return at, rt
}

// A grant of the runtime layer is kept fresh in its place as a current grant is: refreshed at
// the refresh fraction, the rotated refresh token stored in the process's record before the new
// access token is served, never a refresh token sent twice; in every keep mode, since the runtime
// layer is always in the record; and after a restart, from the stored record. Rewriting the
// service places the new grant; removing it ends its refreshes.
func TestRuntimeGrantKeptFresh(t *testing.T) {
	for _, keep := range []string{"persistent", "transient"} {
		t.Run(keep, func(t *testing.T) {
			r := newGrantRig(t, keep)
			r.do(logical.CreateOperation, "process/p", map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann"})
			at, rt := r.runtimeGrant("p")
			if got := r.served("p"); got != at {
				t.Fatalf("served %q, want the runtime grant's %q", got, at)
			}
			for i := 1; i <= 3; i++ {
				r.tick(41 * time.Second)
				waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == i && r.served("p") == r.refreshes()[i-1].Token })
				is := r.refreshes()[i-1]
				if is.RefreshToken != rt || is.Refused != "" {
					t.Fatalf("refresh %d sent %+v, want the last refresh token", i, is)
				}
				rt = "rt-app-" + strings.TrimPrefix(is.Token, "tok-app-")
				if stored := r.storedRuntimeRefreshToken("p"); stored != rt {
					t.Fatalf("refresh %d: the record does not hold the rotated refresh token", i)
				}
			}

			r.b.Cleanup(context.Background()) // a restart: the schedule comes back from the record
			r.b = r.start()
			waitUntil(t, 10*time.Second, func() bool { return r.scheduled() == 1 })
			r.tick(41 * time.Second)
			waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 4 && r.served("p") == r.refreshes()[3].Token })
			if is := r.refreshes()[3]; is.RefreshToken != rt || r.srv.Reused() != 0 {
				t.Errorf("after the restart the refresh sent %q, want %q; %d reused", is.RefreshToken, rt, r.srv.Reused())
			}

			at2, _ := r.runtimeGrant("p") // the engine writes the service again: the new grant is served and scheduled
			if got := r.served("p"); got != at2 {
				t.Fatalf("served %q after the rewrite, want %q", got, at2)
			}
			r.tick(41 * time.Second)
			waitUntil(t, 10*time.Second, func() bool { n := len(r.refreshes()); return n == 5 && r.served("p") == r.refreshes()[4].Token })

			r.do(logical.DeleteOperation, "process/p/credentials/mail", nil)
			if left := r.scheduled(); left != 0 {
				t.Errorf("%d grants still scheduled after the runtime service was removed", left)
			}
			r.noRefreshTokenShown()
		})
	}
}

// scheduled is how many grants the refresher has a plan for.
func (r *grantRig) scheduled() int {
	r.b.grants.mu.Lock()
	defer r.b.grants.mu.Unlock()
	return len(r.b.grants.plans)
}

func (r *grantRig) storedRuntimeRefreshToken(id string) string {
	p, err := r.b.getProcess(context.Background(), r.s, id)
	if err != nil || p == nil || len(p.Runtime) != 1 || len(p.Runtime[0].Credentials) != 2 {
		r.t.Fatalf("the stored runtime layer: %v", err)
	}
	return p.Runtime[0].Credentials[1].Fields["refresh_token"]
}

// A runtime grant its provider ends (invalid_grant) is a failure of class credentials_expired of
// that credential: broken by the mapping, naming the service and the grant, with no task (the
// owner's new credentials would not replace it); it is not asked for again, even when the
// process's record is written again.
func TestRuntimeGrantEndedBreaksWithoutTask(t *testing.T) {
	r := newGrantRig(t, "persistent")
	r.do(logical.CreateOperation, "process/p", map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann"})
	_, rt := r.runtimeGrant("p")
	r.srv.RevokeGrant(rt)
	r.tick(41 * time.Second)
	waitUntil(t, 10*time.Second, func() bool { return r.process("p")["health"] == "broken" })
	p := r.process("p")
	if p["task_id"] != "" || !strings.Contains(fmt.Sprint(p["health_reason"]), `service "mail": the runtime grant [1] has ended`) {
		t.Fatalf("process %v", p)
	}
	r.do(logical.UpdateOperation, "process/p/credentials", map[string]any{"services": `[{"name": "docs", "credentials": [{"type": "current"}]}]`})
	r.tick(5 * time.Minute)
	if poll(200*time.Millisecond, func() bool { return len(r.refreshes()) > 1 }) {
		t.Errorf("%d refresh requests after the grant ended, want 1", len(r.refreshes()))
	}
	r.noRefreshTokenShown()
}
