// Package oauth holds what pecreds knows of OAuth2 tokens without storage: the client-credentials
// token request (through an HTTP client it is given), a token's refresh arithmetic, and the
// refresh queue. Time comes in as arguments, so everything here is tested with a fake clock.
package oauth

import (
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/backoff"
)

const (
	// MinValidity: a token with less left than this is not served; a caller could not use it
	// in time.
	MinValidity = time.Second
	// Jitter: refreshes are pulled forward by up to this fraction of the lifetime, so that
	// credentials created together do not refresh together.
	Jitter = 0.05
	// MinBackoff and MaxBackoff bound the wait after failed token requests.
	MinBackoff = 5 * time.Second
	MaxBackoff = 5 * time.Minute
)

// State is a credential's current token and its refresh bookkeeping, as stored.
type State struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"` // zero: the endpoint gave no lifetime
	Generation  int       `json:"generation"` // one more at every token fetched
	LastRefresh time.Time `json:"last_refresh"`
	NextRefresh time.Time `json:"next_refresh"` // zero: nothing scheduled
	LastError   string    `json:"last_error"`
	Failures    int       `json:"failures"` // consecutive failed token requests
	// LastAttempt is when the last token request ended, well or not: no request follows it
	// sooner than a minimum interval (FetchAllowed).
	LastAttempt time.Time `json:"last_attempt"`
	// ConfigVersion is the technical credential's version the token was asked with, so that a
	// write that changes the credential knows whether a token already follows it.
	ConfigVersion int `json:"config_version"`
}

// Valid says whether the token may be served at now.
func (st *State) Valid(now time.Time) bool {
	if st == nil || st.AccessToken == "" {
		return false
	}
	return st.ExpiresAt.IsZero() || now.Add(MinValidity).Before(st.ExpiresAt)
}

// Due says whether the token should be re-created at now.
func (st *State) Due(now time.Time) bool {
	return !st.Valid(now) || (!st.NextRefresh.IsZero() && !now.Before(st.NextRefresh))
}

// FetchAllowed says whether a token request may be made at now for the credential's version: not
// sooner than minInterval after the last one, and not before the backoff after failures has
// passed — unless the failures were of an older version of the credential (an operator fixed
// it). When it may not, next is the earliest time it may.
func (st *State) FetchAllowed(now time.Time, minInterval time.Duration, version int) (ok bool, next time.Time) {
	if st == nil {
		return true, now
	}
	next = now
	if !st.LastAttempt.IsZero() && st.LastAttempt.Add(minInterval).After(next) {
		next = st.LastAttempt.Add(minInterval)
	}
	if st.Failures > 0 && st.ConfigVersion >= version && st.NextRefresh.After(next) {
		next = st.NextRefresh
	}
	return !next.After(now), next
}

// Lifetime is the token's lifetime; zero when it never expires.
func (st *State) Lifetime() time.Duration {
	if st.ExpiresAt.IsZero() {
		return 0
	}
	return st.ExpiresAt.Sub(st.IssuedAt)
}

// Succeeded is the state after a token was fetched: the refresh is set at fraction of the
// lifetime, pulled forward by jitter (in [0, 1)) times Jitter of it.
func (st State) Succeeded(tok Token, fraction, jitter float64, now time.Time) State {
	st.AccessToken, st.TokenType = tok.AccessToken, tok.TokenType
	st.IssuedAt, st.ExpiresAt = tok.IssuedAt, tok.ExpiresAt
	st.Generation++
	st.LastRefresh, st.LastAttempt = now, now
	st.LastError, st.Failures = "", 0
	st.NextRefresh = time.Time{}
	if life := st.Lifetime(); life > 0 {
		at := time.Duration(float64(life) * fraction)
		at -= time.Duration(jitter * Jitter * float64(life))
		st.NextRefresh = tok.IssuedAt.Add(at)
	}
	return st
}

// Failed is the state after a token request failed: the old token stays (served while valid),
// and the next attempt backs off exponentially.
func (st State) Failed(err error, now time.Time) State {
	st.LastError = err.Error()
	st.LastAttempt = now
	st.Failures++
	st.NextRefresh = now.Add(Backoff.After(st.Failures))
	return st
}

// Backoff is the wait after the n-th consecutive failure: 5s, 10s, 20s, ... at most 5m.
var Backoff = backoff.Doubling{First: MinBackoff, Limit: MaxBackoff}

// Material is what technical/:name/creds and resolve answer for the token: ttl counts the
// seconds until the next token, rotation_period is the lifetime, so Vault Agent templates
// re-fetch in time.
func (st *State) Material(name string, now time.Time) map[string]any {
	m := map[string]any{
		"type":         "oauth2",
		"name":         name,
		"access_token": st.AccessToken,
		"token_type":   st.TokenType,
		"expires_at":   FormatTime(st.ExpiresAt),
	}
	if life := st.Lifetime(); life > 0 {
		next := st.NextRefresh
		if next.IsZero() || next.After(st.ExpiresAt) {
			next = st.ExpiresAt
		}
		m["ttl"] = max(int64(next.Sub(now).Seconds()), 1)
		m["rotation_period"] = int64(life.Seconds())
	}
	return m
}

// FormatTime is RFC 3339 in UTC, empty for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
