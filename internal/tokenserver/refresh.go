package tokenserver

import (
	"fmt"
	"net/http"
	"time"
)

// The refresh_token grant as a strict provider serves it (OAuth 2.0 Security BCP 4.14): every
// refresh rotates the refresh token, and a refresh token used a second time is reuse — the whole
// grant (every token of its family) is revoked, and the request is refused with invalid_grant.
// SetReuseDetection(false) keeps rotation (the spent token is refused) without the revocation;
// SetRotation(false) answers no new refresh token at all. The endpoint keeps, per grant, every
// refresh it served and every reuse it saw (Grant), and the real expiry of every access token it
// handed out (Expiry), so that tests judge what the plugin served by the provider's own record.

type grant struct {
	client string
	family *family
	used   bool
}

// family is one grant: the refresh tokens that descend from one authorization.
type family struct {
	revoked  bool
	fault    *Fault // nil: the server's fault
	inFlight int
	log      GrantLog
}

// GrantLog is what the endpoint saw of one grant.
type GrantLog struct {
	Refreshes []Refresh // every refresh it answered with a token, in order
	Reuses    []Reuse   // every refresh token sent again after it was spent
	Lies      int       // refreshes it answered with its fault's lie
	Refused   int       // refreshes refused with invalid_grant (reuses included)
	Revoked   bool
	// InFlight counts the refreshes received and not yet answered: a test knows a slow refresh
	// is in the air.
	InFlight int
}

// Refresh is one refresh the endpoint served.
type Refresh struct {
	At          time.Time
	Sent        string // the refresh token the request sent
	AccessToken string
	ExpiresAt   time.Time // when AccessToken really expires
	Rotated     string    // the refresh token answered, "" when not rotated
}

// Reuse is a spent refresh token sent again.
type Reuse struct {
	At           time.Time
	RefreshToken string
}

// rawBody is an answer written as it is, for a lie that is not JSON.
type rawBody string

// IssueGrant hands out a grant of client, as an authorization-code exchange would: its refresh
// token, and a first access token that lives the server's lifetime.
func (s *Server) IssueGrant(client string) (accessToken, refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rt := fmt.Sprintf("rt-%s-%d", client, s.seq)
	s.grants[rt] = &grant{client: client, family: &family{}}
	at := fmt.Sprintf("tok-%s-%d", client, s.seq)
	s.expiry[at] = time.Now().Add(s.lifetime)
	return at, rt
}

// RevokeGrant revokes the grant that refreshToken belongs to, as the user's sign-out or an
// administrator would: its every refresh token is refused from now on.
func (s *Server) RevokeGrant(refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.grants[refreshToken]; g != nil {
		g.family.revoked = true
	}
}

// SetRotation turns refresh token rotation on (the default) or off; off answers no refresh_token,
// and the one sent stays good.
func (s *Server) SetRotation(on bool) { s.mu.Lock(); s.noRotate = !on; s.mu.Unlock() }

// SetReuseDetection turns reuse detection on (the default) or off. Off, a spent refresh token is
// still refused with invalid_grant (and counted), but its grant lives on.
func (s *Server) SetReuseDetection(on bool) { s.mu.Lock(); s.noReuseDetection = !on; s.mu.Unlock() }

// Reused counts refresh requests that sent a refresh token already spent.
func (s *Server) Reused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reused
}

// Grant is the log of the grant that refreshToken (any of its refresh tokens) belongs to.
func (s *Server) Grant(refreshToken string) (GrantLog, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.grants[refreshToken]
	if g == nil {
		return GrantLog{}, false
	}
	out := g.family.log
	out.Refreshes = append([]Refresh(nil), out.Refreshes...)
	out.Reuses = append([]Reuse(nil), out.Reuses...)
	out.Revoked, out.InFlight = g.family.revoked, g.family.inFlight
	return out, true
}

// Expiry is when an access token the endpoint handed out really expires.
func (s *Server) Expiry(accessToken string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.expiry[accessToken]
	return t, ok
}

// refresh answers a refresh_token grant of client, at now.
func (s *Server) refresh(client, rt string, lifetime time.Duration, now time.Time) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.grants[rt]
	switch {
	case g == nil || g.client != client:
		return http.StatusBadRequest, map[string]any{"error": "invalid_grant"}
	case g.family.revoked:
		g.family.log.Refused++
		return http.StatusBadRequest, map[string]any{"error": "invalid_grant"}
	case g.used:
		s.reused++
		g.family.log.Reuses = append(g.family.log.Reuses, Reuse{At: now, RefreshToken: rt})
		g.family.log.Refused++
		g.family.revoked = !s.noReuseDetection
		return http.StatusBadRequest, map[string]any{"error": "invalid_grant"}
	}
	if f := s.faultOf(g); f.Lie != "" {
		g.family.log.Lies++ // a lie spends nothing: the refresh token sent stays good
		return http.StatusOK, rawBody(f.Lie)
	}
	s.seq++
	access := fmt.Sprintf("tok-%s-%d", client, s.seq)
	served := Refresh{At: now, Sent: rt, AccessToken: access, ExpiresAt: now.Add(lifetime)}
	s.expiry[access] = served.ExpiresAt
	body := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(lifetime.Seconds())}
	if !s.noRotate {
		g.used = true
		served.Rotated = fmt.Sprintf("rt-%s-%d", client, s.seq)
		s.grants[served.Rotated] = &grant{client: client, family: g.family}
		body["refresh_token"] = served.Rotated
	}
	g.family.log.Refreshes = append(g.family.log.Refreshes, served)
	return http.StatusOK, body
}
