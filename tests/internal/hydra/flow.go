package hydra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Client authentication methods at the token endpoint (RFC 6749 2.3.1; OIDC Core 9).
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
)

// Client is an OAuth2 client registered in Hydra.
type Client struct {
	ID          string
	Secret      string
	AuthMethod  string // how it authenticates at the token endpoint: AuthBasic, AuthPost or AuthPrivateKeyJWT
	RedirectURI string
}

// As answers the same client authenticating by another method (to test that Hydra refuses it).
func (c Client) As(method string) Client {
	c.AuthMethod = method
	return c
}

// CreateClient registers a confidential client for the authorization-code and refresh-token
// grants, allowed the scopes openid and offline_access, that must authenticate by authMethod.
// Hydra chooses its id and secret.
func (s *Server) CreateClient(ctx context.Context, authMethod string) (Client, error) {
	redirect := s.app.URL + "/callback"
	body := map[string]any{
		"client_name":                "pecreds-tests",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      "openid offline_access",
		"redirect_uris":              []string{redirect},
		"token_endpoint_auth_method": authMethod,
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := s.adminJSON(ctx, http.MethodPost, "/admin/clients", nil, body, http.StatusCreated, &created); err != nil {
		return Client{}, fmt.Errorf("creating a %s client: %w", authMethod, err)
	}
	if created.ClientID == "" || created.ClientSecret == "" {
		return Client{}, errors.New("creating a client: Hydra answered no client_id or client_secret")
	}
	return Client{ID: created.ClientID, Secret: created.ClientSecret, AuthMethod: authMethod, RedirectURI: redirect}, nil
}

// AuthorizationCode runs the whole authorization-code flow for subject (Authorize, then
// Exchange) and answers the tokens: with the scope offline_access, a refresh token among them.
//
// Hydra's in-memory SQLite refuses a flow that meets another session's write ("Unable to
// serialize access due to a concurrent update"), as when a grant is refreshed meanwhile: the
// flow is run again from the start (a new code), up to three times.
func (s *Server) AuthorizationCode(ctx context.Context, c Client, subject string) (Token, error) {
	var (
		tok Token
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		var code string
		if code, err = s.Authorize(ctx, c, subject, "openid", "offline_access"); err == nil {
			if tok, err = s.Exchange(ctx, c, code); err == nil {
				return tok, nil
			}
		}
		if !strings.Contains(err.Error(), "concurrent update") {
			break
		}
	}
	return Token{}, err
}

// Authorize performs the browser's part of the authorization-code flow headlessly: it asks
// /oauth2/auth, follows Hydra's redirects through the login-and-consent app (which accepts
// subject's login and grants every requested scope through the admin API) with a cookie jar,
// and answers the code Hydra sends to the client's redirect URI.
func (s *Server) Authorize(ctx context.Context, c Client, subject string, scopes ...string) (string, error) {
	state := randomHex(16)
	q := url.Values{
		"client_id":     {c.ID},
		"response_type": {"code"},
		"scope":         {strings.Join(scopes, " ")},
		"redirect_uri":  {c.RedirectURI},
		"state":         {state},
		"login_hint":    {subject}, // the app logs in whoever the request names
	}
	authURL := s.PublicURL + "/oauth2/auth?" + q.Encode()

	jar, err := cookiejar.New(nil) // a browser of its own: no session shared between flows
	if err != nil {
		return "", err
	}
	browser := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), c.RedirectURI) {
				return http.ErrUseLastResponse // the code is in this redirect's Location
			}
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", fmt.Errorf("authorization request: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), c.RedirectURI) {
		return "", fmt.Errorf("authorization flow stopped at %s with HTTP %d, not at the redirect URI: %s",
			resp.Request.URL.Path, resp.StatusCode, bytes.TrimSpace(body))
	}
	back := loc.Query()
	if e := back.Get("error"); e != "" {
		return "", &Error{Status: resp.StatusCode, Code: e, Description: back.Get("error_description")}
	}
	if back.Get("state") != state {
		return "", errors.New("authorization flow: the redirect's state is not the one sent")
	}
	if back.Get("code") == "" {
		return "", errors.New("authorization flow: the redirect carries no code")
	}
	return back.Get("code"), nil
}

// loginAndConsent is the app Hydra sends the browser to: it accepts every login (as the
// subject named by the authorization request's login_hint) and every consent (granting what was
// asked) through the admin API, and redirects the browser back to Hydra. /callback stands for
// the client's redirect URI.
func (s *Server) loginAndConsent() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.URL.Query().Get("login_challenge")
		q := url.Values{"login_challenge": {challenge}}
		var login struct {
			RequestURL string `json:"request_url"`
		}
		if err := s.adminJSON(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/login", q, nil, http.StatusOK, &login); err != nil {
			http.Error(w, "reading the login request: "+err.Error(), http.StatusBadGateway)
			return
		}
		subject := "test-user"
		if u, err := url.Parse(login.RequestURL); err == nil && u.Query().Get("login_hint") != "" {
			subject = u.Query().Get("login_hint")
		}
		s.accept(w, r, "/admin/oauth2/auth/requests/login/accept", q, map[string]any{"subject": subject})
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		q := url.Values{"consent_challenge": {r.URL.Query().Get("consent_challenge")}}
		var consent struct {
			RequestedScope    []string `json:"requested_scope"`
			RequestedAudience []string `json:"requested_access_token_audience"`
		}
		if err := s.adminJSON(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent", q, nil, http.StatusOK, &consent); err != nil {
			http.Error(w, "reading the consent request: "+err.Error(), http.StatusBadGateway)
			return
		}
		s.accept(w, r, "/admin/oauth2/auth/requests/consent/accept", q, map[string]any{
			"grant_scope":                 consent.RequestedScope,
			"grant_access_token_audience": consent.RequestedAudience,
		})
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "authorized\n")
	})
	return mux
}

// accept PUTs an acceptance to the admin API and redirects the browser where Hydra says.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, path string, q url.Values, body any) {
	var answer struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := s.adminJSON(r.Context(), http.MethodPut, path, q, body, http.StatusOK, &answer); err != nil {
		http.Error(w, "accepting: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, answer.RedirectTo, http.StatusFound)
}
