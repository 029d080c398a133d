package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
)

// standInProxy answers like a Vault Proxy in front of a pecreds mount, for one process, so that
// the package's Example runs: it starts the process "order-42" with a lease, resolves its "crm"
// service to the owner's current password, answers a report of auth_failed as pecreds does for
// the owner's own credentials (broken, a task for the owner), and revokes the lease. The owner
// completes her task at once: the next process read shows it running, with her new password.
// A resolve with X-Vault-Wrap-TTL answers a wrapping token instead, which sys/wrapping/unwrap
// opens once, as Vault does.
type standInProxy struct {
	*httptest.Server
	mu       sync.Mutex
	password string
	health   string
	wrapped  map[string]bool // wrapping token -> not unwrapped yet
}

func startStandInProxy() *standInProxy {
	p := &standInProxy{password: "ann's old password", health: "running", wrapped: map[string]bool{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

func (p *standInProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	const process = "/v1/pecreds/process/order-42"
	switch route := r.Method + " " + r.URL.Path; route {
	case "PUT " + process:
		reply(w, map[string]any{"lease_id": "pecreds/process/order-42/L1", "lease_duration": 3600,
			"data": map[string]any{"id": "order-42", "health": p.health}})
	case "GET " + process + "/resolve/crm":
		if r.Header.Get("X-Vault-Wrap-TTL") != "" {
			token := fmt.Sprintf("hvs.wrapping-%d", len(p.wrapped)+1)
			p.wrapped[token] = true
			reply(w, map[string]any{"wrap_info": map[string]any{"token": token, "accessor": "A-1", "ttl": 60,
				"creation_path": "pecreds/process/order-42/resolve/crm"}})
			return
		}
		reply(w, map[string]any{"data": map[string]any{"service": "crm", "source": "definition:orders",
			"index": 0, "type": "password", "username": "ann", "password": p.password}})
	case "PUT " + process + "/report":
		p.health = "broken"
		reply(w, map[string]any{"data": map[string]any{"health": p.health, "action": "wait", "task_id": "T-1"}})
	case "GET " + process:
		if p.health == "broken" { // ann completes task T-1 with her new password
			p.health, p.password = "running", "ann's new password"
		}
		reply(w, map[string]any{"data": map[string]any{"id": "order-42", "health": p.health}})
	case "PUT /v1/sys/wrapping/lookup":
		var in struct {
			Token string `json:"token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		if !p.wrapped[in.Token] {
			w.WriteHeader(http.StatusBadRequest)
			reply(w, map[string]any{"errors": []string{"wrapping token is not valid or does not exist"}})
			return
		}
		reply(w, map[string]any{"data": map[string]any{"creation_path": "pecreds/process/order-42/resolve/crm"}})
	case "PUT /v1/sys/wrapping/unwrap":
		token := r.Header.Get("X-Vault-Token")
		if !p.wrapped[token] {
			w.WriteHeader(http.StatusBadRequest)
			reply(w, map[string]any{"errors": []string{"wrapping token is not valid or does not exist"}})
			return
		}
		p.wrapped[token] = false
		reply(w, map[string]any{"data": map[string]any{"service": "crm", "source": "definition:orders",
			"index": 0, "type": "password", "username": "ann", "password": p.password}})
	case "PUT /v1/sys/leases/revoke/pecreds/process/order-42/L1":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
		reply(w, map[string]any{"errors": []string{"the stand-in does not know " + route}})
	}
}

func reply(w http.ResponseWriter, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}
