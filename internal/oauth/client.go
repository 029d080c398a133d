package oauth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// RequestTimeout bounds one request to a token endpoint.
const RequestTimeout = 30 * time.Second

// How the client authenticates at the token endpoint: the values of an oauth2 credential's
// auth_method (OpenID Connect's token_endpoint_auth_method names).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Config is what a token request needs of an oauth2 technical credential.
type Config struct {
	TokenURL, ClientID, ClientSecret, Audience string
	Scopes                                     []string
	// AuthMethod is how the client authenticates; empty means AuthClientSecretBasic.
	AuthMethod string
	// SigningKey (RSA or EC P-256) and KeyID sign the client assertion of AuthPrivateKeyJWT.
	SigningKey crypto.Signer
	KeyID      string
}

// Token is what a token endpoint handed out.
type Token struct {
	AccessToken string
	TokenType   string
	IssuedAt    time.Time
	ExpiresAt   time.Time // zero when the endpoint gave no lifetime
}

// DescribeHTTP words an HTTP call's failure without the peer's text: the caller's outbound
// boundary supplies it (status in words of our own, transport errors classified).
type DescribeHTTP struct {
	Status    func(code int) string
	Transport func(err error) string
}

// Fetch asks the token endpoint for a new token by the client-credentials grant, through client.
// Its error never carries the client secret, a token, or anything the endpoint said but its
// status and a standard error code.
func Fetch(ctx context.Context, client *http.Client, describe DescribeHTTP, c Config, now func() time.Time) (Token, error) {
	issued := now()
	conf, err := clientConfig(c, issued)
	if err != nil {
		return Token{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)

	tok, err := conf.Token(ctx)
	if err != nil {
		return Token{}, describeTokenError(err, describe)
	}
	return checkToken(tok, issued)
}

// clientConfig is the client-credentials request of c, its client authenticated as c says: one
// style, never auto-detection, which would send a second request (and the secret a second way)
// after every 401.
func clientConfig(c Config, now time.Time) (clientcredentials.Config, error) {
	conf := clientcredentials.Config{
		ClientID:       c.ClientID,
		ClientSecret:   c.ClientSecret,
		TokenURL:       c.TokenURL,
		Scopes:         c.Scopes,
		EndpointParams: url.Values{},
	}
	switch c.AuthMethod {
	case AuthClientSecretBasic, "":
		conf.AuthStyle = oauth2.AuthStyleInHeader // the method RFC 6749 requires endpoints to support
	case AuthClientSecretPost:
		conf.AuthStyle = oauth2.AuthStyleInParams
	case AuthPrivateKeyJWT:
		// client_id in the body (RFC 7521 4.2 allows it; some providers want it), no secret
		// anywhere: x/oauth2 sends client_secret only when it is not empty.
		assertion, err := clientAssertion(c, now)
		if err != nil {
			return conf, err
		}
		conf.ClientSecret = ""
		conf.AuthStyle = oauth2.AuthStyleInParams
		conf.EndpointParams.Set("client_assertion_type", ClientAssertionType)
		conf.EndpointParams.Set("client_assertion", assertion)
	default:
		return conf, fmt.Errorf("unknown client authentication method %q", c.AuthMethod)
	}
	if c.Audience != "" {
		conf.EndpointParams.Set("audience", c.Audience)
	}
	return conf, nil
}

// MaxTokenBytes bounds an access token as any secret is bounded (64 KiB a credential).
const MaxTokenBytes = 64 << 10

// MinLifetime: a token that lives this long or less could not be served (MinValidity) and would
// only be asked for again and again; it counts as a failed request, and backs off.
const MinLifetime = 2 * MinValidity

// accessTokenRule: RFC 6749's access token characters (VSCHAR, printable ASCII), so that a token
// written into a header can carry no line break.
var accessTokenRule = regexp.MustCompile(`^[\x20-\x7e]+$`)

// tokenTypeRule is what a token_type may hold (RFC 6750's b64token alphabet, without "="): it is
// written into Authorization headers as it is.
var tokenTypeRule = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]{1,64}$`)

// checkToken refuses an answer that parsed but cannot be served: a token_type that is not one
// word of the allowed characters, or an expires_in that is not a positive number of seconds (an
// absent expires_in is a token without a stated lifetime). The lifetime counts from issued, the
// injected clock's time of the request. Its error never quotes the answer.
func checkToken(tok *oauth2.Token, issued time.Time) (Token, error) {
	if !tokenTypeRule.MatchString(tok.Type()) {
		return Token{}, errors.New("the token endpoint answered a token_type that is not letters, digits and -._~+/")
	}
	if len(tok.AccessToken) > MaxTokenBytes || !accessTokenRule.MatchString(tok.AccessToken) {
		return Token{}, fmt.Errorf("the token endpoint answered an access_token that is not 1 to %d printable ASCII characters", MaxTokenBytes)
	}
	out := Token{AccessToken: tok.AccessToken, TokenType: tok.Type(), IssuedAt: issued}
	secs, stated := expiresIn(tok.Extra("expires_in"))
	switch {
	case !stated:
	case secs <= 0 || math.IsNaN(secs):
		return Token{}, errors.New("the token endpoint answered an expires_in that is not a positive number of seconds")
	case secs <= MinLifetime.Seconds():
		return Token{}, fmt.Errorf("the token endpoint answered an expires_in of %d seconds or less: too short to serve", int(MinLifetime.Seconds()))
	default:
		out.ExpiresAt = issued.Add(time.Duration(min(secs, maxLifetime.Seconds()) * float64(time.Second)))
	}
	return out, nil
}

// maxLifetime caps a stated lifetime, so that arithmetic on it never overflows.
const maxLifetime = 10 * 365 * 24 * time.Hour

// expiresIn reads expires_in as the answer gave it (a JSON number or string, or a form value);
// stated is false when the answer gave none. A value that is not a number reads as NaN.
func expiresIn(raw any) (secs float64, stated bool) {
	switch v := raw.(type) {
	case nil:
		return 0, false
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case string:
		if v == "" {
			return 0, false
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return math.NaN(), true
		}
		return f, true
	}
	return math.NaN(), true
}

// rfc6749ErrorCodes are the error codes RFC 6749 defines (sections 4.1.2.1 and 5.2): the only
// text of a token endpoint's answer that reaches a message.
var rfc6749ErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "access_denied": true,
	"unsupported_response_type": true, "server_error": true, "temporarily_unavailable": true,
}

// describeTokenError turns a token request failure into a message fit for reads, errors, logs and
// events: the HTTP status and a standard error code, never the endpoint's body, description,
// reason phrase or headers (an endpoint may reflect the Authorization header in any of them).
func describeTokenError(err error, describe DescribeHTTP) error {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil:
		msg := "the token endpoint answered " + describe.Status(re.Response.StatusCode)
		if rfc6749ErrorCodes[re.ErrorCode] {
			msg += fmt.Sprintf(" (error %s)", re.ErrorCode)
		}
		return errors.New(msg)
	case errors.As(err, &re):
		return errors.New("the token endpoint's answer was not a token")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the token endpoint did not answer within %s", RequestTimeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("the token endpoint could not be reached: " + describe.Transport(ue.Err))
	}
	// x/oauth2's own errors (an answer without access_token, a body that is not JSON) may quote
	// the answer: say only that it was not a token.
	return errors.New("the token endpoint's answer was not a usable token response")
}
