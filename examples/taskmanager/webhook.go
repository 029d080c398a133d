package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"sync"
	"time"
)

// maxWebhookBytes bounds a delivery: pecreds's events are at most 4 KiB.
const maxWebhookBytes = 16 << 10

// Bounds of what the webhooks leave in memory.
const (
	noticesPerOwner = 20
	maxOwners       = 10000
	maxSeenIDs      = 10000
)

// event is a pecreds webhook's body: never a credential.
type event struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	Time          string `json:"time"`
	ProcessID     string `json:"process_id"`
	TaskID        string `json:"task_id"`
	Service       string `json:"service"`
	Owner         string `json:"owner"`
	OwnerEntityID string `json:"owner_entity_id"`
	Reason        string `json:"reason"`
}

// notices are the verified events by owner entity, newest first, each delivered once even when
// pecreds retries it.
type notices struct {
	mu      sync.Mutex
	byOwner map[string][]event
	seen    map[string]bool
	order   []string // seen's ids, oldest first, to forget the oldest past maxSeenIDs
}

func newNotices() *notices {
	return &notices{byOwner: map[string][]event{}, seen: map[string]bool{}}
}

func (n *notices) add(ev event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen[ev.ID] {
		return
	}
	n.seen[ev.ID] = true
	n.order = append(n.order, ev.ID)
	if len(n.order) > maxSeenIDs {
		delete(n.seen, n.order[0])
		n.order = n.order[1:]
	}
	if ev.OwnerEntityID == "" {
		return
	}
	list, known := n.byOwner[ev.OwnerEntityID]
	if !known && len(n.byOwner) >= maxOwners {
		return
	}
	list = append([]event{ev}, list...)
	if len(list) > noticesPerOwner {
		list = list[:noticesPerOwner]
	}
	n.byOwner[ev.OwnerEntityID] = list
}

func (n *notices) of(entity string) []event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]event(nil), n.byOwner[entity]...)
}

// webhook receives a pecreds event: its signature and timestamp are checked (the Standard
// Webhooks reference library) before anything in it is read; a bad one is a 401 pecreds retries
// and reports in notify/status.
func (a *app) webhook(w http.ResponseWriter, r *http.Request) {
	if a.verifier == nil {
		http.Error(w, "no webhook secret is configured", http.StatusUnauthorized)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		http.Error(w, "the delivery is too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := a.verifier.Verify(raw, r.Header); err != nil {
		log.Printf("taskmanager: refused a webhook delivery: its signature or timestamp does not verify")
		http.Error(w, "the signature does not verify", http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil || ev.ID == "" || ev.Type == "" {
		http.Error(w, "not a pecreds event", http.StatusBadRequest)
		return
	}
	a.notices.add(ev)
	log.Printf("taskmanager: event %q %q process=%q task=%q", ev.ID, ev.Type, ev.ProcessID, ev.TaskID)
	w.WriteHeader(http.StatusNoContent)
}

// when formats an RFC 3339 time for people, or answers it as it came.
func when(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
