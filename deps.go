package pecreds

import (
	"net/http"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// deps are what the backend is built from: the clock, the HTTP client of every outbound call,
// and the limits of waiting on a dependency. Production uses defaultDeps; tests pass a fake clock,
// an endpoint that hangs or lies, and short waits.
type deps struct {
	now  func() time.Time
	http *http.Client
	// tokenWait bounds how long a request waits on a token request in flight before it answers
	// "retry" (and changes nothing); the request itself goes on in the background.
	tokenWait time.Duration
	// minFetchInterval: no credential's token is asked for again sooner than this after its last
	// token request ended, whoever asks.
	minFetchInterval time.Duration
	// notifyDeadAfter: an outbox event still undelivered this long after delivery started is
	// kept as dead (24 hours).
	notifyDeadAfter time.Duration
}

const (
	// defaultTokenWait: a request waits up to this on a pending token request. Long enough for
	// a healthy endpoint; short enough that a hung one costs its dependants a couple of seconds.
	defaultTokenWait = 2 * time.Second
	// defaultMinFetchInterval keeps an endpoint that hands out tokens too short-lived to serve
	// from being asked in a tight loop.
	defaultMinFetchInterval = 2 * time.Second
)

func defaultDeps() deps {
	return deps{
		now:              time.Now,
		http:             newOutboundClient(oauth.RequestTimeout),
		tokenWait:        defaultTokenWait,
		minFetchInterval: defaultMinFetchInterval,
		notifyDeadAfter:  builtNotifyDeadAfter(),
	}
}

// notifyDeadAfterBuild is empty in every build but the integration tests', which link in a short
// dead limit (-ldflags -X, tests/main_test.go) so that a real Vault shows events going dead and
// notify/retry bringing them back. Nothing at run time can change it: no environment knob.
var notifyDeadAfterBuild string

func builtNotifyDeadAfter() time.Duration {
	if d, err := time.ParseDuration(notifyDeadAfterBuild); err == nil && d > 0 {
		return d
	}
	return outbox.DeadAfter
}
