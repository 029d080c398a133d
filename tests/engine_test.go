package tests

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The reference engine (examples/engine), run as a user runs it: three processes book at a
// loopback ledger with Ann's password; she changes it there; each process gets a 401, reports it,
// waits for her task; she completes each (the program does it as her, through her own userpass
// login); each resumes and books again. Before the change, one activity runs in a worker that
// holds no Vault token and unwraps a response-wrapped resolve once.
func TestReferenceEngineRunsTheWholeStory(t *testing.T) {
	p := setupPeople(t)
	rememberSecrets("ann-ledger-password-1", "ann-ledger-password-2")
	auth := "up-" + strings.TrimPrefix(p.mount, "pecreds-")
	if len(auth) > 40 {
		auth = auth[:40]
	}
	cmd := exec.Command("go", "run", "./examples/engine", "-mount", p.mount, "-userpass", "auth/"+auth,
		"-ann-login", "ann-vault-login", "-ann-entity", p.annEntity, "-complete-after", "300ms", "-timeout", "2m")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+env.addr, "VAULT_TOKEN="+rootToken)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the engine: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"booked (credentials from definition:engine-example", "401 reported; broken, waiting for Ann's task",
		"ann: completed task", "resumed", "all 3 processes resumed and booked with Ann's new password",
		"the host hands a worker a wrapping token (1m0s", "the worker unwrapped the credentials once and booked (from definition:engine-example)",
		"a second unwrap of the same token is refused"} {
		if !strings.Contains(text, want) {
			t.Errorf("the engine did not say %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, ": resumed"); n != 3 {
		t.Errorf("%d processes resumed:\n%s", n, text)
	}
}
