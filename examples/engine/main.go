// Command engine is a reference process engine: it runs the story of pecreds end to end against
// scripts/dev.sh, with real parts on loopback.
//
// It starts a small "ledger" service on loopback that accepts Ann's password, registers it in a
// definition registry, and starts a few processes as Ann. Each process resolves the ledger's
// credentials and calls it. Then Ann changes her password at the ledger: the next calls answer
// 401, each process reports auth_failed, goes broken and waits while Ann's credential-update task
// is open. When Ann completes the task with her new password (the program does it for her with
// -complete-after, as Ann, through her own userpass login), the process resumes, resolves again
// and its call succeeds. Before the change, one activity runs in a worker that unwraps a
// response-wrapped resolve: the engine host passes on a single-use wrapping token, never the
// credentials.
//
//	scripts/dev.sh &                                   # then, in another shell:
//	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root go run ./examples/engine -complete-after 5s
//
// (scripts/dev.sh prints this command with its own address and Ann's entity id, which it also
// writes to $PECREDS_DEV_DIR/ann-entity-id, by default bin/dev.)
//
// Without -complete-after it prints each task's id and waits for Ann to complete it:
//
//	vault write pecreds/task/<id>/complete credentials='{"type": "password", "username": "ann", "password": "..."}'
//
// (as Ann: VAULT_TOKEN=$(vault login -token-only -method=userpass username=ann password=ann-dev-login)).
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

type config struct {
	mount, userpass, annPassword, annEntity string
	workerAddr                              string
	processes                               int
	completeAfter, timeout                  time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.mount, "mount", "pecreds", "the pecreds mount")
	flag.StringVar(&cfg.userpass, "userpass", "auth/userpass", "the userpass mount Ann logs in with")
	flag.StringVar(&cfg.annPassword, "ann-login", "ann-dev-login", "Ann's Vault login password (scripts/dev.sh's)")
	flag.StringVar(&cfg.annEntity, "ann-entity", "", "Ann's identity entity id (default: the ann-entity-id file scripts/dev.sh wrote in $PECREDS_DEV_DIR, else bin/dev)")
	flag.StringVar(&cfg.workerAddr, "worker-addr", "", "the Vault address the activity worker unwraps at (default: VAULT_ADDR; not a Vault Proxy that forces its own token)")
	flag.IntVar(&cfg.processes, "processes", 3, "how many processes to run")
	flag.DurationVar(&cfg.completeAfter, "complete-after", 0, "complete Ann's tasks for her after this long (0: wait for someone to)")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if cfg.annEntity == "" {
		dir := os.Getenv("PECREDS_DEV_DIR") // scripts/dev.sh's, when it was set there
		if dir == "" {
			dir = "bin/dev"
		}
		b, err := os.ReadFile(filepath.Join(dir, "ann-entity-id"))
		if err != nil {
			log.Fatalf("no -ann-entity, and %s has no ann-entity-id (run scripts/dev.sh): %v", dir, err)
		}
		cfg.annEntity = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

// ledger is the external service: HTTP basic auth, Ann's current password only.
type ledger struct {
	mu       sync.Mutex
	password string
	url      string
}

func (l *ledger) setPassword(p string) { l.mu.Lock(); l.password = p; l.mu.Unlock() }

func (l *ledger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	l.mu.Lock()
	want := l.password
	l.mu.Unlock()
	if !ok || user != "ann" || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	fmt.Fprintln(w, "booked")
}

// call calls the ledger with resolved credentials: nil, or errUnauthorized.
func (l *ledger) call(creds *client.Credentials) error {
	req, _ := http.NewRequest(http.MethodPost, l.url+"/entries", nil)
	req.SetBasicAuth(fmt.Sprint(creds.Fields["username"]), fmt.Sprint(creds.Fields["password"]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return errUnauthorized
	}
	return nil
}

var errUnauthorized = errors.New("the ledger answered 401")

func run(ctx context.Context, cfg config) error {
	vault, err := api.NewClient(api.DefaultConfig()) // VAULT_ADDR and VAULT_TOKEN (or a proxy's address)
	if err != nil {
		return err
	}
	l := &ledger{password: "ann-ledger-password-1"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	l.url = "http://" + ln.Addr().String()
	fmt.Printf("ledger: listening on %s\n", l.url)

	if _, err := vault.Logical().WriteWithContext(ctx, cfg.mount+"/registry/engine-example", map[string]any{
		"services": fmt.Sprintf(`[{"name": "ledger", "url": %q, "credentials": [{"type": "current"}]}]`, l.url),
	}); err != nil {
		return fmt.Errorf("registering the ledger: %w", err)
	}
	c := client.New(vault, cfg.mount)
	stamp := time.Now().Format("150405")
	var procs []*client.Process
	for i := 0; i < cfg.processes; i++ {
		p, err := c.Start(ctx, client.StartInput{ID: fmt.Sprintf("ledger-%s-%d", stamp, i), Definition: "engine-example",
			Owner: "ann", OwnerEntityID: cfg.annEntity, Current: client.Password("ann", "ann-ledger-password-1")})
		if err != nil {
			return fmt.Errorf("starting a process: %w", err)
		}
		defer p.Close(context.Background())
		procs = append(procs, p)
		if err := step(ctx, p, l); err != nil {
			return err
		}
	}

	if err := wrappedActivity(ctx, cfg, procs[0], l); err != nil {
		return fmt.Errorf("the wrapped activity: %w", err)
	}

	fmt.Println("ann: changes her ledger password; the processes' next calls get 401")
	l.setPassword("ann-ledger-password-2")
	var wg sync.WaitGroup
	errs := make(chan error, len(procs))
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := story(ctx, cfg, vault, p, l); err != nil {
				errs <- fmt.Errorf("%s: %w", p.ID, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err, failed := <-errs; failed {
		return err
	}
	fmt.Printf("all %d processes resumed and booked with Ann's new password\n", len(procs))
	return nil
}

// step resolves the ledger's credentials and calls it.
func step(ctx context.Context, p *client.Process, l *ledger) error {
	creds, err := p.Resolve(ctx, "ledger")
	if err != nil {
		return err
	}
	if err := l.call(creds); err != nil {
		return err
	}
	fmt.Printf("%s: booked (credentials from %s, entry %d)\n", p.ID, creds.Source, creds.Index)
	return nil
}

// wrappedActivity runs one activity in a worker that gets the ledger's credentials without the
// engine host seeing them: the host resolves response-wrapped and hands the worker the single-use
// wrapping token (in a real engine, in the activity task's input).
func wrappedActivity(ctx context.Context, cfg config, p *client.Process, l *ledger) error {
	wrapped, err := p.ResolveWrapped(ctx, "ledger", time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("%s: the host hands a worker a wrapping token (%s, accessor %s), not the credentials\n", p.ID, wrapped.TTL, wrapped.Accessor)
	return worker(ctx, cfg, p.ID, wrapped.Token, l)
}

// worker is the activity worker: its Vault client holds no token of its own, so the wrapping
// token is its only one. It unwraps the credentials once and books; a second unwrap of the same
// token is refused.
func worker(ctx context.Context, cfg config, activity, wrappingToken string, l *ledger) error {
	vcfg := api.DefaultConfig()
	if cfg.workerAddr != "" {
		vcfg.Address = cfg.workerAddr
	}
	vault, err := api.NewClient(vcfg)
	if err != nil {
		return err
	}
	vault.SetToken("")
	c := client.New(vault, cfg.mount)
	creds, err := c.Unwrap(ctx, wrappingToken)
	if err != nil {
		return err
	}
	if err := l.call(creds); err != nil {
		return err
	}
	fmt.Printf("%s: the worker unwrapped the credentials once and booked (from %s)\n", activity, creds.Source)
	if _, err := c.Unwrap(ctx, wrappingToken); !errors.Is(err, client.ErrWrappingTokenInvalid) {
		return fmt.Errorf("a second unwrap: want it refused, got %v", err)
	}
	fmt.Printf("%s: a second unwrap of the same token is refused\n", activity)
	return nil
}

// story is one process after the password change: the call fails, the process reports it and
// waits for Ann's task; once completed, it resumes and its call succeeds.
func story(ctx context.Context, cfg config, vault *api.Client, p *client.Process, l *ledger) error {
	err := step(ctx, p, l)
	if !errors.Is(err, errUnauthorized) {
		return fmt.Errorf("the call with the old password: want a 401, got %v", err)
	}
	verdict, err := p.Report(ctx, "ledger", client.AuthFailed)
	if err != nil {
		return err
	}
	if verdict.Action != client.ActionWait {
		return fmt.Errorf("report: %+v, want to wait", verdict)
	}
	fmt.Printf("%s: 401 reported; broken, waiting for Ann's task %s\n", p.ID, verdict.TaskID)
	if cfg.completeAfter > 0 {
		go completeAsAnn(ctx, cfg, vault, p, verdict.TaskID)
	}
	if err := p.WaitRunning(ctx); err != nil {
		return err
	}
	fmt.Printf("%s: resumed\n", p.ID)
	return step(ctx, p, l)
}

// completeAsAnn logs in as Ann and completes her task with her new password, as she would in the
// Task Manager's UI; then it wakes the waiting process, as the Task Manager's webhook would.
func completeAsAnn(ctx context.Context, cfg config, vault *api.Client, p *client.Process, task string) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(cfg.completeAfter):
	}
	ann, err := vault.Clone()
	if err != nil {
		log.Print(err)
		return
	}
	ann.ClearNamespace()
	login, err := ann.Logical().WriteWithContext(ctx, cfg.userpass+"/login/ann", map[string]any{"password": cfg.annPassword})
	if err != nil {
		log.Printf("logging in as Ann: %v", err)
		return
	}
	ann.SetToken(login.Auth.ClientToken)
	if _, err := ann.Logical().WriteWithContext(ctx, cfg.mount+"/task/"+task+"/complete", map[string]any{
		"credentials": `{"type": "password", "username": "ann", "password": "ann-ledger-password-2"}`,
	}); err != nil {
		log.Printf("completing task %s as Ann: %v", task, err)
		return
	}
	fmt.Printf("ann: completed task %s with her new password\n", task)
	p.Wake()
}
