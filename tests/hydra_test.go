package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/hydra"
)

// findHydra asks scripts/hydra.sh, which honours $HYDRA_BIN and builds bin/hydra if needed.
func findHydra() (string, error) {
	cmd := exec.Command("../scripts/hydra.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/hydra.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// startHydra runs a real Ory Hydra for the test, with 10-second access tokens and the given
// refresh-token rotation grace period, stopped when the test ends; its log is shown if the test
// fails. Only the tests that need an identity provider start one.
func startHydra(t *testing.T, name string, grace time.Duration) *hydra.Server {
	t.Helper()
	bin, err := findHydra()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if d := os.Getenv("PECREDS_TEST_LOG_DIR"); d != "" {
		dir = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := hydra.Start(ctx, hydra.Options{
		Bin:                 bin,
		LogPath:             filepath.Join(dir, name+".log"),
		AccessTokenTTL:      10 * time.Second,
		RotationGracePeriod: grace,
	})
	if err != nil {
		t.Fatalf("starting Hydra: %v", err)
	}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			t.Logf("Hydra's log (%s):\n%s", name, tail(h.Log(), 8000))
		}
	})
	return h
}

// TestHydraGrantRules pins down what the delegated-grant work relies on, against a real Ory
// Hydra: the authorization-code flow gives a refresh token, every refresh rotates it, a second
// use of a spent refresh token outside the grace period is refused with invalid_grant and
// revokes the whole grant (reuse detection), a client registered for client_secret_post is
// refused with 401 invalid_client when it authenticates by basic, and /oauth2/revoke ends a grant.
func TestHydraGrantRules(t *testing.T) {
	ctx := context.Background()
	h := startHydra(t, "hydra-strict", 0)
	basic, err := h.CreateClient(ctx, hydra.AuthBasic)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("authorization code gives a refresh token and a 10-second access token", func(t *testing.T) {
		tok := mustAuthorize(t, h, basic, "alice")
		if !strings.EqualFold(tok.TokenType, "bearer") || tok.ExpiresIn < 1 || tok.ExpiresIn > 10 {
			t.Fatalf("token_type %q, expires_in %d: want a bearer token living at most 10s", tok.TokenType, tok.ExpiresIn)
		}
		in := mustIntrospect(t, h, tok.AccessToken)
		// iat and exp are whole seconds taken apart, so their difference is 10 or 11.
		if life := in.ExpiresAt - in.IssuedAt; !in.Active || in.Subject != "alice" || in.ClientID != basic.ID || life < 10 || life > 11 {
			t.Fatalf("introspection %+v: want an active token of alice's for %s, exp - iat = 10s", in, basic.ID)
		}
	})

	t.Run("refreshing rotates the refresh token; reusing the spent one revokes the grant", func(t *testing.T) {
		first := mustAuthorize(t, h, basic, "bob")
		second, err := h.Refresh(ctx, basic, first.RefreshToken)
		if err != nil {
			t.Fatalf("refreshing: %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
			t.Fatal("a refresh answered no new refresh token or the same access token: rotation is off")
		}
		if mustIntrospect(t, h, first.AccessToken).Active {
			t.Fatal("the access token of the spent refresh token is still active")
		}

		// The grace period is 0: a second use is a reuse, and Hydra revokes the whole grant.
		_, err = h.Refresh(ctx, basic, first.RefreshToken)
		wantOAuthError(t, err, 400, "invalid_grant")
		_, err = h.Refresh(ctx, basic, second.RefreshToken)
		wantOAuthError(t, err, 400, "invalid_grant")
		if mustIntrospect(t, h, second.AccessToken).Active {
			t.Fatal("after a reuse, the grant's current access token is still active")
		}
	})

	t.Run("a client_secret_post client that authenticates by basic gets 401 invalid_client", func(t *testing.T) {
		post, err := h.CreateClient(ctx, hydra.AuthPost)
		if err != nil {
			t.Fatal(err)
		}
		code, err := h.Authorize(ctx, post, "carol", "openid", "offline_access")
		if err != nil {
			t.Fatalf("authorizing: %v", err)
		}
		_, err = h.Exchange(ctx, post.As(hydra.AuthBasic), code)
		wantOAuthError(t, err, 401, "invalid_client")
		// The same code and secret by the registered method work: the method was the fault.
		tok, err := h.Exchange(ctx, post, code)
		if err != nil {
			t.Fatalf("exchanging by client_secret_post: %v", err)
		}
		_, err = h.Refresh(ctx, post.As(hydra.AuthBasic), tok.RefreshToken)
		wantOAuthError(t, err, 401, "invalid_client")
		if _, err := h.Refresh(ctx, post, tok.RefreshToken); err != nil {
			t.Fatalf("refreshing by client_secret_post after a refused basic attempt: %v", err)
		}
		// And a basic client is refused when it posts its secret in the body.
		tok = mustAuthorize(t, h, basic, "carol")
		_, err = h.Refresh(ctx, basic.As(hydra.AuthPost), tok.RefreshToken)
		wantOAuthError(t, err, 401, "invalid_client")
	})

	t.Run("revoke ends the grant", func(t *testing.T) {
		tok := mustAuthorize(t, h, basic, "dave")
		if err := h.Revoke(ctx, basic, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := h.Refresh(ctx, basic, tok.RefreshToken)
		wantOAuthError(t, err, 400, "invalid_grant")
		if mustIntrospect(t, h, tok.AccessToken).Active {
			t.Fatal("the access token of a revoked refresh token is still active")
		}
	})
}

// TestHydraRotationGracePeriod: with a grace period, a spent refresh token works again while it
// lasts (the retry of a refresh whose answer was lost), and is refused with invalid_grant after
// it, which revokes the whole grant as any reuse does.
func TestHydraRotationGracePeriod(t *testing.T) {
	const grace = 2 * time.Second
	ctx := context.Background()
	h := startHydra(t, "hydra-grace", grace)
	c, err := h.CreateClient(ctx, hydra.AuthBasic)
	if err != nil {
		t.Fatal(err)
	}
	first := mustAuthorize(t, h, c, "erin")

	beforeUse := time.Now()
	second, err := h.Refresh(ctx, c, first.RefreshToken)
	if err != nil {
		t.Fatalf("refreshing: %v", err)
	}
	afterUse := time.Now()
	retried, err := h.Refresh(ctx, c, first.RefreshToken)
	if time.Since(beforeUse) >= grace {
		t.Fatalf("the retry came %s after the first use, past the %s grace period: the machine is too slow for this test", time.Since(beforeUse), grace)
	}
	if err != nil {
		t.Fatalf("reusing the spent refresh token within the grace period: %v", err)
	}
	if retried.RefreshToken == second.RefreshToken || retried.RefreshToken == first.RefreshToken {
		t.Fatal("a refresh within the grace period answered no new refresh token")
	}

	// Poll the reuse until Hydra refuses it: each answer before then must fall within the grace
	// period, the refusal after it.
	var refusedAt time.Time
	waitFor(t, grace+10*time.Second, func() bool {
		_, err := h.Refresh(ctx, c, first.RefreshToken)
		now := time.Now()
		switch {
		case err == nil:
			if now.Sub(afterUse) > grace+time.Second {
				t.Fatalf("a spent refresh token still worked %s after its first use (grace %s)", now.Sub(afterUse), grace)
			}
			return false
		case hydra.ErrorCode(err) == "invalid_grant":
			refusedAt = now
			return true
		default:
			t.Fatalf("reusing the spent refresh token: %v", err)
			return false
		}
	})
	if refusedAt.Sub(beforeUse) < grace {
		t.Fatalf("the reuse was refused %s after the first use, within the %s grace period", refusedAt.Sub(beforeUse), grace)
	}
	for _, tok := range []hydra.Token{second, retried} {
		_, err := h.Refresh(ctx, c, tok.RefreshToken)
		wantOAuthError(t, err, 400, "invalid_grant")
	}
}

func mustAuthorize(t *testing.T, h *hydra.Server, c hydra.Client, subject string) hydra.Token {
	t.Helper()
	tok, err := h.AuthorizationCode(context.Background(), c, subject)
	if err != nil {
		t.Fatalf("authorization-code flow for %s: %v", subject, err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("authorization-code flow for %s: no access or no refresh token (scope %q)", subject, tok.Scope)
	}
	return tok
}

func mustIntrospect(t *testing.T, h *hydra.Server, token string) hydra.Introspection {
	t.Helper()
	in, err := introspectSettled(h, token)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// introspectSettled is what Hydra says of token. An inactive answer is asked again for a second:
// Hydra's in-memory store, busy with a write, answers an introspection it could not read
// "inactive" (its log says access denied, "Unable to serialize access"), while an active answer is
// never wrong.
func introspectSettled(h *hydra.Server, token string) (hydra.Introspection, error) {
	var (
		in  hydra.Introspection
		err error
	)
	poll(time.Second, 20*time.Millisecond, func() bool {
		in, err = h.Introspect(context.Background(), token)
		return err != nil || in.Active
	})
	return in, err
}

// wantOAuthError fails the test unless err is the OAuth2 error code with HTTP status.
func wantOAuthError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var oe *hydra.Error
	if !errors.As(err, &oe) || oe.Status != status || oe.Code != code {
		t.Fatalf("got %v, want HTTP %d %s", err, status, code)
	}
}
