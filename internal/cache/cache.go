// Package cache holds what the plugin reads from Vault storage, typed and bounded: Whole keeps
// every entry of a small set (config-like objects an operator writes: registries, technical
// credentials and their token states), so that a miss is a known absence and costs no storage
// read; Bounded keeps the most recently used entries of a large set (processes, their current
// credentials, tasks) within a count and a budget of bytes, so that memory stays bounded however
// many there are and however large each is. Neither ever holds an absence a request asked about:
// no request can grow memory that is never given back.
//
// No storage here: the caller reads storage on a miss and offers what it read.
package cache

import (
	"hash/fnv"
	"sort"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache is what the storage helpers need of a cache.
type Cache[T any] interface {
	// Lookup answers a cached value; known is false when storage must be read, and the ticket
	// then says what the cache had seen of name before that read.
	Lookup(name string) (v *T, known bool, t Ticket)
	// Offer keeps a value read from storage, unless name was written, deleted or forgotten since
	// the ticket was given (a stale read never overwrites a newer value).
	Offer(name string, v *T, t Ticket)
	// Put records a value just written (nil: just deleted).
	Put(name string, v *T)
	// Forget drops what is cached of name: it changed underneath (an invalidation).
	Forget(name string)
}

// Ticket is a cache's generation when a read of storage began.
type Ticket uint64

// Whole holds every entry of a small set, or nothing: once filled, a name it lacks does not exist.
type Whole[T any] struct {
	mu     sync.RWMutex
	gen    Ticket
	loaded bool
	m      map[string]*T
}

// Lookup answers the entry, or a known absence once filled; before, known is false.
func (w *Whole[T]) Lookup(name string) (*T, bool, Ticket) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.loaded {
		return nil, false, w.gen
	}
	return w.m[name], true, w.gen
}

// Offer does nothing: a Whole cache is filled whole (FillIf), never one entry at a time.
func (w *Whole[T]) Offer(string, *T, Ticket) {}

// Ticket is the set's generation now, for a fill that starts reading storage.
func (w *Whole[T]) Ticket() Ticket {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.gen
}

// Loaded says whether the set is held whole.
func (w *Whole[T]) Loaded() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.loaded
}

// FillIf holds all, every entry of the set as read from storage, unless the set changed since the
// ticket was given.
func (w *Whole[T]) FillIf(all map[string]*T, t Ticket) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == t {
		w.m, w.loaded = all, true
	}
}

// Put records a written entry (nil: deleted). Before the set is filled there is nothing to keep.
func (w *Whole[T]) Put(name string, v *T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	if !w.loaded {
		return
	}
	if v == nil {
		delete(w.m, name)
	} else {
		w.m[name] = v
	}
}

// Forget drops the whole set: one entry changed underneath, and the set is read again on next use
// (it is small).
func (w *Whole[T]) Forget(string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	w.m, w.loaded = nil, false
}

// Each calls fn for every entry in name order (filled only; it answers false before).
func (w *Whole[T]) Each(fn func(name string, v *T)) bool {
	w.mu.RLock()
	if !w.loaded {
		w.mu.RUnlock()
		return false
	}
	names := make([]string, 0, len(w.m))
	for n := range w.m {
		names = append(names, n)
	}
	m := w.m
	w.mu.RUnlock()
	sort.Strings(names)
	for _, n := range names {
		fn(n, m[n])
	}
	return true
}

// Bounded holds at most its size of entries and its budget of bytes, the least recently used
// leaving first; it never holds an absence, nor an entry larger than its whole budget.
type Bounded[T any] struct {
	c        *lru.Cache[string, sized[T]]
	sizeOf   func(*T) int
	maxBytes int64
	bytes    atomic.Int64 // of the entries held; the eviction callback takes an entry's back
	// gens are generations by a hash of the name, so that a write to one entry rarely stops
	// another's fill.
	mu   sync.Mutex // guards gens and every change of c
	gens [stripes]Ticket
}

// sized is an entry with its size, as sizeOf measured it when it came in.
type sized[T any] struct {
	v *T
	n int64
}

// NewBounded makes a cache of at most size entries and maxBytes bytes, as sizeOf counts an entry.
func NewBounded[T any](size, maxBytes int, sizeOf func(*T) int) *Bounded[T] {
	b := &Bounded[T]{sizeOf: sizeOf, maxBytes: int64(maxBytes)}
	c, err := lru.NewWithEvict(size, func(_ string, e sized[T]) { b.bytes.Add(-e.n) })
	if err != nil {
		panic(err) // only for a size below 1: a programming error
	}
	b.c = c
	return b
}

// stripes is how many generation slots a Bounded cache keeps.
const stripes = 256

// stripe is the generation slot of a name: its FNV-1a hash, modulo the slots.
func stripe(name string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name)) // a hash.Hash never fails to write
	return int(h.Sum32() % stripes)
}

// Lookup answers a held entry; a miss (never held, or evicted) is unknown.
func (b *Bounded[T]) Lookup(name string) (*T, bool, Ticket) {
	b.mu.Lock()
	t := b.gens[stripe(name)]
	b.mu.Unlock()
	e, ok := b.c.Get(name)
	return e.v, ok, t
}

// Offer holds a value read from storage, unless its name changed since the ticket.
func (b *Bounded[T]) Offer(name string, v *T, t Ticket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v != nil && b.gens[stripe(name)] == t {
		b.addLocked(name, v)
	}
}

// Put holds an entry just written; nil (deleted) drops it instead.
func (b *Bounded[T]) Put(name string, v *T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gens[stripe(name)]++
	if v == nil {
		b.c.Remove(name)
		return
	}
	b.addLocked(name, v)
}

// addLocked holds an entry, then lets the least recently used go until the bytes fit; an entry
// larger than the whole budget is not held at all. The caller holds b.mu.
func (b *Bounded[T]) addLocked(name string, v *T) {
	n := int64(b.sizeOf(v))
	if n > b.maxBytes {
		b.c.Remove(name)
		return
	}
	if old, ok := b.c.Peek(name); ok {
		b.bytes.Add(-old.n) // a replaced value is not evicted: no callback
	}
	b.c.Add(name, sized[T]{v: v, n: n})
	b.bytes.Add(n)
	for b.bytes.Load() > b.maxBytes {
		if _, _, ok := b.c.RemoveOldest(); !ok {
			return
		}
	}
}

// Forget drops an entry.
func (b *Bounded[T]) Forget(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gens[stripe(name)]++
	b.c.Remove(name)
}

// Len is how many entries are held.
func (b *Bounded[T]) Len() int { return b.c.Len() }

// Bytes is the size of the entries held, as sizeOf counted them.
func (b *Bounded[T]) Bytes() int64 { return b.bytes.Load() }
