package resolve

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A grant (oauth2_user) in a runtime layer or as the current credentials answers its access token,
// type and expiry only; its access token, once expired, is never answered, whatever its refresh
// token.
func TestResolveGrant(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	live := cred("oauth2_user", "access_token", "AT-live", "refresh_token", "RT-live", "expires_at", "2026-05-01T13:00:00Z",
		"client", "idp", "scope", "mail.read", "token_type", "Bearer")
	expired := cred("oauth2_user", "access_token", "AT-old", "refresh_token", "RT-old", "expires_at", "2026-05-01T12:00:00Z",
		"client", "idp", "token_type", "Bearer")
	want := "map[access_token:AT-live expires_at:2026-05-01T13:00:00Z token_type:Bearer type:oauth2_user]"

	layers := []Layer{{Source: "runtime", Services: nil}}
	layers[0].Services = append(layers[0].Services, svc("mail", "", "", expired, live))
	m, _, err := Find(layers, Query{Service: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	res := Choose(m, Query{Service: "mail", Explain: true}, Snapshot{CurrentStatus: CurrentNone}, now)
	if len(res.Found) != 1 || res.Found[0].Index != 1 || fmt.Sprint(res.Found[0].Material) != want {
		t.Fatalf("runtime: found %v", res.Found)
	}
	if res.Tried[0].Skipped != "expired at 2026-05-01T12:00:00Z" {
		t.Errorf("runtime: the expired grant was %+v", res.Tried[0])
	}

	current := []Layer{{Source: "definition:d", Services: nil}}
	current[0].Services = append(current[0].Services, svc("mail", "", "", cred("current")))
	m, _, err = Find(current, Query{Service: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	res = Choose(m, Query{Service: "mail"}, Snapshot{Current: live, CurrentStatus: CurrentKept}, now)
	if len(res.Found) != 1 || fmt.Sprint(res.Found[0].Material) != want {
		t.Fatalf("current: found %v", res.Found)
	}
	if strings.Contains(fmt.Sprint(res), "RT-") {
		t.Errorf("the resolution holds a refresh token: %v", res)
	}
}
