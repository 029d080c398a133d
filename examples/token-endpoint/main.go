// Command token-endpoint is a stand-in OAuth2 token endpoint (client-credentials grant) for the
// walkthrough: scripts/dev.sh starts it on loopback so that an oauth2 technical credential has
// something real to fetch tokens from. It accepts any client and hands out tokens that live for
// -lifetime. Never use it for anything else.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

func main() {
	lifetime := flag.Duration("lifetime", time.Minute, "how long the tokens handed out live")
	flag.Parse()
	srv, err := tokenserver.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "token-endpoint:", err)
		os.Exit(1)
	}
	srv.SetLifetime(*lifetime)
	fmt.Println(srv.TokenURL())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	srv.Close()
}
