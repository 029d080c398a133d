package tokenserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// Scripted is a token endpoint for attack tests: it answers whatever body it is told (a token,
// a lie, an error), or hangs from Hold until Release, and counts the requests it got.
type Scripted struct {
	*httptest.Server
	requests atomic.Int64
	holding  atomic.Bool
	released chan struct{}
	once     sync.Once
	body     atomic.Value // string
}

// StartScripted listens on a free loopback port, answering body (hanging from the start if hang).
// Close releases and stops it.
func StartScripted(body string, hang bool) *Scripted {
	h := &Scripted{released: make(chan struct{})}
	h.holding.Store(hang)
	h.body.Store(body)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if h.holding.Load() {
			select {
			case <-h.released:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, h.body.Load().(string))
	}))
	return h
}

// TokenURL is the endpoint's address.
func (h *Scripted) TokenURL() string { return h.URL + "/token" }

// Answer sets the body of the answers from now on.
func (h *Scripted) Answer(body string) { h.body.Store(body) }

// Hold makes requests from now on hang until Release.
func (h *Scripted) Hold() { h.holding.Store(true) }

// Release answers every hanging request, and every later one.
func (h *Scripted) Release() {
	h.holding.Store(false)
	h.once.Do(func() { close(h.released) })
}

// Requests counts the requests received.
func (h *Scripted) Requests() int64 { return h.requests.Load() }

// Close releases the hanging requests and stops the server.
func (h *Scripted) Close() {
	h.Release()
	h.Server.Close()
}
