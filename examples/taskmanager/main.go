// Command taskmanager is the Task Manager a pecreds user runs: a small web service where the owner
// of a broken process completes their credential-update task in a browser.
//
// A user signs in with their own Vault credentials (userpass). The service keeps the Vault token
// it gets on the server, in a session whose cookie holds only a random id (HttpOnly,
// SameSite=Strict); the token never reaches the browser nor a URL. The task page lists the user's
// own open tasks (task/mine, with the user's token) in plain words and completes one with new
// credentials (a password, a token, or a new OAuth2 grant) through task/:id/complete, as the user:
// pecreds itself refuses anyone but the task's owner, so the service needs no power of its own.
//
// It also receives pecreds's webhooks (config notify_url = <url>/hooks/pecreds), verified with the
// Standard Webhooks reference library and the signing secret (config notify_secret), and shows
// each user what pecreds told about their processes.
//
// Cross-origin form posts are refused (http.CrossOriginProtection), pages come from html/template
// (escaped), no secret a user types is ever rendered back or logged, and every input is bounded
// in bytes. Plain HTTP is for loopback: elsewhere serve it with -tls-cert and -tls-key, or behind a
// TLS proxy with -secure-cookie.
//
// PECREDS_TASKMANAGER=1 scripts/dev.sh starts it and prints its URL; by hand:
//
//	go run ./examples/taskmanager -vault http://127.0.0.1:8200 -webhook-secret-file bin/dev/notify-secret
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

type config struct {
	listen, vaultAddr, mount, userpass, secretFile string
	tlsCert, tlsKey                                string
	secureCookie                                   bool
	sessionTTL                                     time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8300", "the address to serve on (port 0: any free port)")
	flag.StringVar(&cfg.vaultAddr, "vault", os.Getenv("VAULT_ADDR"), "Vault's address (default $VAULT_ADDR)")
	flag.StringVar(&cfg.mount, "mount", "pecreds", "the pecreds mount")
	flag.StringVar(&cfg.userpass, "userpass", "auth/userpass", "the userpass mount users sign in with")
	flag.StringVar(&cfg.secretFile, "webhook-secret-file", "", "a file holding the webhook signing secret (whsec_...), config notify_secret; empty: webhooks are refused")
	flag.DurationVar(&cfg.sessionTTL, "session-ttl", time.Hour, "how long a sign-in lasts at most (less when the Vault token ends sooner)")
	flag.StringVar(&cfg.tlsCert, "tls-cert", "", "a PEM certificate (chain) to serve HTTPS with; empty: plain HTTP, for loopback or behind a TLS proxy")
	flag.StringVar(&cfg.tlsKey, "tls-key", "", "the PEM private key of -tls-cert")
	flag.BoolVar(&cfg.secureCookie, "secure-cookie", false, "mark the session cookie Secure on plain HTTP too (TLS ends at a proxy in front)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("taskmanager: %v", err)
	}
}

func run(ctx context.Context, cfg config) error {
	app, err := newApp(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           app.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	scheme := "http"
	if cfg.tlsCert != "" {
		scheme = "https"
	}
	// The one line on stdout: where to point a browser (scripts/dev.sh and the tests read it).
	fmt.Printf("%s://%s/\n", scheme, l.Addr())
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if cfg.tlsCert != "" {
		err = srv.ServeTLS(l, cfg.tlsCert, cfg.tlsKey)
	} else {
		err = srv.Serve(l)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// app is the service: Vault, the sessions and what the webhooks told.
type app struct {
	vault    *api.Client // no token: each call clones it with the signed-in user's
	mount    string
	userpass string
	verifier *standardwebhooks.Webhook // nil: no secret configured, webhooks refused
	sessions *sessions
	notices  *notices
	pages    *pages
}

func newApp(cfg config) (*app, error) {
	vcfg := api.DefaultConfig()
	if cfg.vaultAddr != "" {
		vcfg.Address = cfg.vaultAddr
	}
	vcfg.Timeout = 30 * time.Second
	vault, err := api.NewClient(vcfg)
	if err != nil {
		return nil, fmt.Errorf("a Vault client: %w", err)
	}
	vault.ClearToken() // never the environment's token: only users' own
	a := &app{vault: vault, mount: strings.Trim(cfg.mount, "/"), userpass: strings.Trim(cfg.userpass, "/"),
		sessions: newSessions(cfg.sessionTTL, cfg.secureCookie), notices: newNotices()}
	if a.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if cfg.secretFile != "" {
		secret, err := os.ReadFile(cfg.secretFile)
		if err != nil {
			return nil, fmt.Errorf("reading the webhook secret: %w", err)
		}
		if a.verifier, err = standardwebhooks.NewWebhook(strings.TrimSpace(string(secret))); err != nil {
			return nil, errors.New("the webhook secret is not a Standard Webhooks secret (whsec_ and base64)")
		}
	}
	return a, nil
}

// routes: the browser's pages behind the cross-origin check and the security headers; the
// webhook, a server-to-server post that no browser sends, checked by its signature instead.
func (a *app) routes() http.Handler {
	pagesMux := http.NewServeMux()
	pagesMux.HandleFunc("GET /{$}", a.home)
	pagesMux.HandleFunc("GET /style.css", a.style)
	pagesMux.HandleFunc("POST /signin", a.signIn)
	pagesMux.HandleFunc("POST /signout", a.signOut)
	pagesMux.HandleFunc("POST /tasks/{id}/complete", a.complete)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(a.crossOrigin))

	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/pecreds", a.webhook)
	mux.Handle("/", secureHeaders(cop.Handler(pagesMux)))
	return mux
}

// secureHeaders: nothing but the page's own stylesheet loads, no frame shows it, forms post only
// here, and no page is cached or leaks its address.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
