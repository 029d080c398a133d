package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// This file fetches OAuth2 tokens by the client-credentials grant. It has no storage access.

// tokenRequestTimeout bounds one request to a token endpoint.
const tokenRequestTimeout = 30 * time.Second

// issuedToken is what a token endpoint handed out.
type issuedToken struct {
	AccessToken string
	TokenType   string
	IssuedAt    time.Time
	ExpiresAt   time.Time // zero when the endpoint gave no lifetime
}

// fetchToken asks the credential's token endpoint for a new token. Its error never carries the
// client secret or a token: it says what the endpoint answered (status, RFC 6749 error code).
func fetchToken(ctx context.Context, client *http.Client, c Credential) (issuedToken, error) {
	conf := clientcredentials.Config{
		ClientID:     c.Fields["client_id"],
		ClientSecret: c.Fields["client_secret"],
		TokenURL:     c.Fields["token_url"],
		Scopes:       c.Lists["scopes"],
		// HTTP Basic, the method RFC 6749 requires endpoints to support: one request a token,
		// where auto-detection would send a second after every 401.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	if aud := c.Fields["audience"]; aud != "" {
		conf.EndpointParams = url.Values{"audience": {aud}}
	}
	ctx, cancel := context.WithTimeout(ctx, tokenRequestTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)

	issued := time.Now()
	tok, err := conf.Token(ctx)
	if err != nil {
		return issuedToken{}, describeTokenError(err)
	}
	typ := tok.Type()
	return issuedToken{AccessToken: tok.AccessToken, TokenType: typ, IssuedAt: issued, ExpiresAt: tok.Expiry}, nil
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
func describeTokenError(err error) error {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil:
		msg := "the token endpoint answered " + describeStatus(re.Response.StatusCode)
		if rfc6749ErrorCodes[re.ErrorCode] {
			msg += fmt.Sprintf(" (error %s)", re.ErrorCode)
		}
		return errors.New(msg)
	case errors.As(err, &re):
		return errors.New("the token endpoint's answer was not a token")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the token endpoint did not answer within %s", tokenRequestTimeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("the token endpoint could not be reached: " + describeTransportError(ue.Err))
	}
	// x/oauth2's own errors (an answer without access_token, a body that is not JSON) may quote
	// the answer: say only that it was not a token.
	return errors.New("the token endpoint's answer was not a usable token response")
}
