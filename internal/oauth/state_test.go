package oauth

import (
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := Backoff.After(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := Backoff.After(1000); got != MaxBackoff {
		t.Errorf("Backoff(1000) = %s", got)
	}
}

// The refresh comes at the fraction of the lifetime, pulled forward by at most Jitter of it.
func TestRefreshAtFractionWithinJitter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tok := Token{AccessToken: "a", IssuedAt: t0, ExpiresAt: t0.Add(1000 * time.Second)}
	for jitter, want := range map[float64]time.Duration{0: 670 * time.Second, 0.5: 645 * time.Second, 0.999999: 620 * time.Second} {
		st := State{}.Succeeded(tok, 0.67, jitter, t0)
		if d := st.NextRefresh.Sub(t0); d.Round(time.Second) != want {
			t.Errorf("jitter %v: refresh after %s, want %s", jitter, d, want)
		}
	}
	for _, fraction := range []float64{0.5, 0.9} {
		st := State{}.Succeeded(tok, fraction, 0, t0)
		if d := st.NextRefresh.Sub(t0); d != time.Duration(fraction*1000)*time.Second {
			t.Errorf("fraction %v: refresh after %s", fraction, d)
		}
	}
}

func TestTokenStateLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var st State
	if st.Valid(t0) || !st.Due(t0) {
		t.Fatal("an empty state is valid or not due")
	}
	var none *State
	if none.Valid(t0) {
		t.Fatal("a missing state is valid")
	}

	st = st.Succeeded(Token{AccessToken: "a", TokenType: "Bearer", IssuedAt: t0, ExpiresAt: t0.Add(100 * time.Second)}, 0.67, 0.5, t0)
	if st.Generation != 1 || st.LastRefresh != t0 || st.NextRefresh != t0.Add(64500*time.Millisecond) {
		t.Errorf("after success: %+v", st)
	}
	if !st.Valid(t0.Add(98*time.Second)) || st.Valid(t0.Add(99*time.Second)) || st.Valid(t0.Add(200*time.Second)) {
		t.Error("validity does not end a second before expiry")
	}
	if st.Due(t0.Add(10*time.Second)) || !st.Due(st.NextRefresh) {
		t.Error("due before the refresh time, or not due at it")
	}

	m := st.Material("idp", t0.Add(10*time.Second))
	if m["access_token"] != "a" || m["rotation_period"] != int64(100) || m["ttl"] != int64(54) || m["expires_at"] != "2026-01-01T12:01:40Z" {
		t.Errorf("material %v", m)
	}

	// A failure keeps the token (served while valid), records the error and backs off.
	t1 := t0.Add(70 * time.Second)
	st = st.Failed(errors.New("the token endpoint answered HTTP 503"), t1)
	st = st.Failed(errors.New("the token endpoint answered HTTP 503"), t1)
	if st.AccessToken != "a" || st.Failures != 2 || st.NextRefresh != t1.Add(10*time.Second) || st.LastError == "" {
		t.Errorf("after two failures: %+v", st)
	}
	if !st.Valid(t1) || st.Material("idp", t1)["access_token"] != "a" {
		t.Error("the old token is no longer served while valid")
	}
	if st.Valid(t0.Add(99 * time.Second)) {
		t.Error("an expired token is served after failures")
	}
	st = st.Succeeded(Token{AccessToken: "b", IssuedAt: t1, ExpiresAt: t1.Add(100 * time.Second)}, 0.5, 0, t1)
	if st.Failures != 0 || st.LastError != "" || st.Generation != 2 {
		t.Errorf("a success does not clear the failures: %+v", st)
	}

	// A token without a lifetime never expires and is never refreshed.
	st = st.Succeeded(Token{AccessToken: "c", IssuedAt: t1}, 0.5, 0, t1)
	if !st.NextRefresh.IsZero() || !st.Valid(t1.Add(1000*time.Hour)) {
		t.Errorf("a token without lifetime: %+v", st)
	}
	if _, ok := st.Material("idp", t1)["ttl"]; ok {
		t.Error("a token that does not rotate carries a ttl")
	}
	if FormatTime(time.Time{}) != "" {
		t.Error("the zero time formats")
	}
}

// TestFetchAllowed: no token request sooner than the minimum interval after the last one, and
// none during the backoff after failures, whoever asks.
func TestFetchAllowed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var none *State
	if ok, _ := none.FetchAllowed(t0, 2*time.Second, 0); !ok {
		t.Error("a credential without a state may fetch")
	}
	st := State{}.Succeeded(Token{AccessToken: "a", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 0.67, 0, t0)
	if ok, next := st.FetchAllowed(t0.Add(time.Second), 2*time.Second, 0); ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Errorf("1s after a fetch: %v, next %v", ok, next)
	}
	if ok, _ := st.FetchAllowed(t0.Add(2*time.Second), 2*time.Second, 0); !ok {
		t.Error("the minimum interval has passed")
	}
	failed := st.Failed(errors.New("x"), t0.Add(10*time.Second)).Failed(errors.New("x"), t0.Add(20*time.Second))
	if ok, next := failed.FetchAllowed(t0.Add(25*time.Second), 2*time.Second, 0); ok || !next.Equal(t0.Add(30*time.Second)) {
		t.Errorf("during the second backoff (10s): %v, next %v", ok, next)
	}
	if ok, _ := failed.FetchAllowed(t0.Add(30*time.Second), 2*time.Second, 0); !ok {
		t.Error("the backoff has passed")
	}
	if ok, _ := failed.FetchAllowed(t0.Add(25*time.Second), 2*time.Second, 1); !ok {
		t.Error("a credential written since its failures is not held to their backoff")
	}
	if ok, _ := failed.FetchAllowed(t0.Add(21*time.Second), 2*time.Second, 1); ok {
		t.Error("nor is it asked sooner than the minimum interval")
	}
}
