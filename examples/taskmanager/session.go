package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"
)

// cookieName holds a session's random id, and nothing else: the Vault token stays here.
const cookieName = "taskmanager_session"

// maxSessions bounds the memory signed-in users take; past it a sign-in is refused until
// sessions end.
const maxSessions = 10000

// session is one signed-in user, kept on the server only.
type session struct {
	token   string // the user's Vault token: never rendered, logged or put in a URL
	user    string
	entity  string // the user's identity entity, whose webhook notices they see
	expires time.Time
	flash   string // a one-time message for the next page ("task ... completed")
}

// sessions are the signed-in users by session id.
type sessions struct {
	ttl    time.Duration
	secure bool // cookies are Secure even on plain HTTP: TLS ends at a proxy in front
	mu     sync.Mutex
	m      map[string]*session
}

func newSessions(ttl time.Duration, secure bool) *sessions {
	return &sessions{ttl: ttl, secure: secure, m: map[string]*session{}}
}

var errTooManySessions = errors.New("too many people are signed in; try again later")

// maxSessionsPerUser bounds one user's sessions: signing in again and again (a script that drops
// the cookie) ends that user's oldest session, so one user cannot fill the service for everyone.
const maxSessionsPerUser = 4

// create stores a session for a user whose token lasts tokenTTL (0: no end of its own), and
// answers its id, and the tokens of that user's sessions it ended to make room (the caller
// revokes them).
func (s *sessions) create(token, user, entity string, tokenTTL time.Duration) (string, time.Time, []string, error) {
	ttl := s.ttl
	if tokenTTL > 0 && tokenTTL < ttl {
		ttl = tokenTTL
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, nil, err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	expires := time.Now().Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	ended := s.makeRoomForLocked(user)
	if len(s.m) >= maxSessions {
		s.dropExpiredLocked()
		if len(s.m) >= maxSessions {
			return "", time.Time{}, ended, errTooManySessions
		}
	}
	s.m[id] = &session{token: token, user: user, entity: entity, expires: expires}
	return id, expires, ended, nil
}

// makeRoomForLocked ends user's oldest sessions until they hold fewer than maxSessionsPerUser,
// and answers their tokens.
func (s *sessions) makeRoomForLocked(user string) []string {
	var ended []string
	for {
		oldest, n := "", 0
		for id, ss := range s.m {
			if ss.user != user {
				continue
			}
			if n++; oldest == "" || ss.expires.Before(s.m[oldest].expires) {
				oldest = id
			}
		}
		if n < maxSessionsPerUser {
			return ended
		}
		ended = append(ended, s.m[oldest].token)
		delete(s.m, oldest)
	}
}

func (s *sessions) dropExpiredLocked() {
	now := time.Now()
	for id, ss := range s.m {
		if now.After(ss.expires) {
			delete(s.m, id)
		}
	}
}

// get answers a copy of the request's session, nil when it has none or it has ended; it takes
// the flash message away.
func (s *sessions) get(r *http.Request) (string, *session) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) != 43 { // 32 bytes, base64url without padding
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[c.Value]
	if !ok {
		return "", nil
	}
	if time.Now().After(ss.expires) {
		delete(s.m, c.Value)
		return "", nil
	}
	out := *ss
	ss.flash = ""
	return c.Value, &out
}

func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.m[id]; ok {
		ss.flash = msg
	}
}

// remove ends a session and answers its token, for revoking it.
func (s *sessions) remove(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return ""
	}
	delete(s.m, id)
	return ss.token
}

// setCookie gives the browser the session id: HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it), Secure when served over TLS or behind a TLS proxy.
func (s *sessions) setCookie(w http.ResponseWriter, r *http.Request, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure || r.TLS != nil})
}

func (s *sessions) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure || r.TLS != nil})
}
