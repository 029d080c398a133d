package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// An engine behind Vault Proxy (examples/engine-host/proxy.hcl): the vault/api client points at
// the proxy and holds no token. The process resolves the CRM's credentials, calls it, and when
// the user's password is refused, reports it and waits for the user to update it.
func Example() {
	ctx := context.Background()
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:8100" // the proxy's listener
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
		if callCRM(creds.Fields["username"], creds.Fields["password"]) {
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
}

func callCRM(username, password any) bool { return username != nil && password != nil }
