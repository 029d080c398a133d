package outbox

import (
	"sort"
	"sync"
	"time"
)

// Entry is what the index keeps of an event: enough to schedule, count and evict it, not its
// body (that stays in storage until its delivery reads it).
type Entry struct {
	Seq       uint64
	ID        string
	ProcessID string
	// Change is the state change that made the event, while its write-ahead record may still
	// be rolled forward: the event waits until the change is done (Index.SetHeld).
	Change      string
	Time        time.Time // when the event was made
	Since       time.Time // when delivery (re)started: the dead limit counts from it
	NextAttempt time.Time
	Dead        bool
}

// Entry is the event's index entry.
func (e *Event) Entry() Entry {
	return Entry{Seq: e.Seq, ID: e.ID, ProcessID: e.ProcessID, Change: e.Change, Time: e.Time, Since: e.Since, NextAttempt: e.NextAttempt, Dead: e.Dead}
}

// Index holds the outbox's pending and dead events in memory, a queue per process in sequence
// order, so that adding an event and finding what is due cost no storage reads however many
// wait. It is rebuilt from storage when the plugin starts on the active node. Safe for
// concurrent use.
type Index struct {
	mu      sync.Mutex
	queues  map[string][]Entry
	dead    map[uint64]string // dead events' process ids, by sequence number
	total   int
	lastSeq uint64
	held    func(change string) bool
	hurries uint64 // how many Hurry calls: an attempt that spans one does not back off
}

// SetHeld tells the index which changes are not done yet: an event of one is not delivered (nor
// those behind it), so that rolling the change forward never writes an event twice. Set it
// before the index is used.
func (x *Index) SetHeld(held func(change string) bool) { x.held = held }

func (x *Index) heldLocked(e Entry) bool { return e.Change != "" && x.held != nil && x.held(e.Change) }

// Has says whether a process's event with this id is held (pending, dead or waiting for its
// change).
func (x *Index) Has(processID, id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.queues[processID] {
		if e.ID == id {
			return true
		}
	}
	return false
}

// NewIndex indexes the events read from storage, in any order.
func NewIndex(entries []Entry) *Index {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Seq < entries[j].Seq })
	x := &Index{queues: map[string][]Entry{}, dead: map[uint64]string{}}
	for _, e := range entries {
		x.add(e)
	}
	return x
}

// NextSeq reserves the next sequence number: numbers only grow, even past removed events.
func (x *Index) NextSeq() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.lastSeq++
	return x.lastSeq
}

// Add indexes a new event, after the ones of its process.
func (x *Index) Add(e Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.add(e)
}

func (x *Index) add(e Entry) {
	x.queues[e.ProcessID] = append(x.queues[e.ProcessID], e)
	if e.Dead {
		x.dead[e.Seq] = e.ProcessID
	}
	x.total++
	x.lastSeq = max(x.lastSeq, e.Seq)
}

// Update replaces an event's entry (after an attempt, a hold or a retry).
func (x *Index) Update(e Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[e.ProcessID]
	for i := range q {
		if q[i].Seq == e.Seq {
			q[i] = e
			delete(x.dead, e.Seq)
			if e.Dead {
				x.dead[e.Seq] = e.ProcessID
			}
			return
		}
	}
}

// Remove drops an event (delivered, or evicted).
func (x *Index) Remove(processID string, seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[processID]
	for i := range q {
		if q[i].Seq == seq {
			if i == 0 {
				q = q[1:] // the usual case, delivered in order: no copy
			} else {
				q = append(q[:i], q[i+1:]...)
			}
			if len(q) == 0 {
				delete(x.queues, processID)
			} else {
				x.queues[processID] = q
			}
			delete(x.dead, seq)
			x.total--
			return
		}
	}
}

// Crowded answers, when a process already has limit events or more, the one to give way to its
// next: the oldest behind its first (never the first, which a delivery may be posting), so that
// the first and the newest states reach the receiver and one process never fills the outbox.
func (x *Index) Crowded(processID string, limit int) (Entry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[processID]
	if len(q) < max(limit, 2) {
		return Entry{}, false
	}
	return q[1], true
}

// Len is the number of events held, pending and dead.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total
}

// OldestDead is the dead event with the lowest sequence number, the first to go when the outbox
// is full.
func (x *Index) OldestDead() (Entry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var oldest uint64
	for seq := range x.dead {
		if oldest == 0 || seq < oldest {
			oldest = seq
		}
	}
	if oldest == 0 {
		return Entry{}, false
	}
	for _, e := range x.queues[x.dead[oldest]] {
		if e.Seq == oldest {
			return e, true
		}
	}
	return Entry{}, false
}

// Dead lists the dead events, in sequence order.
func (x *Index) Dead() []Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []Entry
	for _, q := range x.queues {
		for _, e := range q {
			if e.Dead {
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Head is a process's first event; none while its change is not done.
func (x *Index) Head(processID string) (Entry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[processID]
	if len(q) == 0 || x.heldLocked(q[0]) {
		return Entry{}, false
	}
	return q[0], true
}

// Hurry makes every pending event that waits out a backoff due at now, and answers how many:
// once the receiver is fixed (a new notify_url, or an operator's retry) they go on the next pass
// instead of after up to MaxBackoff. Dead events stay dead; a failed attempt backs off again from
// the event's attempt count.
func (x *Index) Hurry(now time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.hurries++
	n := 0
	for _, q := range x.queues {
		for i := range q {
			if !q[i].Dead && q[i].NextAttempt.After(now) {
				q[i].NextAttempt = now
				n++
			}
		}
	}
	return n
}

// Hurries counts the Hurry calls so far: a delivery compares it before and after an attempt.
func (x *Index) Hurries() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.hurries
}

// Plan is what a delivery pass does at a moment: the processes whose first event is due, those
// whose first event is dead, and when the next event falls due (zero: none is waiting).
type Plan struct {
	Due     []string
	Blocked []string
	Next    time.Time
}

// Plan looks at every process's queue at now. A process's later events wait while its first is
// pending, and behind a dead one until it is retried.
func (x *Index) Plan(now time.Time) Plan {
	x.mu.Lock()
	defer x.mu.Unlock()
	var p Plan
	for pid, q := range x.queues {
		head := q[0]
		switch {
		case x.heldLocked(head):
			// its change is being rolled forward: done, it pokes the delivery loop
		case head.Dead:
			p.Blocked = append(p.Blocked, pid)
		case head.NextAttempt.After(now):
			if p.Next.IsZero() || head.NextAttempt.Before(p.Next) {
				p.Next = head.NextAttempt
			}
		default:
			p.Due = append(p.Due, pid)
		}
	}
	sort.Strings(p.Due) // a stable order, for tests and for fairness between passes alike
	return p
}

// Overdue lists a process's pending events that have waited past the dead limit behind its dead
// first event: they are to be held as dead too, never tried out of order.
func (x *Index) Overdue(processID string, now time.Time, deadAfter time.Duration) []Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[processID]
	if len(q) == 0 || !q[0].Dead {
		return nil
	}
	var out []Entry
	for _, e := range q[1:] {
		if !e.Dead && now.Sub(e.Since) >= deadAfter {
			out = append(out, e)
		}
	}
	return out
}

// Counts is what notify/status shows of the outbox itself.
type Counts struct {
	Pending, Dead int
	OldestPending time.Time
}

// Counts counts the events held.
func (x *Index) Counts() Counts {
	x.mu.Lock()
	defer x.mu.Unlock()
	c := Counts{Dead: len(x.dead), Pending: x.total - len(x.dead)}
	for _, q := range x.queues {
		for _, e := range q {
			if !e.Dead {
				if c.OldestPending.IsZero() || e.Time.Before(c.OldestPending) {
					c.OldestPending = e.Time
				}
				break // a queue is in order: its first pending event is its oldest
			}
		}
	}
	return c
}
