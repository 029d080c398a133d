package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// An engine behind Vault Proxy (examples/engine-host/proxy.hcl): the vault/api client points at
// the proxy and holds no token. The process resolves the CRM's credentials, calls it, and when
// the user's password is refused, reports it and waits for the user to update it. (Here a
// stand-in answers as the proxy and pecreds would, and ann updates her password at once.)
func Example() {
	ctx := context.Background()
	proxy := startStandInProxy()
	defer proxy.Close()
	cfg := api.DefaultConfig()
	cfg.Address = proxy.URL // the proxy's listener, such as http://127.0.0.1:8100
	vault, err := api.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	vault.SetToken("") // the proxy adds its own
	c := client.New(vault, "pecreds")

	p, err := c.Start(ctx, client.StartInput{ID: "order-42", Definition: "orders", Owner: "ann",
		Current: client.Password("ann", "the password ann signed in with")})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	for {
		creds, err := p.Resolve(ctx, "crm")
		var broken *client.BrokenError
		if errors.As(err, &broken) {
			fmt.Println("waiting for task", broken.TaskID)
			if err := p.WaitRunning(ctx); err != nil {
				log.Fatal(err)
			}
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("calling the CRM as", creds.Fields["username"])
		if callCRM(creds.Fields["username"], creds.Fields["password"]) {
			fmt.Println("the CRM answered")
			return
		}
		verdict, err := p.Report(ctx, "crm", client.AuthFailed)
		if err != nil {
			log.Fatal(err)
		}
		switch verdict.Action {
		case client.ActionAbort:
			log.Fatal("the process failed")
		case client.ActionWait:
			fmt.Println("waiting for task", verdict.TaskID)
			if err := p.WaitRunning(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}
	// Output:
	// calling the CRM as ann
	// waiting for task T-1
	// calling the CRM as ann
	// the CRM answered
}

// callCRM stands in for the call to the CRM, which no longer takes ann's old password.
func callCRM(username, password any) bool {
	return username == "ann" && password == "ann's new password"
}

// An engine host hands an activity worker a credential it never sees itself: the resolve is
// response-wrapped, the host passes the single-use wrapping token on, and the worker, holding no
// Vault token of its own, unwraps it once. (Here a stand-in answers as Vault would.)
func ExampleProcess_ResolveWrapped() {
	ctx := context.Background()
	vaultServer := startStandInProxy()
	defer vaultServer.Close()
	cfg := api.DefaultConfig()
	cfg.Address = vaultServer.URL
	hostVault, err := api.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.New(hostVault, "pecreds").Start(ctx, client.StartInput{ID: "order-42", Definition: "orders",
		Owner: "ann", Current: client.Password("ann", "the password ann signed in with")})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	// The engine host: a wrapping token that lives a minute, for the worker.
	wrapped, err := p.ResolveWrapped(ctx, "crm", time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the host hands the worker a", wrapped.TTL, "wrapping token")

	// The worker: its own Vault client, with no token but the wrapping token.
	workerVault, err := api.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	workerVault.SetToken("")
	worker := client.New(workerVault, "pecreds")
	creds, err := worker.Unwrap(ctx, wrapped.Token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the worker calls the CRM as", creds.Fields["username"])
	if _, err := worker.Unwrap(ctx, wrapped.Token); errors.Is(err, client.ErrWrappingTokenInvalid) {
		fmt.Println("a second unwrap is refused")
	}
	// Output:
	// the host hands the worker a 1m0s wrapping token
	// the worker calls the CRM as ann
	// a second unwrap is refused
}
