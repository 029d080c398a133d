package temporal_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// The program where Ann signs in starts her workflow: her password goes to pecreds, not to
// Temporal.
func ExampleStarter_Start() {
	ctx := context.Background()
	vault, _ := api.NewClient(api.DefaultConfig()) // Vault Proxy's address, the engine-host policy
	tc, err := client.Dial(client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s := &temporal.Starter{Temporal: tc, Pecreds: pecreds.New(vault, "pecreds")}
	run, err := s.Start(ctx, temporal.StartOptions{
		Workflow:   client.StartWorkflowOptions{ID: "order-42", TaskQueue: "orders"},
		Definition: "orders", Owner: "ann", OwnerEntityID: "ann's entity id",
		Credentials: pecreds.Password("ann", "the password Ann signed in with"),
	}, "OrderWorkflow", "order-42")
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("workflow %s runs with process %s", run.GetID(), temporal.ProcessID(run.GetID(), run.GetRunID()))
}

// The worker runs with the interceptor, and serves pecreds's webhook to wake waiting workflows.
func ExampleNewInterceptor() {
	vault, _ := api.NewClient(api.DefaultConfig())
	tc, err := client.Dial(client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ic, err := temporal.NewInterceptor(temporal.Options{Pecreds: pecreds.New(vault, "pecreds")})
	if err != nil {
		log.Fatal(err)
	}
	w := worker.New(tc, "orders", worker.Options{Interceptors: []interceptor.WorkerInterceptor{ic}})
	bridge, err := temporal.NewWebhookBridge(tc, "whsec_...") // config notify_secret
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/pecreds/webhook", bridge) // config notify_url
	log.Fatal(w.Run(worker.InterruptCh()))
}

// An activity calls a service with the credentials of its workflow's process, and says when
// the service refused them: the workflow then waits for Ann's task and runs it again.
func ExampleCredentials() {
	book := func(ctx context.Context, url string) error {
		creds, err := temporal.Credentials(ctx, "ledger")
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(fmt.Sprint(creds.Fields["username"]), fmt.Sprint(creds.Fields["password"]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			return temporal.AuthFailed("ledger", errors.New("the ledger answered 401"))
		}
		return nil
	}
	_ = book
}
