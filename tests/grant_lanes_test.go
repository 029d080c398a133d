package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// TestGrantRefreshSlowProviderStarvesNoOther: grants of a provider that hangs on every refresh
// (25 s), more of them than the places of grant_refresh_concurrency (2), do not hold back the
// refreshes of another provider's grant: it is refreshed again and again meanwhile, and its
// process never answers 503 (DESIGN.md: a slow endpoint delays only the requests that need it).
func TestGrantRefreshSlowProviderStarvesNoOther(t *testing.T) {
	mount, fast := grantFaultMount(t)
	slow := startTokenServer(t)
	createOAuth2(t, mount, "idp-slow", slow, "app")
	write(t, mount+"/config", map[string]any{"grant_refresh_concurrency": 2})
	fast.SetLifetime(6 * time.Second)
	slow.SetLifetime(6 * time.Second)
	slowRTs := make([]string, 4)
	for i := range slowRTs {
		_, slowRTs[i] = startGrantOf(t, mount, slow, "idp-slow", fmt.Sprintf("slow%d", i))
	}
	slow.SetFault(tokenserver.Fault{Delay: 25 * time.Second})
	_, fastRT := startGrant(t, mount, fast, "fast")

	inFlight := func() int {
		n := 0
		for _, rt := range slowRTs {
			n += grantLog(t, slow, rt).InFlight
		}
		return n
	}
	waitFor(t, 30*time.Second, func() bool { return inFlight() >= 2 })
	var reads []resolved
	refreshed := poll(30*time.Second, 250*time.Millisecond, func() bool {
		reads = append(reads, resolveGrant(mount, "fast"))
		return len(grantLog(t, fast, fastRT).Refreshes) >= 3
	})
	judgeServed(t, fast, "the other provider's grant", reads)
	if !refreshed {
		t.Fatalf("while the slow provider held %d refreshes, the other provider's grant was refreshed %d times in 30 s, want 3 or more",
			inFlight(), len(grantLog(t, fast, fastRT).Refreshes))
	}
	if n := inFlight(); n == 0 {
		t.Fatal("the slow refreshes were answered before the other grant's: this run shows nothing")
	}
	for _, r := range reads {
		if r.status != 200 {
			t.Errorf("the other provider's grant answered %d while the slow provider hung", r.status)
		}
	}
}
