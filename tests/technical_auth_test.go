package tests

import (
	"context"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
	"github.com/pecreds/vault-plugin-pecreds/tests/internal/hydra"
)

// jsonData decodes the data of a `vault ... -format=json` answer.
func jsonData(t *testing.T, out string) map[string]any {
	t.Helper()
	var s struct {
		Data     map[string]any `json:"data"`
		Warnings []string       `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("the CLI's JSON: %v", err)
	}
	return s.Data
}

// pemLines are a PEM's lines but its END line: the server's log must hold none of them.
func pemLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if l != "" && !strings.HasPrefix(l, "-----END") {
			out = append(out, l)
		}
	}
	return out
}

// TestTechnicalAuthMethodsHydra: against a real Ory Hydra, oauth2 technical credentials whose
// clients are registered for client_secret_basic, client_secret_post and private_key_jwt (an RSA
// key with a kid, an EC P-256 key without) each get a token through `vault read .../creds`, and
// the private_key_jwt ones are refreshed with fresh assertions (Hydra refuses a jti seen before).
// A client_secret_post client written with auth_method left at its default is refused with 401
// invalid_client: stored, its failed refresh named by the status and the code but never by what
// Hydra said; writing auth_method=client_secret_post alone fixes it.
func TestTechnicalAuthMethodsHydra(t *testing.T) {
	ctx := context.Background()
	h := startHydra(t, "hydra-auth-methods", 0)
	mount := newMount(t)
	dir := t.TempDir()
	const scope = "crm.read"

	rsaKey, rsaPEM, err := testcert.RSAKey(2048, true)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, ecPEM, err := testcert.ECKey(elliptic.P256(), false)
	if err != nil {
		t.Fatal(err)
	}
	rememberSecrets(append(pemLines(rsaPEM), pemLines(ecPEM)...)...)

	type cred struct {
		name, method, kid string
		client            hydra.Client
		args              []string // the secret's arguments to vault write
	}
	var creds []cred
	for _, c := range []struct {
		name, method string
		key          *hydra.PublicKey
		pem          string
	}{
		{"basic", hydra.AuthBasic, nil, ""},
		{"post", hydra.AuthPost, nil, ""},
		{"jwt-rsa", hydra.AuthPrivateKeyJWT, &hydra.PublicKey{Key: rsaKey.Public(), KeyID: "pecreds-rsa-1", Alg: "RS256"}, rsaPEM},
		{"jwt-ec", hydra.AuthPrivateKeyJWT, &hydra.PublicKey{Key: ecKey.Public(), Alg: "ES256"}, ecPEM},
	} {
		client, err := h.CreateServiceClient(ctx, c.method, scope, c.key)
		if err != nil {
			t.Fatal(err)
		}
		cr := cred{name: c.name, method: c.method, client: client}
		if c.key != nil {
			keyFile := filepath.Join(dir, c.name+".pem")
			if err := os.WriteFile(keyFile, []byte(c.pem), 0o600); err != nil {
				t.Fatal(err)
			}
			cr.kid = c.key.KeyID
			cr.args = []string{"private_key=@" + keyFile}
			if cr.kid != "" {
				cr.args = append(cr.args, "key_id="+cr.kid)
			}
		} else {
			rememberSecrets(client.Secret)
			cr.args = []string{"client_secret=" + client.Secret}
		}
		creds = append(creds, cr)
	}

	first := map[string]string{}
	for _, c := range creds {
		args := append([]string{"write", "-format=json", mount + "/technical/" + c.name, "type=oauth2", "token_url=" + h.TokenURL(),
			"client_id=" + c.client.ID, "auth_method=" + c.method, "scopes=" + scope}, c.args...)
		if got := jsonData(t, mustCLI(t, args...)); got["last_error"] != "" {
			t.Fatalf("%s: the first token request failed: %v", c.name, got["last_error"])
		}
		material := jsonData(t, mustCLI(t, "read", "-format=json", mount+"/technical/"+c.name+"/creds"))
		tok, _ := material["access_token"].(string)
		rememberSecrets(tok)
		if in := mustIntrospect(t, h, tok); !in.Active || in.ClientID != c.client.ID {
			t.Fatalf("%s: the token served is not an active token of its client: %+v", c.name, in)
		}
		first[c.name] = tok

		out := mustCLI(t, "read", "-format=json", mount+"/technical/"+c.name)
		info := jsonData(t, out)
		if info["auth_method"] != c.method || (c.kid != "" && info["key_id"] != c.kid) {
			t.Errorf("%s: read %v", c.name, info)
		}
		if strings.Contains(out, "PRIVATE KEY") || (c.client.Secret != "" && strings.Contains(out, c.client.Secret)) {
			t.Errorf("%s: the read shows a secret", c.name)
		}
	}

	// Hydra's tokens live 10s, so the scheduler refreshes them within about 7s; each refresh of
	// a private_key_jwt client is accepted only with a new assertion.
	waitFor(t, 30*time.Second, func() bool {
		for _, name := range []string{"jwt-rsa", "jwt-ec"} {
			tok, _ := read(t, mount+"/technical/"+name+"/creds").Data["access_token"].(string)
			rememberSecrets(tok)
			if tok == first[name] {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"jwt-rsa", "jwt-ec"} {
		if info := read(t, mount+"/technical/"+name).Data; info["last_error"] != "" || info["failures"] != json.Number("0") {
			t.Errorf("%s after its refresh: %v", name, info)
		}
	}

	// A client_secret_post client, written with auth_method left at its default.
	post, err := h.CreateServiceClient(ctx, hydra.AuthPost, scope, nil)
	if err != nil {
		t.Fatal(err)
	}
	rememberSecrets(post.Secret)
	_, err = h.ClientCredentials(ctx, post.As(hydra.AuthBasic), scope) // what Hydra answers such a request
	var said *hydra.Error
	if !errors.As(err, &said) || said.Status != 401 || said.Code != "invalid_client" || said.Description == "" {
		t.Fatalf("Hydra's answer to basic for a client_secret_post client: %v", err)
	}
	res := vaultCLI(t, "write", mount+"/technical/mismatch", "type=oauth2", "token_url="+h.TokenURL(),
		"client_id="+post.ID, "client_secret="+post.Secret, "scopes="+scope)
	const want = "the token endpoint answered HTTP 401 Unauthorized (error invalid_client)"
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, want) {
		t.Fatalf("writing the mismatched client: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	info := read(t, mount+"/technical/mismatch").Data
	if info["last_error"] != want || info["auth_method"] != "client_secret_basic" {
		t.Errorf("the mismatched client's read: %v", info)
	}
	res = vaultCLI(t, "read", mount+"/technical/mismatch/creds")
	if res.code == 0 || !strings.Contains(res.stderr, "HTTP 401 Unauthorized (error invalid_client)") || !strings.Contains(res.stderr, `"mismatch"`) {
		t.Fatalf("creds of the mismatched client: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	everything := res.stdout + res.stderr + mustCLI(t, "read", "-format=json", mount+"/technical/mismatch")
	for _, hydraText := range []string{said.Description, said.Hint, "error_description", "error_hint", "client_secret_post"} {
		if hydraText != "" && strings.Contains(everything, hydraText) {
			t.Errorf("what Hydra said reached an answer: %q", hydraText)
		}
	}

	// The fix: auth_method alone asks for a token at once, the stored secret posted this time.
	// The failed request was made moments ago, so the minimum interval between two token
	// requests (2s) may put it off a little: the write then says when, and a read after gets it.
	fixed := jsonData(t, mustCLI(t, "write", "-format=json", mount+"/technical/mismatch", "auth_method=client_secret_post"))
	if fixed["auth_method"] != "client_secret_post" {
		t.Fatalf("after auth_method=client_secret_post: %v", fixed)
	}
	waitFor(t, 20*time.Second, func() bool {
		_, err := env.client.Logical().Read(mount + "/technical/mismatch/creds")
		return err == nil
	})
	tok, _ := jsonData(t, mustCLI(t, "read", "-format=json", mount+"/technical/mismatch/creds"))["access_token"].(string)
	rememberSecrets(tok)
	if in := mustIntrospect(t, h, tok); !in.Active || in.ClientID != post.ID {
		t.Fatalf("the fixed client's token: %+v", in)
	}
	if info := read(t, mount+"/technical/mismatch").Data; info["last_error"] != "" || info["failures"] != json.Number("0") {
		t.Errorf("the fixed client's read: %v", info)
	}
}
