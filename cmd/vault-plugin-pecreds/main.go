// Command vault-plugin-pecreds serves the pecreds secrets engine to Vault.
package main

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	pecreds "github.com/pecreds/vault-plugin-pecreds"
)

func main() {
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}

	go exitWhenOrphaned(os.Getppid(), time.Second)

	// The TLS provider serves Vault servers older than the multiplexing protocol.
	tlsConfig := apiClientMeta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: pecreds.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

// exitWhenOrphaned ends the plugin when the Vault process that started it is gone (a crashed or
// killed node): an orphaned plugin must not keep refreshing tokens that the new active node now
// refreshes. Vault starts its plugins itself, so a new parent means the old one died.
func exitWhenOrphaned(parent int, every time.Duration) {
	for range time.Tick(every) {
		if os.Getppid() != parent {
			hclog.New(&hclog.LoggerOptions{Output: os.Stderr}).Info("the Vault process that started this plugin is gone; exiting", "parent", parent)
			os.Exit(0)
		}
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
