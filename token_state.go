package pecreds

import (
	"math/rand/v2"
	"time"
)

// This file holds the bookkeeping of an oauth2 technical credential's token and the arithmetic of
// its refreshes: pure functions, no storage, no network.

const (
	// minTokenValidity: a token with less left than this is not served; a caller could not
	// use it in time.
	minTokenValidity = time.Second
	// refreshJitter: refreshes are pulled forward by up to this fraction of the lifetime, so
	// that credentials created together do not refresh together.
	refreshJitter = 0.05
	minBackoff    = 5 * time.Second
	maxBackoff    = 5 * time.Minute
)

// tokenState is stored at technical-state/<name>: the current token and its refresh bookkeeping.
type tokenState struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"` // zero: the endpoint gave no lifetime
	Generation  int       `json:"generation"` // one more at every token fetched
	LastRefresh time.Time `json:"last_refresh"`
	NextRefresh time.Time `json:"next_refresh"` // zero: nothing scheduled
	LastError   string    `json:"last_error"`
	Failures    int       `json:"failures"` // consecutive failed token requests
}

// valid says whether the token may be served at now.
func (st *tokenState) valid(now time.Time) bool {
	if st == nil || st.AccessToken == "" {
		return false
	}
	return st.ExpiresAt.IsZero() || now.Add(minTokenValidity).Before(st.ExpiresAt)
}

// due says whether the token should be re-created at now.
func (st *tokenState) due(now time.Time) bool {
	return !st.valid(now) || (!st.NextRefresh.IsZero() && !now.Before(st.NextRefresh))
}

func (st *tokenState) lifetime() time.Duration {
	if st.ExpiresAt.IsZero() {
		return 0
	}
	return st.ExpiresAt.Sub(st.IssuedAt)
}

// succeeded is the state after a token was fetched: the refresh is set at fraction of the
// lifetime, pulled forward by a little jitter.
func (st tokenState) succeeded(tok issuedToken, fraction float64, now time.Time) tokenState {
	st.AccessToken, st.TokenType = tok.AccessToken, tok.TokenType
	st.IssuedAt, st.ExpiresAt = tok.IssuedAt, tok.ExpiresAt
	st.Generation++
	st.LastRefresh = now
	st.LastError, st.Failures = "", 0
	st.NextRefresh = time.Time{}
	if life := st.lifetime(); life > 0 {
		at := time.Duration(float64(life) * fraction)
		at -= time.Duration(rand.Float64() * refreshJitter * float64(life))
		st.NextRefresh = tok.IssuedAt.Add(at)
	}
	return st
}

// failed is the state after a token request failed: the old token stays (served while valid),
// and the next attempt backs off exponentially.
func (st tokenState) failed(err error, now time.Time) tokenState {
	st.LastError = err.Error()
	st.Failures++
	st.NextRefresh = now.Add(backoff(st.Failures))
	return st
}

// backoff is the wait after the n-th consecutive failure: 5s, 10s, 20s, ... at most 5m.
func backoff(n int) time.Duration { return doubling(minBackoff, maxBackoff, n) }

// doubling is first, doubled n-1 times, at most limit.
func doubling(first, limit time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// material is what technical/:name/creds and resolve answer for the token: ttl counts the
// seconds until the next token, rotation_period is the lifetime, so Vault Agent templates
// re-fetch in time.
func (st *tokenState) material(name string, now time.Time) map[string]any {
	m := map[string]any{
		"type":         "oauth2",
		"name":         name,
		"access_token": st.AccessToken,
		"token_type":   st.TokenType,
		"expires_at":   formatTime(st.ExpiresAt),
	}
	if life := st.lifetime(); life > 0 {
		next := st.NextRefresh
		if next.IsZero() || next.After(st.ExpiresAt) {
			next = st.ExpiresAt
		}
		m["ttl"] = max(int64(next.Sub(now).Seconds()), 1)
		m["rotation_period"] = int64(life.Seconds())
	}
	return m
}
