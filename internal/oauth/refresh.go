package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// A user's delegated grant is kept alive by the refresh_token grant (RFC 6749 section 6), its
// client authenticated exactly as the client-credentials request of the same technical credential
// authenticates, and its answer held to the same rules. A provider that rotates refresh tokens
// answers a new one; the caller must keep it before it serves the access token, and never send
// the old one again.

// ErrGrantEnded is the class of a refresh the endpoint refused with invalid_grant (RFC 6749 5.2):
// the refresh token was revoked, expired or reused, and no retry will bring the grant back; the
// user must sign in again.
var ErrGrantEnded = errors.New("the grant has ended (error invalid_grant): the user must sign in again")

// Refreshed is what a refresh handed out: a new access token and the refresh token to use next
// time, which is the one sent when the endpoint did not rotate it.
type Refreshed struct {
	Token
	RefreshToken string
	// Rotated is true when the endpoint answered a new refresh token.
	Rotated bool
}

// Refresh asks the token endpoint of c for a new access token by the refresh_token grant, the
// client authenticated by c's auth_method. c's scopes and audience are not sent: a refresh keeps
// the grant's own scope. An invalid_grant answer is ErrGrantEnded (wrapped in a message naming the
// status); every other error is worded as Fetch's are, never quoting the endpoint.
func Refresh(ctx context.Context, client *http.Client, describe DescribeHTTP, c Config, refreshToken string, now func() time.Time) (Refreshed, error) {
	if refreshToken == "" {
		return Refreshed{}, errors.New("the grant has no refresh token")
	}
	issued := now()
	c.Scopes, c.Audience = nil, ""
	conf, err := clientConfig(c, issued)
	if err != nil {
		return Refreshed{}, err
	}
	// clientcredentials lets grant_type be overridden, and sends the client's authentication,
	// private_key_jwt's assertion included, as it does for its own grant.
	conf.EndpointParams.Set("grant_type", "refresh_token")
	conf.EndpointParams.Set("refresh_token", refreshToken)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)

	tok, err := conf.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return Refreshed{}, ErrGrantEnded
		}
		return Refreshed{}, describeTokenError(err, describe)
	}
	out, err := checkToken(tok, issued)
	if err != nil {
		return Refreshed{}, err
	}
	// x/oauth2 answers the refresh token it sent when the endpoint gave none.
	next := tok.RefreshToken
	if len(next) > MaxTokenBytes || !accessTokenRule.MatchString(next) {
		return Refreshed{}, fmt.Errorf("the token endpoint answered a refresh_token that is not 1 to %d printable ASCII characters", MaxTokenBytes)
	}
	return Refreshed{Token: out, RefreshToken: next, Rotated: next != refreshToken}, nil
}
