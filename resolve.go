package pecreds

import (
	"errors"
	"fmt"
	"time"
)

// This file resolves a service for a process: the layering (runtime, definition, global
// registries), the in-list order with a reason for every skipped entry, and URL matching. Pure
// functions: what they need of storage comes in through a lookup.

// Credential statuses of a process's current credentials.
const (
	currentKept    = "kept"
	currentLost    = "lost"
	currentExpired = "expired"
	currentNone    = "none"
)

// layer is one place a service may be defined, most specific first.
type layer struct {
	Source   string // "runtime", "definition:<registry>" or "global:<registry>"
	Services []Service
	Missing  bool // the registry does not exist
}

// lookup gives resolution what lives outside the layers.
type lookup interface {
	// technicalMaterial is a technical credential's usable material; an unusable error says why
	// there is none, any other error is a failure (storage) that ends the resolve.
	technicalMaterial(name string) (map[string]any, error)
	// current is the process's current credentials and their status (kept, lost, expired, none).
	current() (Credential, string)
}

// resolveQuery is what a resolve asks for.
type resolveQuery struct {
	Service string // by name, or
	URL     string // by URL,
	Realm   string // with an optional realm
	Type    string // keep only credentials of this type
	All     bool
	Explain bool // try every entry, for the trace
}

// tried is one credential entry looked at, and the verdict.
type tried struct {
	Index   int    `json:"index"`
	Type    string `json:"type"`
	Name    string `json:"technical,omitempty"`
	Used    bool   `json:"used"`
	Skipped string `json:"skipped,omitempty"`
}

// usable is one credential that may be used.
type usable struct {
	Index    int
	Material map[string]any
}

// resolution is a resolve's outcome and its trace.
type resolution struct {
	Service    string
	Source     string
	Found      []usable
	Layers     []map[string]any
	Candidates []map[string]any
	Tried      []tried
	// CurrentUnusable says a current entry was skipped because the credentials were lost or
	// expired (not because the mode keeps none).
	CurrentUnusable string
}

// errNoService: no layer defines the service, or no service matches the URL.
var errNoService = errors.New("no service")

// unusable is why a credential cannot be used: a skip reason, not a failure.
type unusable string

func (u unusable) Error() string { return string(u) }

// resolve finds the service and its usable credentials. An error means no layer has the service;
// a resolution without Found has the service but nothing usable (the trace says why).
func resolve(layers []layer, q resolveQuery, lk lookup, now time.Time) (*resolution, error) {
	res := &resolution{}
	var svc *Service
	if q.URL != "" {
		var err error
		svc, res.Source, res.Candidates, err = matchURL(effectiveServices(layers), q.URL, q.Realm)
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
		return res, errNoService
	}
	res.Service = svc.Name
	for i, c := range svc.Credentials {
		if len(res.Found) > 0 && !q.All && !q.Explain {
			break // the answer is known; the rest would only fetch what nobody asked for
		}
		t := tried{Index: i, Type: c.Type, Name: c.Fields["name"]}
		m, reason, err := usableMaterial(c, lk, now)
		if err != nil {
			return nil, err
		}
		switch {
		case reason != "":
			t.Skipped = reason
			if c.Type == "current" {
				if _, status := lk.current(); status == currentLost || status == currentExpired {
					res.CurrentUnusable = status
				}
			}
		case q.Type != "" && m["type"] != q.Type:
			t.Skipped = fmt.Sprintf("of type %v, not %s", m["type"], q.Type)
		case len(res.Found) > 0 && !q.All:
			t.Skipped = "not needed: an earlier credential is usable"
		default:
			t.Used = true
			res.Found = append(res.Found, usable{Index: i, Material: m})
		}
		res.Tried = append(res.Tried, t)
	}
	return res, nil
}

func svcName(svc *Service, fallback string) string {
	if svc != nil {
		return svc.Name
	}
	return fallback
}

// usableMaterial is an entry's material, or the reason it cannot be used, or a failure.
func usableMaterial(c Credential, lk lookup, now time.Time) (map[string]any, string, error) {
	switch c.Type {
	case "technical":
		m, err := lk.technicalMaterial(c.Fields["name"])
		var u unusable
		if errors.As(err, &u) {
			return nil, u.Error(), nil
		}
		return m, "", err
	case "current":
		cur, status := lk.current()
		switch status {
		case currentKept:
			return cur.Material(), "", nil
		case currentNone:
			return nil, "the process keeps no current credentials", nil
		case currentLost:
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

func hasService(services []Service, name string) bool {
	for _, s := range services {
		if s.Name == name {
			return true
		}
	}
	return false
}

// findService is the service of the most specific layer that has it.
func findService(layers []layer, name string) (*Service, string) {
	for _, l := range layers {
		for i := range l.Services {
			if l.Services[i].Name == name {
				return &l.Services[i], l.Source
			}
		}
	}
	return nil, ""
}

// sourcedService is a service with the layer it comes from.
type sourcedService struct {
	Service *Service
	Source  string
}

// effectiveServices is every service name once, as its most specific layer defines it, in
// layer order.
func effectiveServices(layers []layer) []sourcedService {
	var out []sourcedService
	seen := map[string]bool{}
	for _, l := range layers {
		for i := range l.Services {
			s := &l.Services[i]
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, sourcedService{Service: s, Source: l.Source})
			}
		}
	}
	return out
}
