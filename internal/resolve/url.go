package resolve

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// Resolution by URL: RFC 3986 normalization, then matching a request to the effective services by
// scheme, host, port, whole-segment path prefix and realm. Pure functions.

// defaultPorts are the ports a URL without one means, per scheme.
var defaultPorts = map[string]string{
	"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21", "sftp": "22", "ssh": "22",
	"ldap": "389", "ldaps": "636", "smtp": "25", "smtps": "465", "imap": "143", "imaps": "993",
	"postgres": "5432", "postgresql": "5432", "mysql": "3306", "mongodb": "27017", "redis": "6379",
	"amqp": "5672", "amqps": "5671",
}

// endpoint is the part of a URL that matching compares.
type endpoint struct {
	scheme, host, port, path string
}

func ParseEndpoint(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return endpoint{}, fmt.Errorf("url must be an absolute URL with a scheme and a host")
	}
	if why := credential.AmbiguousPath(u.EscapedPath()); why != "" {
		return endpoint{}, fmt.Errorf("url: its path holds %s, which servers read in different ways: refused as ambiguous, so that credentials never follow a path other than the one matched", why)
	}
	e := endpoint{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if e.port == "" {
		e.port = defaultPorts[e.scheme]
	}
	e.host = strings.TrimSuffix(e.host, ".")
	if ip := net.ParseIP(e.host); ip != nil {
		e.host = ip.String()
	}
	e.path = strings.TrimRight(credential.NormalizePath(u.EscapedPath()), "/")
	return e, nil
}

// AmbiguousRealmError: a request without a realm matches, at its longest path, services with
// different realms and none without one. The engine asks again with the realm it was challenged
// for.
type AmbiguousRealmError struct{ realms []string }

func (e AmbiguousRealmError) Error() string {
	return fmt.Sprintf("the url matches services with different realms (%s) and none without a realm: ask again with realm set to the one the service challenged for",
		strings.Join(e.realms, ", "))
}

// pathCovers says whether a service path is a whole-segment prefix of a request path.
func pathCovers(servicePath, requestPath string) bool {
	return servicePath == "" || requestPath == servicePath || strings.HasPrefix(requestPath, servicePath+"/")
}

// MatchURL picks the service whose URL covers the request: same scheme, host and port, then the
// longest whole-segment path prefix. Realms: a request with a realm never matches a service with
// another one, and at equal length prefers the service with its realm; a request without a realm
// matches services with or without one, prefers one without at equal length, and several with
// different realms (and none without) are ambiguous. The candidates say why each service was or
// was not taken.
func MatchURL(services []SourcedService, rawURL, realm string) (*credential.Service, string, []map[string]any, error) {
	req, err := ParseEndpoint(rawURL)
	if err != nil {
		return nil, "", nil, err
	}
	var matched []int // indexes into services
	pathLen := map[int]int{}
	candidates := make([]map[string]any, len(services))
	for i := range services {
		s := services[i]
		c := map[string]any{"service": s.Service.Name, "source": s.Source}
		candidates[i] = c
		if s.Service.URL == "" {
			c["matched"], c["reason"] = false, "has no url"
			continue
		}
		se, err := ParseEndpoint(s.Service.URL)
		switch {
		case err != nil:
			c["matched"], c["reason"] = false, "its url does not parse"
			continue
		case se.scheme != req.scheme || se.host != req.host || se.port != req.port:
			c["matched"], c["reason"] = false, "scheme, host or port differ"
			continue
		case !pathCovers(se.path, req.path):
			c["matched"], c["reason"] = false, fmt.Sprintf("path %q does not cover the request's", se.path)
			continue
		case realm != "" && s.Service.Realm != "" && s.Service.Realm != realm:
			c["matched"], c["reason"] = false, fmt.Sprintf("realm %q differs from the request's", s.Service.Realm)
			continue
		}
		c["matched"], c["path_length"] = true, len(se.path)
		matched, pathLen[i] = append(matched, i), len(se.path)
	}
	best, err := pickMatch(services, matched, pathLen, realm)
	if err != nil {
		return nil, "", candidates, err
	}
	candidates[best]["chosen"] = true
	return services[best].Service, services[best].Source, candidates, nil
}

// pickMatch chooses among the matching services (in layer order): the longest path, then by realm.
func pickMatch(services []SourcedService, matched []int, pathLen map[int]int, realm string) (int, error) {
	longest := -1
	for _, i := range matched {
		longest = max(longest, pathLen[i])
	}
	var withRealm, without []int
	realms := map[string]bool{}
	for _, i := range matched {
		if pathLen[i] != longest {
			continue
		}
		if r := services[i].Service.Realm; r != "" {
			withRealm = append(withRealm, i)
			realms[r] = true
		} else {
			without = append(without, i)
		}
	}
	switch {
	case longest < 0:
		return 0, ErrNoService
	case realm != "" && len(withRealm) > 0: // they all have the request's realm
		return withRealm[0], nil
	case len(without) > 0:
		return without[0], nil
	case len(realms) > 1:
		names := make([]string, 0, len(realms))
		for r := range realms {
			names = append(names, fmt.Sprintf("%q", r))
		}
		sort.Strings(names)
		return 0, AmbiguousRealmError{realms: names}
	}
	return withRealm[0], nil
}
