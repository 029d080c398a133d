package pecreds

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// status counts technical credentials by state as docs/operations.md defines them: ok; failing
// (its last token request failed, a valid token is still served); expired (nothing valid to
// serve: a token past its expiry, or one never had).
func TestStatusTechnicalCredentialStates(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/good", oauth2Input(srv, "app"))
	mustSucceed(t, b, s, logical.CreateOperation, "technical/shaky", oauth2Input(srv, "app"))
	mustSucceed(t, b, s, logical.CreateOperation, "technical/static", map[string]any{"type": "api_key", "key": "k"})
	never := oauth2Input(srv, "app")
	never["client_secret"] = "wrong-secret"
	mustSucceed(t, b, s, logical.CreateOperation, "technical/never", never)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/old", map[string]any{"type": "token", "token": "t", "expires_at": "2020-01-01T00:00:00Z"})
	srv.FailWith(http.StatusServiceUnavailable)
	mustFailCode(t, b, s, logical.UpdateOperation, "technical/shaky/rotate", http.StatusServiceUnavailable)

	got := statusOf(t, b, s)["technical_credentials"]
	if want := map[string]int{"ok": 2, "failing": 1, "expired": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("technical_credentials = %v, want %v", got, want)
	}
}
