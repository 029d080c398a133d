// Package resolve decides which credentials a process uses for a service: the layering (runtime,
// definition, global registries), the in-list order with a reason for every skipped entry, and
// URL matching. Pure functions: no storage, clock or network. What lives outside the layers (the
// technical credentials' states, the current credentials) comes in as a Snapshot the caller took;
// refreshing a token is the caller's business: a resolution names the technical credentials a
// token request could make usable (Refresh), and the caller may fetch and choose again.
package resolve

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Credential statuses of a process's current credentials.
const (
	CurrentKept    = "kept"
	CurrentLost    = "lost"
	CurrentExpired = "expired"
	CurrentNone    = "none"
	// CurrentRefreshing: a grant whose access token has expired, and whose refresh token the
	// plugin is still trying (its provider unreachable): not usable now, but soon without
	// anyone's act, so nothing breaks and a caller answers "retry".
	CurrentRefreshing = "refreshing"
)

// Layer is one place a service may be defined, most specific first.
type Layer struct {
	Source   string // "runtime", "definition:<registry>" or "global:<registry>"
	Services []credential.Service
	Missing  bool // the registry does not exist
}

// Snapshot is what resolution needs beyond the layers, taken by the caller beforehand.
type Snapshot struct {
	// Technical holds the states of the technical credentials the service names (Match.Technicals);
	// a name not here does not exist.
	Technical map[string]Technical
	// Current is the process's current credentials, with their status (kept, lost, expired, none).
	Current       credential.Credential
	CurrentStatus string
	// CurrentRetryAt and CurrentWhy: for a refreshing grant, when its refresh is tried next and
	// why the last one failed (our words, never the provider's).
	CurrentRetryAt time.Time
	CurrentWhy     string
}

// Technical is a technical credential as resolution sees it: usable material, or why not.
type Technical struct {
	Material map[string]any // usable now; nil when not
	Unusable string         // why there is no material
	// NeedsToken: no valid token is stored, and a token request may give one. Resolution skips
	// the entry and names it in Resolution.Refresh.
	NeedsToken bool
	// Pending: its token request is in flight and was not waited for; RetryAt: no token request
	// may be made before then (backoff). Either way the entry is not usable now but may be soon
	// without anyone's act, so a caller that finds nothing usable answers "retry", not "no".
	Pending bool
	RetryAt time.Time
}

// Query is what a resolve asks for.
type Query struct {
	Service string // by name, or
	URL     string // by URL,
	Realm   string // with an optional realm
	Type    string // keep only credentials of this type
	All     bool
	Explain bool // try every entry, for the trace
}

// Tried is one credential entry looked at, and the verdict.
type Tried struct {
	Index   int    `json:"index"`
	Type    string `json:"type"`
	Name    string `json:"technical,omitempty"`
	Used    bool   `json:"used"`
	Skipped string `json:"skipped,omitempty"`
}

// Usable is one credential that may be used.
type Usable struct {
	Index    int
	Material map[string]any
}

// Resolution is a resolve's outcome and its trace.
type Resolution struct {
	Service    string
	Source     string
	Found      []Usable
	Layers     []map[string]any
	Candidates []map[string]any
	Tried      []Tried
	// Refresh names the technical credentials skipped for want of a token, which a token request
	// may make usable: the caller may fetch and Choose again.
	Refresh []string
	// Pending names the technical credentials skipped while their token request is in flight;
	// RetryAt is the earliest time a skipped technical credential may get a token again.
	Pending []string
	RetryAt time.Time
	// CurrentUnusable says a current entry was skipped because the credentials were lost or
	// expired (not because the mode keeps none).
	CurrentUnusable string
}

// ErrNoService: no layer defines the service, or no service matches the URL.
var ErrNoService = errors.New("no service")

// Match is the service a query finds, before any credential is looked at.
type Match struct {
	service *credential.Service
	found   Resolution // Service, Source, Layers, Candidates
}

// Technicals are the names of the technical credentials the service's list names, in order,
// each once: the ones a Snapshot must hold.
func (m *Match) Technicals() []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range m.service.Credentials {
		if n := c.Fields["name"]; c.Type == "technical" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

// Find finds the service a query asks for: by name, the most specific layer that has it; by URL,
// the best match among the effective services. With ErrNoService or an AmbiguousRealmError, the
// Resolution still carries the layers and candidates looked at, for the error's message.
func Find(layers []Layer, q Query) (*Match, *Resolution, error) {
	res := &Resolution{}
	var svc *credential.Service
	if q.URL != "" {
		var err error
		svc, res.Source, res.Candidates, err = MatchURL(EffectiveServices(layers), q.URL, q.Realm)
		if err != nil {
			return nil, res, err
		}
	} else {
		svc, res.Source = findService(layers, q.Service)
	}
	for _, l := range layers {
		entry := map[string]any{"source": l.Source, "has_service": hasService(l.Services, svcName(svc, q.Service))}
		if l.Missing {
			entry["missing"] = true
		}
		res.Layers = append(res.Layers, entry)
	}
	if svc == nil {
		return nil, res, ErrNoService
	}
	res.Service = svc.Name
	return &Match{service: svc, found: *res}, res, nil
}

// Choose walks the service's list in order and answers the first usable credential (with all,
// every one), with a reason for every entry skipped. Without all or explain it stops at the
// first usable one, so nothing after it is asked for. A technical entry that needs a token is
// skipped and named in Refresh.
func Choose(m *Match, q Query, snap Snapshot, now time.Time) *Resolution {
	res := m.found
	for i, c := range m.service.Credentials {
		if len(res.Found) > 0 && !q.All && !q.Explain {
			break // the answer is known; the rest would only fetch what nobody asked for
		}
		t := Tried{Index: i, Type: c.Type, Name: c.Fields["name"]}
		mat, reason := usableMaterial(c, snap, now)
		switch {
		case reason != "":
			t.Skipped = reason
			if c.Type == "technical" {
				res.noteSkipped(t.Name, snap.Technical[t.Name])
			}
			if c.Type == "current" && (snap.CurrentStatus == CurrentLost || snap.CurrentStatus == CurrentExpired) {
				res.CurrentUnusable = snap.CurrentStatus
			}
			if c.Type == "current" && snap.CurrentStatus == CurrentRefreshing {
				res.noteRetry(snap.CurrentRetryAt)
			}
		case q.Type != "" && mat["type"] != q.Type:
			t.Skipped = fmt.Sprintf("of type %v, not %s", mat["type"], q.Type)
		case len(res.Found) > 0 && !q.All:
			t.Skipped = "not needed: an earlier credential is usable"
		default:
			t.Used = true
			res.Found = append(res.Found, Usable{Index: i, Material: mat})
		}
		res.Tried = append(res.Tried, t)
	}
	return &res
}

// noteSkipped records what a skipped technical credential may become: usable after a token
// request (Refresh), after the one in flight (Pending), or not before RetryAt.
func (res *Resolution) noteSkipped(name string, tech Technical) {
	switch {
	case tech.Pending && !slices.Contains(res.Pending, name):
		res.Pending = append(res.Pending, name)
	case tech.NeedsToken && !slices.Contains(res.Refresh, name):
		res.Refresh = append(res.Refresh, name)
	}
	res.noteRetry(tech.RetryAt)
}

// noteRetry keeps the earliest time something skipped may become usable.
func (res *Resolution) noteRetry(at time.Time) {
	if !at.IsZero() && (res.RetryAt.IsZero() || at.Before(res.RetryAt)) {
		res.RetryAt = at
	}
}

func svcName(svc *credential.Service, fallback string) string {
	if svc != nil {
		return svc.Name
	}
	return fallback
}

// usableMaterial is an entry's material, or the reason it cannot be used.
func usableMaterial(c credential.Credential, snap Snapshot, now time.Time) (map[string]any, string) {
	switch c.Type {
	case "technical":
		name := c.Fields["name"]
		tech, ok := snap.Technical[name]
		switch {
		case !ok:
			return nil, fmt.Sprintf("technical credential %q does not exist", name)
		case tech.Material == nil:
			return nil, tech.Unusable
		}
		return tech.Material, ""
	case "current":
		switch snap.CurrentStatus {
		case CurrentKept:
			return snap.Current.Material(), ""
		case CurrentNone:
			return nil, "the process keeps no current credentials"
		case CurrentLost:
			return nil, "the current credentials are lost (kept in memory only, and the plugin restarted)"
		case CurrentRefreshing:
			why := "the current grant's access token has expired and its refresh has not succeeded yet"
			if snap.CurrentWhy != "" {
				why += ": " + snap.CurrentWhy
			}
			return nil, why
		default:
			return nil, "the current credentials have expired"
		}
	}
	if c.Expired(now) {
		return nil, "expired at " + c.Fields["expires_at"]
	}
	return c.Material(), ""
}

func hasService(services []credential.Service, name string) bool {
	for _, s := range services {
		if s.Name == name {
			return true
		}
	}
	return false
}

// findService is the service of the most specific layer that has it.
func findService(layers []Layer, name string) (*credential.Service, string) {
	for _, l := range layers {
		for i := range l.Services {
			if l.Services[i].Name == name {
				return &l.Services[i], l.Source
			}
		}
	}
	return nil, ""
}

// SourcedService is a service with the layer it comes from.
type SourcedService struct {
	Service *credential.Service
	Source  string
}

// EffectiveServices is every service name once, as its most specific layer defines it, in
// layer order.
func EffectiveServices(layers []Layer) []SourcedService {
	var out []SourcedService
	seen := map[string]bool{}
	for _, l := range layers {
		for i := range l.Services {
			s := &l.Services[i]
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, SourcedService{Service: s, Source: l.Source})
			}
		}
	}
	return out
}
