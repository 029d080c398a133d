package main

import (
	"crypto/tls"
	"math"
	"os"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
	"google.golang.org/grpc"
)

// streamWorkers is how many goroutines serve Vault's calls to the plugin, each kept for many
// calls. gRPC otherwise starts a goroutine per call, whose stack then grows, copy by copy,
// through the SDK's and the plugin's frames: an eighth of the plugin's CPU on a process create.
// Calls beyond them get a goroutine of their own, as before.
const streamWorkers = 32

// serveMultiplex is the SDK's plugin.ServeMultiplex with one more gRPC server option
// (streamWorkers): the same protocol versions, handshake, mlock and message size limits.
func serveMultiplex(factory logical.Factory, tlsProvider func() (*tls.Config, error)) error {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	backend := func(multiplexing bool) goplugin.PluginSet {
		return goplugin.PluginSet{plugin.BackendPluginName: &plugin.GRPCBackendPlugin{
			Factory: factory, MultiplexingSupport: multiplexing, Logger: logger,
		}}
	}
	if err := pluginutil.OptionallyEnableMlock(); err != nil {
		return err
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig,
		VersionedPlugins: map[int]goplugin.PluginSet{3: backend(false), 4: backend(false), 5: backend(true)},
		Logger:           logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32), grpc.NumStreamWorkers(streamWorkers))
			return goplugin.DefaultGRPCServer(opts)
		},
		TLSProvider: tlsProvider, // servers older than the multiplexing protocol (v5 uses AutoMTLS)
	})
	return nil
}
