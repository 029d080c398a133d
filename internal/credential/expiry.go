package credential

import "time"

// ExpiresAt is the expiry a credential states in its expires_at field (RFC 3339); false when it
// states none, or none that parses.
func (c Credential) ExpiresAt() (time.Time, bool) {
	exp, ok := c.Fields["expires_at"]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, exp)
	return t, err == nil
}

// Expired is the one "has it expired?" test: a credential whose stated expiry is not after now
// has expired; one that states no expiry never does — but a grant (oauth2_user) that states none
// was never settled (Settle), and fails closed: its access token is not served.
func (c Credential) Expired(now time.Time) bool {
	t, ok := c.ExpiresAt()
	if !ok {
		return c.Type == GrantType
	}
	return !now.Before(t)
}
