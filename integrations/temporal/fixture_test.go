package temporal_test

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// fixture is a pecreds mount with the example policies, an engine host's client (engine-host
// policy), Ann (a userpass user with an identity entity and the user policy), a definition
// registry "orders" of three loopback services that take Ann's current password, and a
// Temporal client.
type fixture struct {
	mount     string
	engine    *pecreds.Client
	ann       *api.Client
	annEntity string
	services  *services
	temporal  client.Client
	queue     string
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	if env.vault == nil {
		t.Skipf("an integration test: %s=1 runs it against real servers", accEnv)
	}
	f := &fixture{mount: "pecreds-" + name, queue: "pecreds-" + name, services: startServices(t, "ann-service-password-1")}
	rememberSecrets("ann-service-password-1", "ann-service-password-2")
	if err := env.vault.Sys().Mount(f.mount, &api.MountInput{Type: pluginName}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.vault.Sys().Unmount(f.mount) })
	for _, policy := range []string{"engine-host", "user"} {
		text, err := os.ReadFile("../../examples/policies/" + policy + ".hcl")
		if err != nil {
			t.Fatal(err)
		}
		if err := env.vault.Sys().PutPolicy(f.mount+"-"+policy, strings.ReplaceAll(string(text), "pecreds/", f.mount+"/")); err != nil {
			t.Fatal(err)
		}
	}
	engineToken, err := env.vault.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{f.mount + "-engine-host"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = pecreds.New(cloneWith(t, engineToken.Auth.ClientToken), f.mount)
	f.ann, f.annEntity = f.login(t, "ann")
	rememberSecrets(engineToken.Auth.ClientToken, f.ann.Token())
	var list []map[string]any
	for _, s := range serviceNames {
		list = append(list, map[string]any{"name": s, "url": f.services.url[s], "credentials": []map[string]any{{"type": "current"}}})
	}
	if _, err := env.vault.Logical().Write(f.mount+"/registry/orders", map[string]any{"services": list}); err != nil {
		t.Fatal(err)
	}
	if f.temporal, err = client.Dial(client.Options{HostPort: env.temporal.FrontendHostPort()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.temporal.Close)
	return f
}

// bridgeWebhook points the mount's Task Manager webhook at a WebhookBridge on loopback, which
// signals the fixture's workflows.
func (f *fixture) bridgeWebhook(t *testing.T) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	rememberSecrets(secret)
	bridge, err := temporal.NewWebhookBridge(f.temporal, secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(bridge)
	t.Cleanup(srv.Close)
	if _, err := env.vault.Logical().Write(f.mount+"/config", map[string]any{"notify_url": srv.URL + "/pecreds", "notify_secret": secret}); err != nil {
		t.Fatal(err)
	}
}

// login makes a userpass user bound to the user policy and logs them in.
func (f *fixture) login(t *testing.T, user string) (*api.Client, string) {
	t.Helper()
	auth := "up-" + f.mount
	if err := env.vault.Sys().EnableAuthWithOptions(auth, &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.vault.Sys().DisableAuth(auth) })
	login := user + "-vault-login"
	rememberSecrets(login)
	if _, err := env.vault.Logical().Write("auth/"+auth+"/users/"+user, map[string]any{"password": login, "token_policies": f.mount + "-user"}); err != nil {
		t.Fatal(err)
	}
	s, err := env.vault.Logical().Write("auth/"+auth+"/login/"+user, map[string]any{"password": login})
	if err != nil {
		t.Fatal(err)
	}
	return cloneWith(t, s.Auth.ClientToken), s.Auth.EntityID
}

func cloneWith(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := env.vault.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// startWorker runs a worker of the fixture's task queue, with its own Temporal client, as a
// worker process would; stop stops it and drops the workflows it cached, so that the next worker
// rebuilds them from their history alone.
func (f *fixture) startWorker(t *testing.T, o temporal.Options) (stop func()) {
	t.Helper()
	o.Pecreds = f.engine
	ic, err := temporal.NewInterceptor(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: env.temporal.FrontendHostPort()})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, f.queue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{ic}})
	w.RegisterWorkflow(AnnOrder)
	w.RegisterActivity(&activities{services: f.services})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			w.Stop()
			c.Close()
			worker.PurgeStickyWorkflowCache()
		})
	}
	t.Cleanup(stop)
	return stop
}

// startForAnn starts AnnOrder for Ann with her current password.
func (f *fixture) startForAnn(t *testing.T, ctx context.Context, id, order string, localCRM bool) client.WorkflowRun {
	t.Helper()
	s := &temporal.Starter{Temporal: f.temporal, Pecreds: f.engine}
	run, err := s.Start(ctx, temporal.StartOptions{
		Workflow:   client.StartWorkflowOptions{ID: id, TaskQueue: f.queue},
		Definition: "orders", Owner: "ann", OwnerEntityID: f.annEntity,
		Credentials: pecreds.Password("ann", "ann-service-password-1"),
	}, AnnOrder, order, localCRM)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// serviceNames are the three services, in the order AnnOrder calls them.
var serviceNames = []string{"ledger", "crm", "docs"}

// services are loopback HTTP services that take Ann's current password (basic auth) and count
// the answers they gave.
type services struct {
	mu       sync.Mutex
	password string
	url      map[string]string
	answers  map[string][]int
}

func startServices(t *testing.T, password string) *services {
	s := &services{password: password, url: map[string]string{}, answers: map[string][]int{}}
	for _, name := range serviceNames {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, _ := r.BasicAuth()
			s.mu.Lock()
			ok := user == "ann" && subtle.ConstantTimeCompare([]byte(pass), []byte(s.password)) == 1
			code := http.StatusOK
			if !ok {
				code = http.StatusUnauthorized
			}
			s.answers[name] = append(s.answers[name], code)
			s.mu.Unlock()
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		s.url[name] = srv.URL + "/" + name
	}
	return s
}

func (s *services) setPassword(p string) { s.mu.Lock(); s.password = p; s.mu.Unlock() }

func (s *services) answered(name string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.answers[name]...)
}

// activities call the services with the credentials pecreds resolves for their workflow's
// process: the crm by its URL, the others by name.
type activities struct{ services *services }

// Call calls service and answers what happened, never a credential.
func (a *activities) Call(ctx context.Context, service string) (string, error) {
	target := a.services.url[service] + "/entries"
	creds, err := temporal.Credentials(ctx, service)
	if service == "crm" {
		creds, err = temporal.CredentialsForURL(ctx, target)
	}
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(fmt.Sprint(creds.Fields["username"]), fmt.Sprint(creds.Fields["password"]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return "", temporal.AuthFailed(service, fmt.Errorf("%s answered 401", service))
	}
	return fmt.Sprintf("%s: %d (credentials from %s)", service, resp.StatusCode, creds.Source), nil
}

// GoOn is the signal AnnOrder waits for after its first call, so that the test changes Ann's
// password between two calls.
const GoOn = "go-on"

// AnnOrder calls the three services in turn, waiting for GoOn after the first; with localCRM
// the crm's call is a local activity.
func AnnOrder(ctx workflow.Context, order string, localCRM bool) ([]string, error) {
	retry := &sdktemporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry})
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry})
	results := []string{order}
	for i, service := range serviceNames {
		if i == 1 {
			workflow.GetSignalChannel(ctx, GoOn).Receive(ctx, nil)
		}
		call := workflow.ExecuteActivity
		if service == "crm" && localCRM {
			call = workflow.ExecuteLocalActivity
		}
		var r string
		if err := call(ctx, "Call", service).Get(ctx, &r); err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}
