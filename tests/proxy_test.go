package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// The real vault proxy, configured by examples/engine-host/proxy.hcl (addresses and files
// replaced): it logs in with an AppRole bound to the engine-host policy and adds its token, so the
// engine's client holds none. The Go client resolves through it, and the proxy's token can do no
// more than the engine-host policy allows; a request without X-Vault-Request (a web page on the
// engine host) gets 412.
func TestEngineHostThroughVaultProxy(t *testing.T) {
	p := setupPeople(t)
	write(t, p.mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	approle := "ar-" + strings.TrimPrefix(p.mount, "pecreds-")
	if len(approle) > 40 {
		approle = approle[:40]
	}
	if err := env.client.Sys().EnableAuthWithOptions(approle, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.client.Sys().DisableAuth(approle) })
	write(t, "auth/"+approle+"/role/engine-host", map[string]any{"token_policies": p.mount + "-engine-host", "token_ttl": "1h"})
	roleID := read(t, "auth/"+approle+"/role/engine-host/role-id").Data["role_id"].(string)
	secretID := write(t, "auth/"+approle+"/role/engine-host/secret-id", nil).Data["secret_id"].(string)
	rememberSecrets(secretID)

	dir := t.TempDir()
	for name, v := range map[string]string{"role-id": roleID, "secret-id": secretID} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	conf, err := os.ReadFile("../examples/engine-host/proxy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		`address = "http://127.0.0.1:8200"`, fmt.Sprintf("address = %q", env.addr),
		`"auth/approle"`, fmt.Sprintf("%q", "auth/"+approle),
		"bin/dev/engine-host-role-id", filepath.Join(dir, "role-id"),
		"bin/dev/engine-host-secret-id", filepath.Join(dir, "secret-id"),
		"127.0.0.1:8100", listen,
	).Replace(string(conf))
	if strings.Count(text, dir) != 2 || !strings.Contains(text, listen) {
		t.Fatalf("the example's placeholders moved:\n%s", text)
	}
	confPath := filepath.Join(dir, "proxy.hcl")
	if err := os.WriteFile(confPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := startProcess(t, filepath.Join(dir, "proxy.log"), env.vaultBin, "proxy", "-config="+confPath)

	cfg := api.DefaultConfig()
	cfg.Address = "http://" + listen
	viaProxy, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy.SetToken("") // the engine holds no token
	ctx := context.Background()
	c := client.New(viaProxy, p.mount)
	var proc *client.Process
	waitFor(t, 30*time.Second, func() bool { // the proxy is up and has logged in
		proc, err = c.Start(ctx, client.StartInput{ID: "via-proxy", Definition: "orders", Owner: "ann",
			Current: client.Password("ann", "ann-proxy-password")})
		return err == nil
	})
	if proc == nil {
		t.Fatalf("no process through the proxy: %v\n%s", err, proxy.log())
	}
	rememberSecrets("ann-proxy-password")
	creds, err := proc.Resolve(ctx, "crm")
	if err != nil || creds.Fields["password"] != "ann-proxy-password" {
		t.Fatalf("resolve through the proxy: %v", err)
	}
	checkProxyNeedsRequestHeader(t, "http://"+listen, p.mount)
	// The proxy's token is the engine-host policy's: config is not the engine's.
	if _, err := viaProxy.Logical().Write(p.mount+"/config", map[string]any{"keep_credentials": "none"}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a config write through the proxy: %v", err)
	}
	if err := proc.Close(ctx); err != nil {
		t.Fatalf("ending through the proxy: %v", err)
	}
	if _, err := proc.State(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("after Close: %v", err)
	}
}

// checkProxyNeedsRequestHeader is the attack of a web page open in a browser on the engine host:
// a form post (no custom header possible) and a plain fetch reach the proxy's loopback listener
// without X-Vault-Request, and the proxy answers 412 before adding its token. The same requests
// with the header, as vault/api sends them, go through.
func checkProxyNeedsRequestHeader(t *testing.T, proxyURL, mount string) {
	t.Helper()
	send := func(method, path, contentType, body string, header bool) (int, string) {
		req, err := http.NewRequest(method, proxyURL+"/v1/"+mount+"/"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "http://attacker.example")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if header {
			req.Header.Set("X-Vault-Request", "true")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		text, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(text)
	}
	status, body := send(http.MethodGet, "process/via-proxy/resolve/crm", "", "", false)
	if status != http.StatusPreconditionFailed || strings.Contains(body, "ann-proxy-password") {
		t.Errorf("a resolve without X-Vault-Request: %d %s", status, body)
	}
	status, body = send(http.MethodPost, "process/via-proxy/report", "application/x-www-form-urlencoded", "service=crm&error=forbidden", false)
	if status != http.StatusPreconditionFailed {
		t.Errorf("a form post of a report: %d %s", status, body)
	}
	status, body = send(http.MethodGet, "process/via-proxy", "", "", true)
	if status != http.StatusOK || !strings.Contains(body, `"health":"running"`) {
		t.Errorf("with X-Vault-Request, after the form post: %d %s", status, body)
	}
	status, body = send(http.MethodGet, "process/via-proxy/resolve/crm", "", "", true)
	if status != http.StatusOK || !strings.Contains(body, "ann-proxy-password") {
		t.Errorf("a resolve with X-Vault-Request: %d", status)
	}
}
