package tokenserver

import "time"

// Fault is how the endpoint misbehaves on refreshes, for fault injection: the zero Fault answers
// the truth at once.
type Fault struct {
	// Delay holds each refresh's answer this long, as a slow provider does.
	Delay time.Duration
	// Lie, when not empty, is answered (status 200) in place of a token: one of Lies, or any text.
	// The refresh token sent stays good and nothing is issued, so a plugin that refuses the lie
	// refreshes the grant as before once the endpoint heals.
	Lie string
}

// Lies are answers a lying or broken provider gives to a refresh, by what is wrong with them. Each
// names an access token and a refresh token that the endpoint never issued ("lie-…"): one served
// or sent again shows that the plugin took the lie.
var Lies = map[string]string{
	"expires_in negative": `{"access_token": "lie-at-negative", "token_type": "Bearer", "expires_in": -60, "refresh_token": "lie-rt-negative"}`,
	"expires_in zero":     `{"access_token": "lie-at-zero", "token_type": "Bearer", "expires_in": 0, "refresh_token": "lie-rt-zero"}`,
	"expires_in too short": `{"access_token": "lie-at-short", "token_type": "Bearer", "expires_in": 1,
		"refresh_token": "lie-rt-short"}`,
	"expires_in not a number": `{"access_token": "lie-at-text", "token_type": "Bearer", "expires_in": "soon", "refresh_token": "lie-rt-text"}`,
	"no expires_in, an expiry in the past": `{"access_token": "lie-at-past", "token_type": "Bearer", "expires_at": "2001-01-01T00:00:00Z",
		"expiry": "2001-01-01T00:00:00Z", "refresh_token": "lie-rt-past"}`,
	"not JSON":        `<html>503 Service Unavailable</html>`,
	"truncated JSON":  `{"access_token": "lie-at-truncated", "token_type": "Bearer", "expires_in": 60, "refresh_tok`,
	"no access_token": `{"token_type": "Bearer", "expires_in": 60, "refresh_token": "lie-rt-noaccess"}`,
	"access_token with CR LF": `{"access_token": "lie-at-crlf\r\nX-Injected: 1", "token_type": "Bearer", "expires_in": 60,
		"refresh_token": "lie-rt-crlf"}`,
	"token_type of two words": `{"access_token": "lie-at-type", "token_type": "Bearer evil", "expires_in": 60, "refresh_token": "lie-rt-type"}`,
	"refresh_token with a control character": `{"access_token": "lie-at-rtctl", "token_type": "Bearer", "expires_in": 60,
		"refresh_token": "lie-rt-\u0007bell"}`,
	"a blank body": ` `,
}

// SetFault sets the fault of every grant's refreshes from now on (a grant given its own by
// SetGrantFault keeps it); the zero Fault heals the endpoint.
func (s *Server) SetFault(f Fault) { s.mu.Lock(); s.fault = f; s.mu.Unlock() }

// SetGrantFault sets the fault of the refreshes of the grant that refreshToken belongs to, from
// now on; the zero Fault makes it answer the truth at once, whatever the server's fault.
func (s *Server) SetGrantFault(refreshToken string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.grants[refreshToken]; g != nil {
		g.family.fault = &f
	}
}

// faultFor is the fault that applies to a refresh that sends refreshToken.
func (s *Server) faultFor(refreshToken string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.grants[refreshToken]; g != nil {
		return s.faultOf(g)
	}
	return s.fault
}

// faultOf is g's fault (the caller holds mu).
func (s *Server) faultOf(g *grant) Fault {
	if g.family.fault != nil {
		return *g.family.fault
	}
	return s.fault
}

// inFlight counts a refresh of the grant of refreshToken in the air (by 1) or answered (by -1).
func (s *Server) inFlight(refreshToken string, by int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.grants[refreshToken]; g != nil {
		g.family.inFlight += by
	}
}
