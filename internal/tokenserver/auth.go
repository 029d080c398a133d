package tokenserver

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// How a client authenticates at the token endpoint (OpenID Connect's token_endpoint_auth_method).
const (
	MethodBasic         = "client_secret_basic"
	MethodPost          = "client_secret_post"
	MethodPrivateKeyJWT = "private_key_jwt"

	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertionLife bounds exp - iat of an assertion, as providers do (Hydra: one hour; five
	// minutes is the usual advice).
	maxAssertionLife = 5 * time.Minute
	clockLeeway      = 5 * time.Second
)

// authOutcome is what the endpoint made of a request's client authentication.
type authOutcome struct {
	id, method, kid, alg string
	refused              string // why it was refused, in this server's words; "" when accepted
	status               int
	code                 string
}

func (a authOutcome) refuse(status int, code, why string) authOutcome {
	a.status, a.code, a.refused = status, code, why
	return a
}

// authenticate finds how the request authenticates its client, and checks it as a provider
// would: one method only (RFC 6749 2.3), the method the client is held to, the secret it was
// given, and for private_key_jwt an assertion its registered key verifies, for this endpoint,
// unexpired, short-lived and never seen before.
func (s *Server) authenticate(r *http.Request, tokenURL string) authOutcome {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	_, hasPostSecret := r.PostForm["client_secret"]
	hasAssertion := r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type")
	var a authOutcome
	n := 0
	for _, used := range []bool{hasBasic, hasPostSecret, hasAssertion} {
		if used {
			n++
		}
	}
	switch {
	case n > 1:
		a.id = r.PostForm.Get("client_id")
		if hasBasic {
			a.id, _ = url.QueryUnescape(basicID)
		}
		return a.refuse(http.StatusBadRequest, "invalid_request", "the client used more than one authentication method")
	case hasBasic:
		// RFC 6749 2.3.1: the id and secret are form-encoded before they go into the header.
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return a.refuse(http.StatusUnauthorized, "invalid_client", "the Basic credentials are not form-encoded")
		}
		a.id, a.method = id, MethodBasic
		return s.checkSecret(a, secret)
	case hasPostSecret:
		a.id, a.method = r.PostForm.Get("client_id"), MethodPost
		return s.checkSecret(a, r.PostForm.Get("client_secret"))
	case hasAssertion:
		a.method = MethodPrivateKeyJWT
		return s.checkAssertion(a, r.PostForm, tokenURL)
	}
	a.id = r.PostForm.Get("client_id")
	return a.refuse(http.StatusUnauthorized, "invalid_client", "the client did not authenticate")
}

func (s *Server) checkSecret(a authOutcome, secret string) authOutcome {
	s.mu.Lock()
	want, known := s.clients[a.id]
	required := s.methods[a.id]
	s.mu.Unlock()
	switch {
	case a.id == "":
		return a.refuse(http.StatusUnauthorized, "invalid_client", "no client_id")
	case required != "" && required != a.method:
		return a.refuse(http.StatusUnauthorized, "invalid_client", fmt.Sprintf("the client is registered for %s, not %s", required, a.method))
	case known && secret != want:
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client secret is wrong")
	}
	return a
}

func (s *Server) checkAssertion(a authOutcome, form url.Values, tokenURL string) authOutcome {
	if form.Get("client_assertion_type") != assertionType {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "client_assertion_type is not the JWT bearer type")
	}
	tok, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion is not a JWT signed RS256 or ES256")
	}
	a.kid, a.alg = tok.Headers[0].KeyID, tok.Headers[0].Algorithm
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion's claims do not parse")
	}
	a.id = unverified.Subject
	if id := form.Get("client_id"); id != "" && id != a.id {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "client_id is not the assertion's subject")
	}
	s.mu.Lock()
	key, known := s.keys[a.id]
	required := s.methods[a.id]
	s.mu.Unlock()
	switch {
	case required != "" && required != a.method:
		return a.refuse(http.StatusUnauthorized, "invalid_client", fmt.Sprintf("the client is registered for %s, not %s", required, a.method))
	case !known:
		return a // a client the endpoint was not told of is accepted, as with any secret
	}
	var claims jwt.Claims
	if err := tok.Claims(key, &claims); err != nil {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion's signature does not verify with the client's key")
	}
	now := time.Now()
	err = claims.ValidateWithLeeway(jwt.Expected{Issuer: a.id, Subject: a.id, AnyAudience: jwt.Audience{tokenURL}, Time: now}, clockLeeway)
	switch {
	case err != nil:
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion's claims are not valid here: "+err.Error())
	case claims.ID == "" || claims.IssuedAt == nil || claims.Expiry == nil:
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion lacks jti, iat or exp")
	case claims.Expiry.Time().Sub(claims.IssuedAt.Time()) > maxAssertionLife:
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion lives longer than "+maxAssertionLife.String())
	}
	s.mu.Lock()
	replayed := s.jtis[claims.ID]
	s.jtis[claims.ID] = true
	s.mu.Unlock()
	if replayed {
		return a.refuse(http.StatusUnauthorized, "invalid_client", "the client assertion's jti was used before")
	}
	return a
}
