package pecreds

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The plugin's limits, in one place (DESIGN.md, the end of "Paths"). What an outsider may send is
// bounded at the edge, before anything is stored or cached: names, credentials, layers and the
// credential types' own limits live in internal/credential/limits.go, which parsing enforces; the
// top-level fields of a request are bounded here (request_fields.go). The plugin's memory is
// bounded in bytes as well as in entries: the caches, and each process's pending events.

// fieldByteLimits bound top-level string fields of a request; any other field, whatever its type,
// is bounded by maxFieldBytes.
var fieldByteLimits = map[string]int{
	"owner":           credential.MaxOwnerBytes,
	"owner_entity_id": credential.MaxNameLength,
	"message":         credential.MaxTextBytes,
	"description":     credential.MaxTextBytes,
	"label":           credential.MaxTextBytes,
}

// maxFieldBytes bounds any one top-level field as JSON text: a registry's services are the
// largest input, and they are measured exactly as stored later.
const maxFieldBytes = credential.MaxLayerBytes

const (
	// processCacheSize bounds the process, current-credential and task caches in entries: the
	// working set of a busy engine; the rest is read from storage when asked for.
	processCacheSize = 10_000
	// processCacheBytes bounds the process cache in bytes: a process holds its runtime layer (up
	// to 1 MiB) and its current credentials (up to 64 KiB), so entries alone do not bound it.
	processCacheBytes = 48 << 20
	// taskCacheBytes bounds the task cache in bytes.
	taskCacheBytes = 8 << 20
	// maxPendingPerProcess bounds a process's pending events in the Task Manager outbox: past it,
	// its oldest event waiting behind the first gives way (the newest state wins), so one engine
	// host cannot fill the outbox and push out other hosts' events.
	maxPendingPerProcess = 8
)

// processBytes, currentBytes and taskBytes are about what a cached entry takes in memory.
func processBytes(p *lifecycle.Process) int {
	n := 256 + len(p.ID) + len(p.Nonce) + len(p.Definition) + len(p.Owner) + len(p.OwnerEntityID) +
		len(p.HealthReason) + len(p.TaskID) + credential.ServicesApproxBytes(p.Runtime)
	for k := range p.Retried {
		n += 32 + len(k)
	}
	if p.Current != nil {
		n += p.Current.ApproxBytes()
	}
	return n
}

func taskBytes(t *lifecycle.Task) int {
	return 256 + len(t.ID) + len(t.ProcessID) + len(t.Service) + len(t.Reason) + len(t.Owner) + len(t.OwnerEntityID) + len(t.CompletedBy)
}

// releaseAfter is how long after refusing an oversized request the plugin hands the memory its
// decoding took back to the system: at most one release in that time, however many arrive.
const releaseAfter = time.Second

// memoryRelease hands the memory of refused oversized requests back to the system. Vault sends a
// request's body to the plugin whole (up to its max_request_size, 32 MiB), and decoding it takes
// a few times that before any handler runs; the Go runtime would keep those pages for minutes,
// so 15 requests of 30 MB left the plugin over 200 MiB larger.
type memoryRelease struct{ scheduled atomic.Bool }

// release hands freed memory back, twice: buffers pooled in a sync.Pool (gRPC's receive buffers
// among them) outlive one collection in the pool's victim cache, and are freed by the second.
func release() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}

// refused is told of a refused request: past maxFieldBytes in all, a release follows shortly.
func (m *memoryRelease) refused(data map[string]any) {
	if credential.RawSize(data) <= maxFieldBytes || !m.scheduled.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(releaseAfter, func() {
		m.scheduled.Store(false)
		release()
	})
	// Again a while later: on a loaded machine the refused request may still have held its body
	// when the first release ran.
	time.AfterFunc(5*releaseAfter, release)
}
