// Package resolve decides which credentials a process uses for a service: the layering (runtime,
// definition, global registries), the in-list order with a reason for every skipped entry, and
// URL matching. Pure functions: no storage, clock or network; what lives outside the layers (a
// technical credential's material, the current credentials) comes in through a Lookup.
package resolve

import (
	"errors"
	"fmt"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Credential statuses of a process's current credentials.
const (
	CurrentKept    = "kept"
	CurrentLost    = "lost"
	CurrentExpired = "expired"
	CurrentNone    = "none"
)

// Layer is one place a service may be defined, most specific first.
type Layer struct {
	Source   string // "runtime", "definition:<registry>" or "global:<registry>"
	Services []credential.Service
	Missing  bool // the registry does not exist
}

// Lookup gives resolution what lives outside the layers.
type Lookup interface {
	// TechnicalMaterial is a technical credential's usable material; an Unusable error says why
	// there is none, any other error is a failure (storage) that ends the resolve.
	TechnicalMaterial(name string) (map[string]any, error)
	// Current is the process's current credentials and their status (kept, lost, expired, none).
	Current() (credential.Credential, string)
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
	// CurrentUnusable says a current entry was skipped because the credentials were lost or
	// expired (not because the mode keeps none).
	CurrentUnusable string
}

// ErrNoService: no layer defines the service, or no service matches the URL.
var ErrNoService = errors.New("no service")

// Unusable is why a credential cannot be used: a skip reason, not a failure.
type Unusable string

func (u Unusable) Error() string { return string(u) }

// Resolve finds the service and its usable credentials. An error means no layer has the service;
// a Resolution without Found has the service but nothing usable (the trace says why).
func Resolve(layers []Layer, q Query, lk Lookup, now time.Time) (*Resolution, error) {
	res := &Resolution{}
	var svc *credential.Service
	if q.URL != "" {
		var err error
		svc, res.Source, res.Candidates, err = MatchURL(EffectiveServices(layers), q.URL, q.Realm)
		if err != nil {
			return res, err
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
		return res, ErrNoService
	}
	res.Service = svc.Name
	for i, c := range svc.Credentials {
		if len(res.Found) > 0 && !q.All && !q.Explain {
			break // the answer is known; the rest would only fetch what nobody asked for
		}
		t := Tried{Index: i, Type: c.Type, Name: c.Fields["name"]}
		m, reason, err := usableMaterial(c, lk, now)
		if err != nil {
			return nil, err
		}
		switch {
		case reason != "":
			t.Skipped = reason
			if c.Type == "current" {
				if _, status := lk.Current(); status == CurrentLost || status == CurrentExpired {
					res.CurrentUnusable = status
				}
			}
		case q.Type != "" && m["type"] != q.Type:
			t.Skipped = fmt.Sprintf("of type %v, not %s", m["type"], q.Type)
		case len(res.Found) > 0 && !q.All:
			t.Skipped = "not needed: an earlier credential is usable"
		default:
			t.Used = true
			res.Found = append(res.Found, Usable{Index: i, Material: m})
		}
		res.Tried = append(res.Tried, t)
	}
	return res, nil
}

func svcName(svc *credential.Service, fallback string) string {
	if svc != nil {
		return svc.Name
	}
	return fallback
}

// usableMaterial is an entry's material, or the reason it cannot be used, or a failure.
func usableMaterial(c credential.Credential, lk Lookup, now time.Time) (map[string]any, string, error) {
	switch c.Type {
	case "technical":
		m, err := lk.TechnicalMaterial(c.Fields["name"])
		var u Unusable
		if errors.As(err, &u) {
			return nil, u.Error(), nil
		}
		return m, "", err
	case "current":
		cur, status := lk.Current()
		switch status {
		case CurrentKept:
			return cur.Material(), "", nil
		case CurrentNone:
			return nil, "the process keeps no current credentials", nil
		case CurrentLost:
			return nil, "the current credentials are lost (kept in memory only, and the plugin restarted)", nil
		default:
			return nil, "the current credentials have expired", nil
		}
	}
	if exp, ok := c.Fields["expires_at"]; ok {
		if t, err := time.Parse(time.RFC3339, exp); err == nil && !now.Before(t) {
			return nil, "expired at " + exp, nil
		}
	}
	return c.Material(), "", nil
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
