package pecreds

import (
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := backoff(1000); got != maxBackoff {
		t.Errorf("backoff(1000) = %s", got)
	}
}

func TestTokenStateLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var st tokenState
	if st.valid(t0) || !st.due(t0) {
		t.Fatal("an empty state is valid or not due")
	}

	st = st.succeeded(issuedToken{AccessToken: "a", TokenType: "Bearer", IssuedAt: t0, ExpiresAt: t0.Add(100 * time.Second)}, 0.67, t0)
	if st.Generation != 1 || st.LastRefresh != t0 {
		t.Errorf("after success: %+v", st)
	}
	earliest, latest := t0.Add(62*time.Second), t0.Add(67*time.Second)
	if st.NextRefresh.Before(earliest) || st.NextRefresh.After(latest) {
		t.Errorf("next refresh %s not within [%s, %s]", st.NextRefresh, earliest, latest)
	}
	if !st.valid(t0.Add(98*time.Second)) || st.valid(t0.Add(99*time.Second)) || st.valid(t0.Add(200*time.Second)) {
		t.Error("validity does not end a second before expiry")
	}
	if st.due(t0.Add(10*time.Second)) || !st.due(st.NextRefresh) {
		t.Error("due before the refresh time, or not due at it")
	}

	m := st.material("idp", t0.Add(10*time.Second))
	if m["access_token"] != "a" || m["rotation_period"] != int64(100) {
		t.Errorf("material %v", m)
	}
	if ttl := m["ttl"].(int64); ttl < 52 || ttl > 57 {
		t.Errorf("ttl %d, want the seconds until the next refresh", ttl)
	}

	// A failure keeps the token, records the error and backs off.
	t1 := t0.Add(70 * time.Second)
	st = st.failed(errors.New("the token endpoint answered 503"), t1)
	st = st.failed(errors.New("the token endpoint answered 503"), t1)
	if st.AccessToken != "a" || st.Failures != 2 || st.NextRefresh != t1.Add(10*time.Second) || st.LastError == "" {
		t.Errorf("after two failures: %+v", st)
	}
	if !st.valid(t1) {
		t.Error("the old token is no longer served while valid")
	}
	st = st.succeeded(issuedToken{AccessToken: "b", IssuedAt: t1, ExpiresAt: t1.Add(100 * time.Second)}, 0.5, t1)
	if st.Failures != 0 || st.LastError != "" || st.Generation != 2 {
		t.Errorf("a success does not clear the failures: %+v", st)
	}

	// A token without a lifetime never expires and is never refreshed.
	st = st.succeeded(issuedToken{AccessToken: "c", IssuedAt: t1}, 0.5, t1)
	if !st.NextRefresh.IsZero() || !st.valid(t1.Add(1000*time.Hour)) {
		t.Errorf("a token without lifetime: %+v", st)
	}
	if _, ok := st.material("idp", t1)["ttl"]; ok {
		t.Error("a token that does not rotate carries a ttl")
	}
}

func TestRefreshQueueOrder(t *testing.T) {
	b, _ := getTestBackend(t)
	r := b.refresher
	t0 := time.Now()
	r.scheduleAt("c", t0.Add(3*time.Second))
	r.scheduleAt("a", t0.Add(time.Second))
	r.scheduleAt("b", t0.Add(2*time.Second))
	r.scheduleAt("c", t0.Add(-time.Second)) // moved to the front
	r.unschedule("b")
	var got []string
	for {
		name, _ := r.popDue(t0.Add(10 * time.Second))
		if name == "" {
			break
		}
		got = append(got, name)
	}
	if len(got) != 2 || got[0] != "c" || got[1] != "a" {
		t.Errorf("popped %v, want [c a]", got)
	}
	if _, wait := r.popDue(t0); wait != time.Hour {
		t.Errorf("an empty queue waits %s", wait)
	}
}
