package pecreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// grantRig is a backend on a fake clock whose processes hold grants of a loopback provider that
// rotates refresh tokens and detects their reuse; its logs are kept for the secret scan.
type grantRig struct {
	t     *testing.T
	b     *backend
	s     logical.Storage
	d     deps
	srv   *tokenserver.Server
	clock *fakeClock
	logs  *syncBuffer
	seen  []string // every answer and error, as text
}

const grantLifetime = 60 * time.Second

func newGrantRig(t *testing.T, keep string) *grantRig {
	t.Helper()
	r := &grantRig{t: t, clock: newFakeClock(), logs: &syncBuffer{}, s: &vanishingStorage{Storage: &logical.InmemStorage{}}}
	r.d = testDeps()
	r.d.now = r.clock.now
	r.b = r.start()
	r.srv = startTokenServer(t)
	r.srv.SetClient("app", "app-secret")
	r.do(logical.UpdateOperation, "config", map[string]any{"keep_credentials": keep})
	r.do(logical.CreateOperation, "technical/idp", oauth2Input(r.srv, "app")) // its own token lives an hour
	r.srv.SetLifetime(grantLifetime)
	r.do(logical.CreateOperation, "registry/mailer", map[string]any{"services": `[{"name": "mail", "credentials": [{"type": "current"}]}]`})
	return r
}

// start builds a backend over the rig's storage, as a plugin start or a fail-over does.
func (r *grantRig) start() *backend {
	conf := testBackendConfig(r.s)
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: r.logs})
	raw, err := factoryWith(r.d)(context.Background(), conf)
	if err != nil {
		r.t.Fatal(err)
	}
	b := raw.(*backend)
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: r.s}); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { b.Cleanup(context.Background()) })
	return b
}

// do makes a request and records its answer; it fails the test on an error answer.
func (r *grantRig) do(op logical.Operation, path string, data map[string]any) *logical.Response {
	r.t.Helper()
	resp, err := r.try(op, path, data, "")
	if err != nil || (resp != nil && resp.IsError()) {
		r.t.Fatalf("%s %s: %v %v", op, path, resp, err)
	}
	return resp
}

func (r *grantRig) try(op logical.Operation, path string, data map[string]any, entity string) (*logical.Response, error) {
	resp, err := r.b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Storage: r.s, Data: data, EntityID: entity})
	body, _ := json.Marshal(resp)
	r.seen = append(r.seen, string(body), fmt.Sprint(err))
	return resp, err
}

// instantiate starts a process with a fresh grant of the provider, and answers its refresh token.
func (r *grantRig) instantiate(id string) (accessToken, refreshToken string) {
	r.t.Helper()
	at, rt := r.srv.IssueGrant("app")
	g := fmt.Sprintf(`{"type": "oauth2_user", "access_token": %q, "refresh_token": %q, "expires_in": %d, "client": "idp"}`, at, rt, int(grantLifetime.Seconds()))
	r.do(logical.CreateOperation, "process/"+id, map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann", "current": g})
	return at, rt
}

// tick moves the clock and wakes the grant scheduler, as the passing of time would.
func (r *grantRig) tick(d time.Duration) {
	r.clock.advance(d)
	r.b.grants.worker.poke()
}

// refreshes are the provider's refresh requests, in order.
func (r *grantRig) refreshes() []tokenserver.Issue {
	var out []tokenserver.Issue
	for _, is := range r.srv.Issues("app") {
		if is.GrantType == "refresh_token" {
			out = append(out, is)
		}
	}
	return out
}

// served is the access token a resolve answers now ("" when it answers none).
func (r *grantRig) served(id string) string {
	resp, err := r.try(logical.ReadOperation, "process/"+id+"/resolve/mail", nil, "")
	if err != nil || resp == nil || resp.IsError() {
		return ""
	}
	exp, perr := time.Parse(time.RFC3339, fmt.Sprint(resp.Data["expires_at"]))
	if perr != nil || !exp.After(r.clock.now()) {
		r.t.Fatalf("served an access token that has expired: %v", resp.Data)
	}
	return fmt.Sprint(resp.Data["access_token"])
}

func (r *grantRig) process(id string) map[string]any {
	return r.do(logical.ReadOperation, "process/"+id, nil).Data
}

// noRefreshTokenShown: no answer, error or log line holds a refresh token the provider issued.
func (r *grantRig) noRefreshTokenShown() {
	r.t.Helper()
	all := strings.Join(r.seen, "\n") + r.logs.String()
	if strings.Contains(all, "rt-app-") {
		r.t.Error("a refresh token appears in an answer, an error or the log")
	}
}

// A grant is kept fresh across several lifetimes of its access token: refreshed at the refresh
// fraction, its rotated refresh token kept (stored, when persistent) before the new access token is
// served, no refresh token sent twice (the provider detects reuse), never an expired access token
// served. After a restart the schedule is rebuilt from the stored processes and goes on with the
// last refresh token.
func TestGrantKeptFresh(t *testing.T) {
	for _, keep := range []string{"persistent", "transient"} {
		t.Run(keep, func(t *testing.T) {
			r := newGrantRig(t, keep)
			at, rt := r.instantiate("p")
			if got := r.served("p"); got != at {
				t.Fatalf("served %q, want the grant's %q", got, at)
			}
			// Placed at 0.67 of the lifetime, pulled forward by at most 5% of it (whole seconds
			// of expires_at cut one more).
			next, _ := r.b.grants.retryAt("p")
			if lo, hi := r.clock.now().Add(grantLifetime*62/100-time.Second), r.clock.now().Add(grantLifetime*67/100); next.Before(lo) || next.After(hi) {
				t.Errorf("first refresh at %s from now, want within [%s, %s]", next.Sub(r.clock.now()), lo.Sub(r.clock.now()), hi.Sub(r.clock.now()))
			}
			for i := 1; i <= 5; i++ {
				r.tick(41 * time.Second) // past 0.67 of the lifetime, before its end
				waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == i && r.served("p") == r.refreshes()[i-1].Token })
				is := r.refreshes()[i-1]
				if is.RefreshToken != rt || is.Refused != "" || is.Method != tokenserver.MethodBasic {
					t.Fatalf("refresh %d sent %+v, want the last refresh token", i, is)
				}
				rt = fmt.Sprintf("rt-app-%s", strings.TrimPrefix(is.Token, "tok-app-")) // the server's rotation
				if keep == "persistent" {
					p, err := r.b.getProcess(context.Background(), r.s, "p")
					if err != nil || p.Current == nil || p.Current.Fields["refresh_token"] != rt {
						t.Fatalf("refresh %d: the stored grant does not hold the rotated refresh token (%v)", i, err)
					}
				}
			}
			if r.srv.Reused() != 0 {
				t.Errorf("%d refresh tokens were sent twice", r.srv.Reused())
			}
			if h := r.process("p"); h["health"] != "running" || h["current_credentials"] != "kept" {
				t.Errorf("process %v", h)
			}
			r.do(logical.ReadOperation, "process/p/resolve/mail", map[string]any{"explain": true})
			r.do(logical.ListOperation, "process/", nil)
			r.noRefreshTokenShown()
			if keep != "persistent" {
				return
			}

			// A restart: the next backend finds the grant in storage and refreshes it on time.
			r.b.Cleanup(context.Background())
			r.b = r.start()
			waitUntil(t, 10*time.Second, func() bool { at, _ := r.b.grants.retryAt("p"); return !at.IsZero() })
			r.tick(41 * time.Second)
			waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 6 && r.served("p") == r.refreshes()[5].Token })
			if is := r.refreshes()[5]; is.RefreshToken != rt || r.srv.Reused() != 0 {
				t.Errorf("after the restart the refresh sent %q, want %q; %d reused", is.RefreshToken, rt, r.srv.Reused())
			}
		})
	}
}

// A grant the provider ends (revoked: invalid_grant) is a failure of the current credentials of
// class credentials_expired: broken, with a task for the owner; the grant is not asked for again.
func TestGrantEndedBreaksWithTask(t *testing.T) {
	r := newGrantRig(t, "persistent")
	_, rt := r.instantiate("p")
	r.srv.RevokeGrant(rt)
	r.tick(41 * time.Second)
	waitUntil(t, 10*time.Second, func() bool { return r.process("p")["health"] == "broken" })
	p := r.process("p")
	taskID, _ := p["task_id"].(string)
	if taskID == "" || !strings.Contains(fmt.Sprint(p["health_reason"]), "invalid_grant") {
		t.Fatalf("process %v", p)
	}
	if task := r.do(logical.ReadOperation, "task/"+taskID, nil).Data; task["reason"] != "credentials_expired" || task["status"] != "open" {
		t.Errorf("task %v", task)
	}
	r.tick(time.Minute)
	time.Sleep(50 * time.Millisecond) // a refresh would have had its chance; none may come
	if n := len(r.refreshes()); n != 1 {
		t.Errorf("%d refresh requests after the grant ended, want 1", n)
	}
	resp, _ := r.try(logical.ReadOperation, "process/p/resolve/mail", nil, "")
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "is broken") || !strings.Contains(resp.Error().Error(), taskID) {
		t.Errorf("resolve of the ended grant: %v", resp)
	}
	if p := r.process("p"); p["task_id"] != taskID {
		t.Errorf("a second task: %v", p)
	}
	r.noRefreshTokenShown()
}

// A provider that cannot be reached: the still-valid access token is served; once it has expired
// a resolve answers 503 naming why and the process stays running; when the provider is back the
// grant is refreshed with the refresh token it had.
func TestGrantProviderDown(t *testing.T) {
	r := newGrantRig(t, "persistent")
	at, rt := r.instantiate("p")
	r.srv.FailWith(http.StatusServiceUnavailable)
	r.tick(41 * time.Second)
	waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 1 })
	waitUntil(t, 10*time.Second, func() bool { next, why := r.b.grants.retryAt("p"); return why != "" && next.After(r.clock.now()) })
	if got := r.served("p"); got != at {
		t.Fatalf("served %q while the access token is valid, want %q", got, at)
	}
	r.tick(20 * time.Second) // the access token has expired; the retry after the backoff fails too
	waitUntil(t, 10*time.Second, func() bool {
		next, _ := r.b.grants.retryAt("p")
		return len(r.refreshes()) == 2 && next.After(r.clock.now())
	})
	msg := mustFailCode(t, r.b, r.s, logical.ReadOperation, "process/p/resolve/mail", http.StatusServiceUnavailable)
	for _, want := range []string{"access token has expired", "HTTP 503", "retry after"} {
		if !strings.Contains(msg, want) {
			t.Errorf("503 message %q lacks %q", msg, want)
		}
	}
	r.seen = append(r.seen, msg)
	if p := r.process("p"); p["health"] != "running" || p["current_credentials"] != "refreshing" || p["task_id"] != "" {
		t.Errorf("process %v", p)
	}
	r.srv.FailWith(0)
	r.tick(5 * time.Minute) // past any backoff
	waitUntil(t, 10*time.Second, func() bool { return r.served("p") != "" })
	refreshes := r.refreshes()
	last := refreshes[len(refreshes)-1]
	if len(refreshes) != 3 || last.Token == "" || last.RefreshToken != rt || r.served("p") != last.Token {
		t.Errorf("after the outage: %+v", refreshes)
	}
	r.noRefreshTokenShown()
}

// A refresh whose grant was replaced while it was in the air (the owner completed a task with a
// new grant) is dropped: the new grant stays, and is the one scheduled.
func TestGrantRefreshForReplacedGrantDropped(t *testing.T) {
	r := newGrantRig(t, "persistent")
	at, rt := r.srv.IssueGrant("app")
	ends := r.clock.now().Add(30 * time.Minute).UTC().Format(time.RFC3339) // the owner is asked early
	g := fmt.Sprintf(`{"type": "oauth2_user", "access_token": %q, "refresh_token": %q, "expires_in": %d, "refresh_expires_at": %q, "client": "idp"}`,
		at, rt, int(grantLifetime.Seconds()), ends)
	r.do(logical.CreateOperation, "process/p", map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann", "current": g})
	pre := r.do(logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "1h", "open_tasks": true})
	taskID, _ := pre.Data["task_id"].(string)
	if taskID == "" {
		t.Fatalf("preflight opened no task: %v", pre.Data)
	}
	release := r.srv.Hold()
	r.tick(41 * time.Second)
	if !poll(10*time.Second, func() bool { return r.srv.Held() == 1 }) { // the refresh is in the air
		t.Fatalf("no refresh in the air: %+v\n%s", r.srv.Issues("app"), r.logs.String())
	}
	newGrant := `{"type": "oauth2_user", "access_token": "AT-new", "refresh_token": "RT-new", "expires_in": 3600, "client": "idp"}`
	resp, err := r.try(logical.UpdateOperation, "task/"+taskID+"/complete", map[string]any{"credentials": newGrant}, "ent-ann")
	if err != nil || resp.IsError() {
		t.Fatalf("complete: %v %v", resp, err)
	}
	release()
	waitUntil(t, 10*time.Second, func() bool { return strings.Contains(r.logs.String(), "grant refresh dropped") })
	if len(r.refreshes()) != 1 || r.refreshes()[0].Token == "" {
		t.Fatalf("refreshes %+v", r.refreshes())
	}
	if got := r.served("p"); got != "AT-new" {
		t.Errorf("served %q after the dropped refresh, want the new grant's", got)
	}
	p, err := r.b.getProcess(context.Background(), r.s, "p")
	if err != nil || p.Current.Fields["refresh_token"] != "RT-new" {
		t.Errorf("stored grant %v (%v)", p.Current.Fields["access_token"], err)
	}
	if next, _ := r.b.grants.retryAt("p"); !next.After(r.clock.now().Add(30 * time.Minute)) {
		t.Errorf("the new grant is scheduled at %v, want about 0.67 of its hour", next)
	}
}

// vanishingStorage is Vault's storage as the plugin sees it, until Vault is gone (its node killed):
// then every call fails.
type vanishingStorage struct {
	logical.Storage
	gone atomic.Bool
}

var errVaultGone = errors.New("the connection to Vault is gone")

func (v *vanishingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if v.gone.Load() {
		return nil, errVaultGone
	}
	return v.Storage.Get(ctx, key)
}

func (v *vanishingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if v.gone.Load() {
		return errVaultGone
	}
	return v.Storage.Put(ctx, e)
}

func (v *vanishingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if v.gone.Load() {
		return nil, errVaultGone
	}
	return v.Storage.List(ctx, prefix)
}

// A plugin whose Vault is gone (its node was killed; the plugin lives on a moment before it
// notices) sends no refresh: it would spend a refresh token whose answer it cannot store and that
// the next active node still holds, which with rotation and no grace period ends the grant. The
// refresher reads the process from storage, which fails, and not from its cache, which would not.
func TestGrantNotRefreshedWithoutVault(t *testing.T) {
	r := newGrantRig(t, "persistent")
	r.instantiate("p")
	r.tick(41 * time.Second)
	waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 1 && r.served("p") == r.refreshes()[0].Token })
	r.s.(*vanishingStorage).gone.Store(true)
	r.tick(41 * time.Second) // the next refresh is due
	waitUntil(t, 10*time.Second, func() bool { return strings.Contains(r.logs.String(), "grant refresh failed") })
	if n := len(r.refreshes()); n != 1 {
		t.Errorf("%d refresh requests, want 1: the plugin refreshed a grant after its Vault was gone", n)
	}
	r.noRefreshTokenShown()
}

// poll says whether cond held within the time.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// A refresh in the air when the plugin stops (a reload) is given its grace: answered then, the
// rotated refresh token is kept, and the next plugin refreshes with it — the provider, which spent
// the old one when it answered, never sees it again.
func TestGrantRefreshInTheAirAtStopIsKept(t *testing.T) {
	r := newGrantRig(t, "persistent")
	_, rt := r.instantiate("p")
	release := r.srv.Hold()
	r.tick(41 * time.Second)
	if !poll(10*time.Second, func() bool { return r.srv.Held() == 1 }) {
		t.Fatal("no refresh in the air")
	}
	stopped := make(chan struct{})
	go func() { r.b.Cleanup(context.Background()); close(stopped) }()
	release() // answered after the stop began, within its grace
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not stop")
	}
	if n := len(r.refreshes()); n != 1 || r.refreshes()[0].RefreshToken != rt || r.refreshes()[0].Token == "" {
		t.Fatalf("refreshes %+v", r.refreshes())
	}
	rotated := "rt-app-" + strings.TrimPrefix(r.refreshes()[0].Token, "tok-app-")
	p, err := readJSON[lifecycle.Process](context.Background(), r.s, processStoragePrefix+"p", "process")
	if err != nil || p.Current == nil || p.Current.Fields["refresh_token"] != rotated {
		t.Fatalf("the stored grant does not hold the rotated refresh token (%v)", err)
	}

	r.b = r.start()
	waitUntil(t, 10*time.Second, func() bool { at, _ := r.b.grants.retryAt("p"); return !at.IsZero() })
	r.tick(41 * time.Second)
	waitUntil(t, 10*time.Second, func() bool { return len(r.refreshes()) == 2 })
	if is := r.refreshes()[1]; is.RefreshToken != rotated || r.srv.Reused() != 0 {
		t.Errorf("after the restart the refresh sent the old token or a reused one (%d reused)", r.srv.Reused())
	}
}
