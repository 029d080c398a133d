package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
		return issuedToken{}, describeTokenError(err, c)
	}
	typ := tok.Type()
	return issuedToken{AccessToken: tok.AccessToken, TokenType: typ, IssuedAt: issued, ExpiresAt: tok.Expiry}, nil
}

// describeTokenError turns a token request failure into a message fit for reads, errors and logs.
func describeTokenError(err error, c Credential) error {
	var re *oauth2.RetrieveError
	var msg string
	switch {
	case errors.As(err, &re):
		msg = "the token endpoint answered"
		if re.Response != nil {
			msg += " " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg += fmt.Sprintf(" (error %q)", re.ErrorCode)
		}
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("the token endpoint did not answer within %s", tokenRequestTimeout)
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = "the token endpoint could not be reached: " + ue.Err.Error()
		} else {
			msg = "the token request failed: " + err.Error()
		}
	}
	// Belt and braces: whatever the endpoint echoed, the secret never leaves this function.
	if s := c.Fields["client_secret"]; s != "" {
		msg = strings.ReplaceAll(msg, s, "<redacted>")
	}
	return errors.New(msg)
}
