package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// Response wrapping of a resolve, with the real vault CLI: the engine host (engine-host policy)
// reads with -wrap-ttl and gets a wrapping token, never the password; a worker holding nothing but
// that token unwraps it once; a second unwrap is refused. A resolve that fails answers its error,
// unwrapped: Vault wraps no error.
func TestResolveWrappedWithTheCLI(t *testing.T) {
	p := setupPeople(t)
	startWrapProcess(t, p, "wrap-cli", "ann-wrap-cli-password")
	engine := []string{"VAULT_TOKEN=" + p.engine.Token()}
	resolve := p.mount + "/process/wrap-cli/resolve/crm"

	res := vaultCLIWithEnv(t, engine, "read", "-wrap-ttl=60s", "-format=json", resolve)
	if res.code != 0 || strings.Contains(res.stdout, "ann-wrap-cli-password") || !strings.Contains(res.stdout, `"ttl": 60,`) {
		t.Fatalf("a wrapped resolve: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	wrapping := vaultCLIWithEnv(t, engine, "read", "-wrap-ttl=60s", "-field=wrapping_token", resolve)
	if wrapping.code != 0 || strings.TrimSpace(wrapping.stdout) == "" {
		t.Fatalf("the wrapping token: exit %d %s", wrapping.code, wrapping.stderr)
	}
	worker := []string{"VAULT_TOKEN=" + strings.TrimSpace(wrapping.stdout)} // the worker holds this token only
	first := vaultCLIWithEnv(t, worker, "unwrap", "-field=password")
	if first.code != 0 || strings.TrimSpace(first.stdout) != "ann-wrap-cli-password" {
		t.Fatalf("the worker's unwrap: exit %d %s", first.code, first.stderr)
	}
	second := vaultCLIWithEnv(t, worker, "unwrap", "-field=password")
	if second.code == 0 || strings.Contains(second.stdout+second.stderr, "ann-wrap-cli-password") {
		t.Errorf("a second unwrap: exit %d\n%s%s", second.code, second.stdout, second.stderr)
	}

	// Errors are never wrapped: a 400 comes back as is, and so does an unknown process's 404,
	// with no wrapping token.
	for path, want := range map[string]string{
		p.mount + "/process/wrap-cli/resolve/nowhere":    "Code: 400",
		p.mount + "/process/no-such-process/resolve/crm": "No value found",
	} {
		failed := vaultCLIWithEnv(t, engine, "read", "-wrap-ttl=60s", path)
		if failed.code == 0 || strings.Contains(failed.stdout, "wrapping_token") || !strings.Contains(failed.stdout+failed.stderr, want) {
			t.Errorf("a failing resolve with -wrap-ttl: exit %d\n%s%s", failed.code, failed.stdout, failed.stderr)
		}
	}
}

// The Go client: the engine host's ResolveWrapped answers the wrapping token (its TTL, accessor
// and path, and a String that hides it); the worker's Unwrap, with a Vault client that holds no
// token of its own, opens it once; the second is ErrWrappingTokenInvalid. A failing resolve is the
// typed error Resolve answers, not a wrapping token.
func TestResolveWrappedWithTheClient(t *testing.T) {
	p := setupPeople(t)
	proc := startWrapProcess(t, p, "wrap-client", "ann-wrap-client-password")
	ctx := context.Background()

	w, err := proc.ResolveWrapped(ctx, "crm", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if w.Token == "" || w.Accessor == "" || w.TTL != time.Minute || w.CreationPath != p.mount+"/process/wrap-client/resolve/crm" {
		t.Fatalf("wrapped: %v (ttl %s)", w, w.TTL)
	}
	for _, shown := range []string{fmt.Sprint(w), fmt.Sprintf("%+v %#v %v", w, w, *w)} {
		if strings.Contains(shown, w.Token) {
			t.Errorf("printing a Wrapped shows its token: %s", shown)
		}
	}

	workerVault := clientWith(t, "")
	worker := client.New(workerVault, p.mount)
	creds, err := worker.Unwrap(ctx, w.Token)
	if err != nil || creds.Fields["password"] != "ann-wrap-client-password" || creds.Service != "crm" || creds.Source != "definition:orders" {
		t.Fatalf("the worker's unwrap: %+v %v", creds, err)
	}
	if workerVault.Token() != "" {
		t.Errorf("Unwrap left a token in the worker's client")
	}
	if _, err := worker.Unwrap(ctx, w.Token); !errors.Is(err, client.ErrWrappingTokenInvalid) {
		t.Errorf("a second unwrap: %v", err)
	}
	if _, err := worker.Unwrap(ctx, "hvs.not-a-wrapping-token"); !errors.Is(err, client.ErrWrappingTokenInvalid) {
		t.Errorf("an unwrap of a made-up token: %v", err)
	}
	// A wrapping token anyone can make (sys/wrapping/wrap), handed in place of the host's: the
	// worker refuses it before unwrapping, and it is left unused.
	foreign, err := env.client.Logical().Write("sys/wrapping/wrap", map[string]any{"username": "mallory", "password": "mallorys-password"})
	if err != nil || foreign.WrapInfo == nil {
		t.Fatalf("sys/wrapping/wrap: %v", err)
	}
	if _, err := worker.Unwrap(ctx, foreign.WrapInfo.Token); !errors.Is(err, client.ErrWrappingTokenForeign) {
		t.Errorf("an unwrap of a token wrapping something else: %v", err)
	}

	var bad *client.BadRequestError
	if _, err := proc.ResolveWrapped(ctx, "nowhere", time.Minute); !errors.As(err, &bad) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("a wrapped resolve of an unknown service: %v", err)
	}
}

// startWrapProcess starts a process for Ann with the engine-host policy, its "crm" service her
// own password.
func startWrapProcess(t *testing.T, p *people, id, password string) *client.Process {
	t.Helper()
	rememberSecrets(password)
	write(t, p.mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	ctx := context.Background()
	proc, err := client.New(p.engine, p.mount).Start(ctx, client.StartInput{ID: id, Definition: "orders",
		Owner: "ann", OwnerEntityID: p.annEntity, Current: client.Password("ann", password)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Close(context.Background()) })
	return proc
}
