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
// has expired; one that states no expiry never does.
func (c Credential) Expired(now time.Time) bool {
	t, ok := c.ExpiresAt()
	return ok && !now.Before(t)
}
