package tokenserver

import (
	"fmt"
	"net/http"
	"time"
)

// The refresh_token grant as a strict provider serves it (OAuth 2.0 Security BCP 4.14): every
// refresh rotates the refresh token, and a refresh token used a second time is reuse — the whole
// grant (every token of its family) is revoked, and the request is refused with invalid_grant.

type grant struct {
	client string
	family *family
	used   bool
}

type family struct{ revoked bool }

// IssueGrant hands out a grant of client, as an authorization-code exchange would: its refresh
// token, and a first access token that lives the server's lifetime.
func (s *Server) IssueGrant(client string) (accessToken, refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rt := fmt.Sprintf("rt-%s-%d", client, s.seq)
	s.grants[rt] = &grant{client: client, family: &family{}}
	return fmt.Sprintf("tok-%s-%d", client, s.seq), rt
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

// Reused counts refresh requests that sent a refresh token already spent.
func (s *Server) Reused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reused
}

// refresh answers a refresh_token grant of client.
func (s *Server) refresh(client, rt string, lifetime time.Duration) (int, map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.grants[rt]
	switch {
	case g == nil || g.client != client || g.family.revoked:
		return http.StatusBadRequest, map[string]any{"error": "invalid_grant"}
	case g.used:
		s.reused++
		g.family.revoked = true
		return http.StatusBadRequest, map[string]any{"error": "invalid_grant"}
	}
	s.seq++
	body := map[string]any{"access_token": fmt.Sprintf("tok-%s-%d", client, s.seq), "token_type": "Bearer",
		"expires_in": int(lifetime.Seconds())}
	if !s.noRotate {
		g.used = true
		next := fmt.Sprintf("rt-%s-%d", client, s.seq)
		s.grants[next] = &grant{client: client, family: g.family}
		body["refresh_token"] = next
	}
	return http.StatusOK, body
}
