package credential

import (
	"testing"
	"time"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		fields  map[string]string
		expired bool
	}{
		{"no expiry", map[string]string{"token": "t"}, false},
		{"before now", map[string]string{"expires_at": "2026-12-01T11:59:59Z"}, true},
		{"exactly now", map[string]string{"expires_at": "2026-12-01T12:00:00Z"}, true},
		{"after now", map[string]string{"expires_at": "2026-12-01T12:00:01Z"}, false},
		{"other zone, after", map[string]string{"expires_at": "2026-12-01T13:00:01+01:00"}, false},
		{"unparsable", map[string]string{"expires_at": "tomorrow"}, false},
	} {
		c := Credential{Type: "token", Fields: tc.fields}
		if got := c.Expired(now); got != tc.expired {
			t.Errorf("%s: Expired = %v, want %v", tc.name, got, tc.expired)
		}
	}
}
