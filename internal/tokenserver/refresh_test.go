package tokenserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// refreshOnce sends a refresh_token grant of client "app" and answers the status and the body.
func refreshOnce(t *testing.T, s *Server, rt string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, err := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "app-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func startServer(t *testing.T) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.SetClient("app", "app-secret")
	return s
}

// mustRefresh refreshes rt and answers the access token and the rotated refresh token.
func mustRefresh(t *testing.T, s *Server, rt string) (access, refresh string) {
	t.Helper()
	status, body := refreshOnce(t, s, rt)
	var m struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m.AccessToken == "" {
		t.Fatalf("refresh answered %d %s", status, body)
	}
	return m.AccessToken, m.RefreshToken
}

// TestRefreshRotatesAndDetectsReuse: each refresh rotates; the spent token sent again is recorded
// as a reuse and revokes the whole grant (its newest token too); every served refresh is in the
// grant's log with the access token's real expiry.
func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	s := startServer(t)
	s.SetLifetime(time.Minute)
	first, rt := s.IssueGrant("app")
	if exp, ok := s.Expiry(first); !ok || exp.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("the first access token's expiry %v %v", exp, ok)
	}
	at1, rt1 := mustRefresh(t, s, rt)
	at2, rt2 := mustRefresh(t, s, rt1)
	if rt1 == rt || rt2 == rt1 || at1 == at2 {
		t.Fatalf("no rotation: %s %s %s", rt, rt1, rt2)
	}
	if status, body := refreshOnce(t, s, rt1); status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Fatalf("a reused token answered %d %s", status, body)
	}
	if status, _ := refreshOnce(t, s, rt2); status != http.StatusBadRequest {
		t.Fatalf("the newest token of a grant revoked for reuse answered %d", status)
	}
	log, ok := s.Grant(rt2)
	if !ok || len(log.Refreshes) != 2 || len(log.Reuses) != 1 || log.Reuses[0].RefreshToken != rt1 || !log.Revoked || log.Refused != 2 {
		t.Fatalf("grant log %+v", log)
	}
	for i, r := range log.Refreshes {
		if exp, _ := s.Expiry(r.AccessToken); !exp.Equal(r.ExpiresAt) || r.ExpiresAt.Sub(r.At) != time.Minute {
			t.Errorf("refresh %d: expiry %v, recorded %v at %v", i, exp, r.ExpiresAt, r.At)
		}
	}
	if log.Refreshes[0].Sent != rt || log.Refreshes[1].Sent != rt1 || log.Refreshes[1].Rotated != rt2 || s.Reused() != 1 {
		t.Errorf("grant log %+v, %d reused", log, s.Reused())
	}
}

// TestRefreshRotatingWithoutReuseDetection: the spent token is refused and recorded, the grant
// lives on.
func TestRefreshRotatingWithoutReuseDetection(t *testing.T) {
	s := startServer(t)
	s.SetReuseDetection(false)
	_, rt := s.IssueGrant("app")
	_, rt1 := mustRefresh(t, s, rt)
	if status, _ := refreshOnce(t, s, rt); status != http.StatusBadRequest {
		t.Fatalf("a spent token answered %d", status)
	}
	mustRefresh(t, s, rt1)
	if log, _ := s.Grant(rt); len(log.Reuses) != 1 || log.Revoked || len(log.Refreshes) != 2 {
		t.Errorf("grant log %+v", log)
	}
}

// TestRefreshFaults: a lie is answered as it is and spends nothing; a grant's own fault overrides
// the server's; a slow grant answers no sooner than its delay.
func TestRefreshFaults(t *testing.T) {
	s := startServer(t)
	_, rt := s.IssueGrant("app")
	_, other := s.IssueGrant("app")
	for name, lie := range Lies {
		s.SetFault(Fault{Lie: lie})
		if status, body := refreshOnce(t, s, rt); status != http.StatusOK || body != lie {
			t.Errorf("%s: answered %d %q", name, status, body)
		}
	}
	s.SetGrantFault(other, Fault{})
	_, other = mustRefresh(t, s, other) // its own fault: none
	s.SetFault(Fault{})
	_, rt1 := mustRefresh(t, s, rt) // the lies spent nothing
	if log, _ := s.Grant(rt1); log.Lies != len(Lies) || len(log.Refreshes) != 1 || len(log.Reuses) != 0 {
		t.Errorf("grant log %+v", log)
	}

	s.SetGrantFault(rt1, Fault{Delay: 300 * time.Millisecond})
	start := time.Now()
	done := make(chan time.Duration)
	go func() { refreshOnce(t, s, rt1); done <- time.Since(start) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if log, _ := s.Grant(rt1); log.InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow refresh was never in flight")
		}
	}
	mustRefresh(t, s, other) // another grant is answered meanwhile
	if took := <-done; took < 300*time.Millisecond {
		t.Errorf("a slow grant answered in %s", took)
	}
	if log, _ := s.Grant(rt1); log.InFlight != 0 || len(log.Refreshes) != 2 {
		t.Errorf("after its answer: %+v", log)
	}
}
