package temporal

import (
	"strings"
	"testing"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Every workflow id, whatever its characters and length, gives a process id pecreds accepts,
// and two runs of one workflow id give two process ids.
func TestProcessIDIsAValidNameUniquePerRun(t *testing.T) {
	const run1, run2 = "0b6f2d8e-6a53-4e5e-9c8e-1f2a3b4c5d6e", "7d1c9b0a-2f3e-4d5c-8b7a-6e5f4d3c2b1a"
	for _, wf := range []string{"order-42", "", "-x", ".hidden", "a/b c", "ümlaut", "../../technical/crm/creds", strings.Repeat("w", 300)} {
		a, b := ProcessID(wf, run1), ProcessID(wf, run2)
		for _, id := range []string{a, b} {
			if err := credential.ValidateName("process id", id); err != nil {
				t.Errorf("ProcessID(%q): %v", wf, err)
			}
		}
		if a == b {
			t.Errorf("ProcessID(%q) is %q for both runs", wf, a)
		}
	}
	if got := ProcessID("order-42", run1); got != "order-42."+run1 {
		t.Errorf("a plain workflow id: %q", got)
	}
}
