// Package hydra runs a real Ory Hydra (v2.3.0, built by scripts/hydra.sh) on loopback for the
// integration tests: an in-memory SQLite store, short access tokens, refresh-token rotation with
// a grace period the test chooses, OAuth2 clients made through the admin API, and the
// authorization-code flow performed headlessly by a small login-and-consent app.
//
// It lives under tests/internal so that only the integration tests can import it: the compiler
// keeps it out of the plugin binary and out of the unit tests, which never start a server.
package hydra

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/child"
)

// Options say how to run Hydra. Bin and LogPath are required.
type Options struct {
	Bin     string // the hydra binary (scripts/hydra.sh prints its path)
	LogPath string // Hydra's own output goes here
	// AccessTokenTTL is the lifetime of access tokens; default 10s.
	AccessTokenTTL time.Duration
	// RotationGracePeriod is how long a refresh token that was used once may be used again
	// (Hydra's oauth2.grant.refresh_token.rotation_grace_period); 0, Hydra's default, makes every
	// second use a reuse that revokes the whole grant. Hydra caps it at 5 minutes.
	RotationGracePeriod time.Duration
	// StartTimeout bounds the wait for Hydra's health endpoints; default 30s.
	StartTimeout time.Duration
}

// maxGracePeriod is Hydra's own cap (driver/config RefreshTokenRotationGracePeriod): a longer
// value is silently cut, so it is refused here instead.
const maxGracePeriod = 5 * time.Minute

// Server is a running Hydra with its login-and-consent app.
type Server struct {
	PublicURL string // the issuer: /oauth2/auth, /oauth2/token, /oauth2/revoke
	AdminURL  string // clients, login and consent requests, introspection
	app       *httptest.Server
	proc      *child.Proc
	http      *http.Client
}

// Start runs Hydra on two free loopback ports and answers once both its public and admin
// health endpoints say ready. A port taken between choosing it and Hydra binding it (other
// suites share the machine) is retried on new ports.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Bin == "" || o.LogPath == "" {
		return nil, errors.New("hydra: Options.Bin and Options.LogPath are required")
	}
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = 10 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.RotationGracePeriod < 0 || o.RotationGracePeriod > maxGracePeriod {
		return nil, fmt.Errorf("hydra: RotationGracePeriod %s is outside 0 to %s", o.RotationGracePeriod, maxGracePeriod)
	}
	return child.RetryOnPortTaken(func() (*Server, error) { return start(ctx, o) })
}

func start(ctx context.Context, o Options) (*Server, error) {
	publicPort, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		PublicURL: fmt.Sprintf("http://127.0.0.1:%d", publicPort),
		AdminURL:  fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		http:      &http.Client{Timeout: 10 * time.Second},
	}
	s.app = httptest.NewServer(s.loginAndConsent())

	// Hydra reads its configuration from the environment (each key upper-cased, dots as
	// underscores). The environment is built from nothing, so no variable of the caller's
	// (DSN, LOG_LEVEL, SERVE_...) can change the server the tests get.
	cfg := map[string]string{
		"DSN":                           "memory", // SQLite in memory, migrated at every start
		"SERVE_PUBLIC_HOST":             "127.0.0.1",
		"SERVE_PUBLIC_PORT":             strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST":              "127.0.0.1",
		"SERVE_ADMIN_PORT":              strconv.Itoa(adminPort),
		"URLS_SELF_ISSUER":              s.PublicURL,
		"URLS_LOGIN":                    s.app.URL + "/login",
		"URLS_CONSENT":                  s.app.URL + "/consent",
		"SECRETS_SYSTEM":                randomHex(32),
		"TTL_ACCESS_TOKEN":              o.AccessTokenTTL.String(),
		"LOG_LEVEL":                     "info",
		"LOG_LEAK_SENSITIVE_VALUES":     "false",
		"SQA_OPT_OUT":                   "true", // no telemetry: the network is closed anyway
		"OAUTH2_EXPOSE_INTERNAL_ERRORS": "true", // error answers say why, for a failing test to show
		// Rotation itself is always on in Hydra v2.3.0; only its grace period is a setting.
		"OAUTH2_GRANT_REFRESH_TOKEN_ROTATION_GRACE_PERIOD": o.RotationGracePeriod.String(),
	}
	environ := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range cfg {
		environ = append(environ, k+"="+v)
	}

	// --dev: plain HTTP on loopback (no TLS, non-secure cookies).
	if s.proc, err = child.Start(o.Bin, []string{"serve", "all", "--dev", "--sqa-opt-out"}, environ, o.LogPath); err != nil {
		s.app.Close()
		return nil, err
	}
	if err := s.waitReady(ctx, o.StartTimeout); err != nil {
		s.Close()
		return nil, s.proc.StartFailed("Hydra", err)
	}
	return s, nil
}

// waitReady polls both health endpoints until they answer 200, Hydra exits, or within passes.
func (s *Server) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.healthy(ctx, s.AdminURL) && s.healthy(ctx, s.PublicURL) {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("hydra exited at start")
		case <-ctx.Done():
			return fmt.Errorf("hydra was not ready within %s", within)
		case <-tick.C:
		}
	}
}

func (s *Server) healthy(ctx context.Context, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// Close stops Hydra (SIGTERM, then SIGKILL after 10s) and the login-and-consent app.
func (s *Server) Close() {
	s.proc.Stop()
	s.app.Close()
}

// Log is Hydra's output so far, for a failing test to show.
func (s *Server) Log() string { return s.proc.Log() }

// TokenURL is Hydra's token endpoint.
func (s *Server) TokenURL() string { return s.PublicURL + "/oauth2/token" }

// adminJSON calls the admin API with a JSON body (if any) and decodes its JSON answer, which
// must have status wantStatus, into out.
func (s *Server) adminJSON(ctx context.Context, method, path string, q url.Values, body any, wantStatus int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := s.AdminURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		return oauthError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
