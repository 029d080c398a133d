package tests

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// bigLayer is a runtime layer of about size bytes, as a JSON list: services of 60 KiB keys, each
// string well within Vault's own limit on one JSON string (1 MiB).
func bigLayer(size int) []any {
	const key = 60 << 10
	var out []any
	for i := 0; i*key < size; i++ {
		out = append(out, map[string]any{"name": fmt.Sprintf("s%d", i),
			"credentials": []any{map[string]any{"type": "api_key", "key": strings.Repeat("k", key)}}})
	}
	return out
}

// status is the HTTP status of a refused request (0: none).
func status(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// The case 3 against the real Vault: runtime layers of 30 MB for 15 processes, a 1 MB
// owner, a secret past 64 KiB, a message past 1 KiB — each a 400 naming the field and its limit,
// nothing stored, and the plugin's resident memory about where it was.
func TestAttackOversizedInputsAre400sAndCostNoMemory(t *testing.T) {
	m := newMount(t)
	write(t, m+"/registry/orders", map[string]any{"services": `[{"name":"crm","credentials":[{"type":"current"}]}]`})
	before := pluginRSS(t)
	for i := 0; i < 15; i++ {
		id := fmt.Sprintf("%s/process/p%d", m, i)
		write(t, id, map[string]any{"definition": "orders", "owner": "ann"})
		_, err := env.client.Logical().Write(id+"/credentials", map[string]any{"services": bigLayer(30 << 20)})
		badRequest(t, err, "services", "the limit is 1048576 bytes (1 MiB)")
		if got := read(t, id).Data["runtime_services"]; fmt.Sprint(got) != "[]" {
			t.Fatalf("a refused layer was stored: %v", got)
		}
	}
	// Within 1 MiB: stored.
	write(t, m+"/process/p0/credentials", map[string]any{"services": bigLayer(900 << 10)})

	_, err := env.client.Logical().Write(m+"/process/big-owner", map[string]any{"owner": strings.Repeat("o", 1<<20)})
	badRequest(t, err, "owner is 1048576 bytes long; the limit is 256 bytes")
	if s, err := env.client.Logical().Read(m + "/process/big-owner"); err != nil || s != nil {
		t.Errorf("a refused create was stored: %v %v", s, err)
	}
	_, err = env.client.Logical().Write(m+"/technical/big", map[string]any{"type": "password", "username": "u", "password": strings.Repeat("p", 65<<10)})
	badRequest(t, err, `field "password" is 66560 bytes long`, "64 KiB")
	_, err = env.client.Logical().Write(m+"/process/p1/report", map[string]any{"service": "crm", "error": "unavailable", "message": strings.Repeat("m", 2<<10)})
	badRequest(t, err, "message is 2048 bytes long; the limit is 1024 bytes (1 KiB)")
	// A layer past 1 MiB given as JSON text (services=@file) is one JSON string past Vault's
	// listener limit: Vault refuses it before the plugin sees it (a 500 of Vault's own).
	_, err = env.client.Logical().Write(m+"/process/p1/credentials", map[string]any{"services": fmt.Sprint(bigLayer(2 << 20))})
	if code := status(err); code < 400 {
		t.Errorf("a 2 MB layer as text: %v", err)
	}

	// What decoding the refused requests took is handed back a second after the last of them.
	var after float64
	poll(15*time.Second, 250*time.Millisecond, func() bool { after = pluginRSS(t); return after-before <= 64 })
	t.Logf("plugin RSS: %.1f MiB before, %.1f MiB after the oversized inputs (growth %.1f MiB; peak %.1f MiB)",
		before, after, after-before, pluginMemory(t, "VmHWM:"))
	if after-before > 64 {
		t.Errorf("the plugin's RSS grew by %.1f MiB; the bound is 64 MiB", after-before)
	}
}

// What a typo would make is refused through the CLI, as users type it: an unknown field is a 400
// naming it and the nearest known one (not Vault's "ignored" warning and exit 0), an empty
// definition is a 400, and a field's type error never echoes its value.
func TestAttackTyposAreRefusedThroughTheCLI(t *testing.T) {
	m := newMount(t)
	write(t, m+"/registry/orders", map[string]any{"services": `[{"name":"crm","credentials":[{"type":"current"}]}]`})
	for args, want := range map[string]string{
		"process/p10 defintion=orders owner=ann":              `unknown field "defintion": did you mean "definition"?`,
		"process/p10 definition= owner=ann":                   "definition is empty",
		"registry/x service=@examples/registries/orders.json": `unknown field "service": did you mean "services"?`,
	} {
		f := strings.Fields(args)
		res := vaultCLI(t, append([]string{"write", m + "/" + f[0]}, f[1:]...)...)
		if res.code != 2 || !strings.Contains(res.stderr, want) || strings.Contains(res.stderr, "ignored") {
			t.Errorf("vault write %s: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
	}
	for _, path := range []string{m + "/process/p10", m + "/registry/x"} {
		if s, err := env.client.Logical().Read(path); err != nil || s != nil {
			t.Errorf("%s was made: %v %v", path, s, err)
		}
	}
	const leak = "https://ann:typo-userinfo-secret@idp.example.com/token"
	rememberSecrets("typo-userinfo-secret")
	_, err := env.client.Logical().Write(m+"/technical/idp", map[string]any{"type": "oauth2", "token_url": []any{leak}, "client_id": "c", "client_secret": "s"})
	if msg := badRequest(t, err, "token_url must be a string, not a list"); strings.Contains(msg, "typo-userinfo") {
		t.Errorf("the 400 echoes the value: %q", msg)
	}
	_, err = env.client.Logical().Write(m+"/process/p1/report", map[string]any{"service": "crm", "error": "unavailable", "message": []any{leak}})
	if code := status(err); code != http.StatusBadRequest || strings.Contains(err.Error(), "typo-userinfo") {
		t.Errorf("a report's message of the wrong type: %v", err)
	}
}
