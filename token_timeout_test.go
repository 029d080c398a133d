package pecreds

import (
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// A token request, and any outbound call of the production build, gives up after 30 seconds
// (docs/operations.md); a request that needs the token waits on it at most the token wait, 2 s.
func TestOutboundCallsGiveUpAfter30Seconds(t *testing.T) {
	d := defaultDeps()
	if oauth.RequestTimeout != 30*time.Second || d.http.Timeout != 30*time.Second {
		t.Errorf("token request timeout %s, outbound client timeout %s: the documented bound is 30s", oauth.RequestTimeout, d.http.Timeout)
	}
	if d.tokenWait != 2*time.Second || d.minFetchInterval != 2*time.Second {
		t.Errorf("token wait %s, minimum fetch interval %s: the documented values are 2s", d.tokenWait, d.minFetchInterval)
	}
}
