// Package client is the Go client of pecreds for process engines, on Vault's own API client
// (github.com/hashicorp/vault/api).
//
// An engine starts a process with the credentials of the user who started it, resolves the
// credentials of each service it calls (by name or by URL), reports a failed call, waits while a
// broken process's owner updates their credentials, and ends the process when it is done:
//
//	c := client.New(vaultClient, "pecreds")
//	p, err := c.Start(ctx, client.StartInput{ID: "order-42", Definition: "orders", Owner: "ann",
//		Current: client.Password("ann", password)})
//	defer p.Close(ctx)
//	creds, err := p.Resolve(ctx, "crm")
//	// ... call the service with creds.Fields["username"], creds.Fields["password"] ...
//	verdict, err := p.Report(ctx, "crm", client.AuthFailed)
//	if verdict.Action == client.ActionWait {
//		err = p.WaitRunning(ctx) // until the owner completes task verdict.TaskID
//	}
//
// A Process keeps its Vault lease renewed (api.LifetimeWatcher) until Close, which ends it. Behind
// Vault Proxy (examples/engine-host/proxy.hcl) the vault/api client needs no token of its own.
//
// An activity worker can get a credential the engine host never sees: the host's
// Process.ResolveWrapped answers a single-use wrapping token (Vault's response wrapping) that it
// hands to the worker, whose Client.Unwrap opens it once with no Vault token of its own.
//
// When the program that starts a process is not the one that runs it (a web front starts a
// workflow that workers run), the starter calls Create, which answers the lease id and renews
// nothing; the workers take a handle with Client.Process(id), keep the lease with RenewLease and
// end the process with End.
//
// Errors are typed: ErrNotFound, ErrPermissionDenied, *BadRequestError (Vault's messages),
// *BrokenError (the process waits for its owner's task), and ErrWrappingTokenInvalid (a wrapping
// token used, expired or unknown).
//
// Ids and names (process ids, service and registry names) are checked with the server's rule
// before they go into a path, so a name holding ".." or "/" is a *BadRequestError and never
// reaches another path. A resolve by URL sends the URL in the request body, never in the request
// line (which proxies and servers log), and no error carries a request's query.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Error classes a report names (config's error_health_mapping maps them to a health).
const (
	AuthFailed             = "auth_failed"
	CredentialsExpired     = "credentials_expired"
	CredentialsUnavailable = "credentials_unavailable"
	Forbidden              = "forbidden"
	Unavailable            = "unavailable"
)

// What a report's verdict tells the engine to do.
const (
	ActionRetry = "retry" // the process runs: retry the call (after re-resolving)
	ActionWait  = "wait"  // the process is broken: wait for the owner's task (or an operator)
	ActionAbort = "abort" // the process failed: give up
)

// ErrNotFound: the process (or what the path names) does not exist.
var ErrNotFound = errors.New("pecreds: not found")

// ErrPermissionDenied: the token's policies do not allow the call.
var ErrPermissionDenied = errors.New("pecreds: permission denied")

// BadRequestError is a 400: Vault's messages say which field and which rule.
type BadRequestError struct{ Messages []string }

func (e *BadRequestError) Error() string { return "pecreds: " + strings.Join(e.Messages, "; ") }

// BrokenError: the process is broken and waits for its owner's task (TaskID; empty when an
// operator must resume it).
type BrokenError struct {
	ProcessID, TaskID, Reason string
}

func (e *BrokenError) Error() string {
	if e.TaskID == "" {
		return fmt.Sprintf("pecreds: process %s is broken (%s): an operator resumes it", e.ProcessID, e.Reason)
	}
	return fmt.Sprintf("pecreds: process %s is broken (%s): it waits for its owner's task %s", e.ProcessID, e.Reason, e.TaskID)
}

// Client calls one pecreds mount.
type Client struct {
	vault *api.Client
	mount string
}

// New is a client of the pecreds mount at mount (such as "pecreds").
func New(vault *api.Client, mount string) *Client {
	return &Client{vault: vault, mount: strings.Trim(mount, "/")}
}

// Mount is the path the client's pecreds mount is at (such as "pecreds").
func (c *Client) Mount() string { return c.mount }

// Password is a password credential, for StartInput.Current or a runtime service.
func Password(username, password string) map[string]any {
	return map[string]any{"type": "password", "username": username, "password": password}
}

// StartInput is what a process starts with.
type StartInput struct {
	ID            string
	Definition    string         // its definition registry; empty for none
	Owner         string         // the user who started it, as the engine names them
	OwnerEntityID string         // their Vault identity entity; empty: the calling token's
	Current       map[string]any // the user's own credentials (Password(...)); nil for none
	TTL           time.Duration  // the lease TTL; 0: config's process_ttl
}

// Process is a started process. Its lease is renewed in the background until Close.
type Process struct {
	c       *Client
	ID      string
	LeaseID string

	watcher *api.LifetimeWatcher
	wake    chan struct{}
	once    sync.Once
}

// Start instantiates a process (a Vault lease) and keeps its lease renewed.
func (c *Client) Start(ctx context.Context, in StartInput) (*Process, error) {
	secret, err := c.create(ctx, in)
	if err != nil {
		return nil, err
	}
	p := &Process{c: c, ID: in.ID, LeaseID: secret.LeaseID, wake: make(chan struct{}, 1)}
	if p.watcher, err = c.vault.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret}); err != nil {
		return nil, err
	}
	go p.watcher.Start()
	go func() { // drain the watcher's notices; it stops at the lease's max TTL or on Close
		for {
			select {
			case <-p.watcher.DoneCh():
				return
			case <-p.watcher.RenewCh():
			}
		}
	}()
	return p, nil
}

// Create instantiates a process like Start, but leaves its lease to someone else: it answers the
// lease id, which another program (a worker of the engine) renews with RenewLease, and the process
// ends when that lease is revoked or expires, or by End.
func (c *Client) Create(ctx context.Context, in StartInput) (leaseID string, err error) {
	secret, err := c.create(ctx, in)
	if err != nil {
		return "", err
	}
	return secret.LeaseID, nil
}

// Process is a handle on a process started elsewhere (by Create, or another program's Start): it
// resolves, reports, reads and waits like a started one, and renews nothing. Its Close ends the
// process by its id (End).
func (c *Client) Process(id string) *Process {
	return &Process{c: c, ID: id, wake: make(chan struct{}, 1)}
}

// RenewLease extends a process's lease (as api.LifetimeWatcher does for Start) by increment, or by
// config's process_ttl when increment is 0, and answers the lease's TTL now. Vault caps it at
// process_max_ttl and the mount's limit.
func (c *Client) RenewLease(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error) {
	s, err := c.vault.Sys().RenewWithContext(ctx, leaseID, int(increment.Seconds()))
	if err != nil {
		return 0, classify(err)
	}
	if s == nil {
		return 0, fmt.Errorf("pecreds: renewing lease %s answered nothing", leaseID)
	}
	return time.Duration(s.LeaseDuration) * time.Second, nil
}

// End ends the process id (DELETE process/:id): its current credentials wiped, an open task
// cancelled. A process already gone is not an error.
func (c *Client) End(ctx context.Context, id string) error {
	path, err := c.processPath(id)
	if err != nil {
		return err
	}
	_, err = c.vault.Logical().DeleteWithContext(ctx, path)
	if err = classify(err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// create writes process/:id and answers its lease.
func (c *Client) create(ctx context.Context, in StartInput) (*api.Secret, error) {
	path, err := c.processPath(in.ID)
	if err != nil {
		return nil, err
	}
	// A field without a value is left out: pecreds refuses an empty name. Objects go as JSON
	// objects, not JSON text, so that an oversized one reaches pecreds (a 400 naming the field and
	// its limit) rather than Vault's limit on one JSON string (a 500).
	data := map[string]any{"owner": in.Owner}
	if in.Definition != "" {
		if err := checkName("definition", in.Definition); err != nil {
			return nil, err
		}
		data["definition"] = in.Definition
	}
	if in.OwnerEntityID != "" {
		data["owner_entity_id"] = in.OwnerEntityID
	}
	if in.Current != nil {
		data["current"] = in.Current
	}
	if in.TTL > 0 {
		data["ttl"] = int(in.TTL.Seconds())
	}
	secret, err := c.vault.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, classify(err)
	}
	if secret == nil || secret.LeaseID == "" {
		return nil, fmt.Errorf("pecreds: process %s started without a lease", in.ID)
	}
	return secret, nil
}

// Close stops renewing the lease and ends the process (its lease revoked: its credentials wiped,
// an open task cancelled); a handle from Client.Process ends it by its id. Closing twice is
// harmless.
func (p *Process) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		if p.watcher == nil {
			err = p.c.End(ctx, p.ID)
			return
		}
		p.watcher.Stop()
		// The URL form, which the engine-host policy grants for this mount's process leases only.
		_, err = p.c.vault.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+p.LeaseID, nil)
		err = classify(err)
	})
	return err
}

// processPath is the path of process id under the mount, then rest ("resolve", a service). id is
// checked here; a caller checks any name in rest (checkName) before.
func (c *Client) processPath(id string, rest ...string) (string, error) {
	if err := checkName("process id", id); err != nil {
		return "", err
	}
	return c.mount + "/" + strings.Join(append([]string{"process", id}, rest...), "/"), nil
}

// checkName is the server's name rule (1-128 letters, digits, '.', '_', '-', starting with a
// letter or digit), as a *BadRequestError like the server's own answer.
func checkName(what, name string) error {
	if err := credential.ValidateName(what, name); err != nil {
		return &BadRequestError{Messages: []string{err.Error()}}
	}
	return nil
}

// classify turns Vault's answer into the package's typed errors. No error keeps a request's
// query: Vault's own errors and the transport's quote the request URL.
func classify(err error) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return withoutQuery(err)
	}
	switch re.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, strings.Join(re.Errors, "; "))
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrPermissionDenied, strings.Join(re.Errors, "; "))
	case http.StatusBadRequest:
		return &BadRequestError{Messages: re.Errors}
	}
	bare := *re
	bare.URL = stripQuery(re.URL)
	return &bare
}

// withoutQuery is err with the query cut from the URL of a *url.Error (a transport failure).
func withoutQuery(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: stripQuery(ue.URL), Err: ue.Err}
}

func stripQuery(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}
