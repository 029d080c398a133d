// Package schedule is a time-ordered queue of names: when each is due next (a token's refresh, a
// process's own expiry). It stands on the SDK's priority queue, keyed by name, with the time as
// priority. No clock: the caller says what now is.
package schedule

import (
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/queue"
)

// Queue is a schedule: when each name is due (as the OpenLDAP engine's rotation queue does).
type Queue struct {
	mu sync.Mutex // makes Schedule's pop-and-push and PopDue's pop-and-put-back atomic
	pq *queue.PriorityQueue
}

func NewQueue() *Queue { return &Queue{pq: queue.New()} }

// Schedule places (or moves) a name at a time.
func (q *Queue) Schedule(name string, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, _ = q.pq.PopByKey(name)
	_ = q.pq.Push(&queue.Item{Key: name, Priority: at.UnixNano()})
}

// Unschedule takes a name out.
func (q *Queue) Unschedule(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, _ = q.pq.PopByKey(name)
}

// Len counts the scheduled names.
func (q *Queue) Len() int { return q.pq.Len() }

// idle is the wait PopDue answers when nothing is scheduled.
const idle = time.Hour

// PopDue takes the earliest name if it is due at now; else it answers how long until it is.
func (q *Queue) PopDue(now time.Time) (name string, wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, err := q.pq.Pop()
	if err != nil {
		return "", idle
	}
	if wait := time.Unix(0, it.Priority).Sub(now); wait > 0 {
		_ = q.pq.Push(it)
		return "", wait
	}
	return it.Key, 0
}
