package tests

import (
	"testing"
	"time"

	pecreds "github.com/pecreds/vault-plugin-pecreds"
)

// nextVersion is the version the upgrade test's second build of the plugin reports.
const nextVersion = "v0.2.1"

// The upgrade and downgrade of docs/operations.md, with the commands it gives: register another
// version of the plugin, point the mount at it, reload; the mount runs the new version and every
// process, registry and technical credential is as before; the same back to the first version.
func TestUpgradeAndDowngradeByPluginVersion(t *testing.T) {
	const binary = "vault-plugin-pecreds-next"
	sha, err := buildPlugin(env.pluginDir, binary, "", "-X github.com/pecreds/vault-plugin-pecreds.versionBuild="+nextVersion)
	if err != nil {
		t.Fatal(err)
	}
	mount := newMount(t)
	mustCLI(t, "plugin", "register", "-sha256="+sha, "-version="+nextVersion, "-command="+binary, "secret", pluginName)
	t.Cleanup(func() {
		if res := vaultCLI(t, "plugin", "deregister", "-version="+nextVersion, "secret", pluginName); res.code != 0 {
			t.Errorf("deregistering %s: %s%s", nextVersion, res.stdout, res.stderr)
		}
	})

	mustCLI(t, "write", mount+"/registry/orders", `services=[{"name": "crm", "credentials": [{"type": "current"}, {"type": "technical", "name": "svc"}]}]`)
	mustCLI(t, "write", mount+"/technical/svc", "type=password", "username=svc", "password=upgrade-svc-password")
	rememberSecrets("upgrade-svc-password")
	mustCLI(t, "write", mount+"/process/order-1", "definition=orders", "current="+userCurrent(t, "uma"))

	for _, version := range []string{nextVersion, pecreds.Version} {
		mustCLI(t, "secrets", "tune", "-plugin-version="+version, mount)
		mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
		waitFor(t, 30*time.Second, func() bool {
			m, err := env.client.Sys().GetMount(mount)
			return err == nil && m.RunningVersion == version
		})
		r := read(t, mount+"/process/order-1/resolve/crm")
		if r.Data["username"] != "uma" || r.Data["source"] != "definition:orders" {
			t.Errorf("on %s the process resolves %v", version, r.Data)
		}
		if got := read(t, mount+"/process/order-1").Data["current_credentials"]; got != "kept" {
			t.Errorf("on %s the process's current credentials are %v", version, got)
		}
		if got := read(t, mount+"/technical/svc/creds").Data["username"]; got != "svc" {
			t.Errorf("on %s the technical credential reads %v", version, got)
		}
	}
}
