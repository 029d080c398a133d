package hydra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Token is a token endpoint's successful answer (RFC 6749 5.1).
type Token struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	// Expiry is when the access token expires, from expires_in and the time of the answer.
	Expiry time.Time `json:"-"`
}

// Error is an OAuth2 error answer (RFC 6749 5.2) with its HTTP status: invalid_grant (400) for a
// refresh token that is revoked, reused or unknown, invalid_client (401) for client
// authentication that failed.
type Error struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	Hint        string `json:"error_hint"` // Hydra's own: what to change
	Body        string `json:"-"`          // the whole answer, for tests that it never reaches a message
}

func (e *Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// ErrorCode is the OAuth2 error code in err ("invalid_grant"), or "" if err is not one.
func ErrorCode(err error) string {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// Exchange trades an authorization code for tokens at the token endpoint, c authenticating by
// c.AuthMethod.
func (s *Server) Exchange(ctx context.Context, c Client, code string) (Token, error) {
	return s.token(ctx, c, url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {c.RedirectURI},
	})
}

// Refresh uses a refresh token (RFC 6749 6). Hydra answers a new refresh token each time
// (rotation); the one used stops working, but for the grace period.
func (s *Server) Refresh(ctx context.Context, c Client, refreshToken string) (Token, error) {
	return s.token(ctx, c, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
	})
}

// Revoke revokes a refresh token at /oauth2/revoke (RFC 7009); Hydra also revokes the access
// tokens issued with it.
func (s *Server) Revoke(ctx context.Context, c Client, refreshToken string) error {
	resp, err := s.clientPost(ctx, c, "/oauth2/revoke", url.Values{
		"token":           {refreshToken},
		"token_type_hint": {"refresh_token"},
	})
	if err != nil {
		return fmt.Errorf("revoking: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return oauthError(resp)
	}
	return nil
}

// Introspection is what Hydra's admin introspection endpoint (RFC 7662) says of a token.
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub"`
	ClientID  string `json:"client_id"`
	TokenUse  string `json:"token_use"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Introspect asks Hydra's admin API about a token: whether it is active, whose, and until when.
func (s *Server) Introspect(ctx context.Context, token string) (Introspection, error) {
	var in Introspection
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.AdminURL+"/admin/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return in, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return in, fmt.Errorf("introspecting: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return in, oauthError(resp)
	}
	return in, json.NewDecoder(resp.Body).Decode(&in)
}

func (s *Server) token(ctx context.Context, c Client, form url.Values) (Token, error) {
	resp, err := s.clientPost(ctx, c, "/oauth2/token", form)
	if err != nil {
		return Token{}, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Token{}, oauthError(resp)
	}
	var tok Token
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return Token{}, fmt.Errorf("decoding the token answer: %w", err)
	}
	tok.Expiry = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return tok, nil
}

// clientPost sends form to a public endpoint, c authenticating by c.AuthMethod.
func (s *Server) clientPost(ctx context.Context, c Client, path string, form url.Values) (*http.Response, error) {
	switch c.AuthMethod {
	case AuthBasic:
	case AuthPost:
		form.Set("client_id", c.ID)
		form.Set("client_secret", c.Secret)
	default:
		return nil, fmt.Errorf("unknown client authentication method %q", c.AuthMethod)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.PublicURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod == AuthBasic {
		// RFC 6749 2.3.1: id and secret are form-encoded before they go into the header.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return s.http.Do(req)
}

func oauthError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode, Body: string(body)}
	if err := json.Unmarshal(body, e); err != nil || e.Code == "" {
		e.Code, e.Description = "", strings.TrimSpace(string(body))
	}
	return e
}
