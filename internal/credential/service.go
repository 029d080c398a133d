package credential

import (
	"fmt"
	"net/url"
	"strings"
)

// This file holds the external service as registries and runtime layers list it: its schema,
// validation and redaction. It has no storage access.

// Service is an external service and the ordered credentials usable to access it.
type Service struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	URL         string       `json:"url,omitempty"`
	Realm       string       `json:"realm,omitempty"`
	Credentials []Credential `json:"credentials"`
}

var serviceKeys = map[string]bool{"name": true, "description": true, "url": true, "realm": true, "credentials": true}

// ParseServices validates a list of services in its API form: a JSON list, or JSON text holding
// one, for a registry (UseRegistry) or a runtime layer (UseRuntime). Errors name the place
// ("services[2] (crm).credentials[0]: ...").
func ParseServices(raw any, use Use) ([]Service, error) {
	if raw == nil {
		return nil, nil
	}
	items, err := decodeList(raw)
	if err != nil {
		return nil, fmt.Errorf("services: %v", err)
	}
	if len(items) > MaxServices {
		return nil, fmt.Errorf("services: %d services given; the limit is %d", len(items), MaxServices)
	}
	if n := RawSize(items); n > MaxLayerBytes {
		return nil, fmt.Errorf("services take about %d bytes; the limit is %s", n, byteCount(MaxLayerBytes))
	}
	out := make([]Service, 0, len(items))
	seen := make(map[string]int, len(items))
	for i, item := range items {
		s, err := parseService(item, use)
		if err != nil {
			return nil, fmt.Errorf("services[%d]%s: %v", i, nameSuffix(item), err)
		}
		if j, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("services[%d]: name %q is already used by services[%d]; service names are unique in a registry", i, s.Name, j)
		}
		seen[s.Name] = i
		out = append(out, s)
	}
	return out, nil
}

// nameSuffix names an item in an error when it has a valid name, to help find it in a long list.
func nameSuffix(item any) string {
	if m, ok := item.(map[string]any); ok {
		if n, ok := m["name"].(string); ok && ValidateName("name", n) == nil {
			return " (" + n + ")"
		}
	}
	return ""
}

func parseService(raw any, use Use) (Service, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return Service{}, err
	}
	for k := range obj {
		if !serviceKeys[k] {
			return Service{}, fmt.Errorf("unknown field %q: a service has name, description, url, realm and credentials", k)
		}
	}
	var s Service
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &s.Name}, {"description", &s.Description}, {"url", &s.URL}, {"realm", &s.Realm}} {
		if *f.dst, err = textValue(f.key, obj[f.key]); err != nil {
			return Service{}, err
		}
	}
	if err := ValidateName("field \"name\"", s.Name); err != nil {
		return Service{}, err
	}
	if err := CheckBytes(`field "description"`, s.Description, MaxTextBytes); err != nil {
		return Service{}, err
	}
	if s.URL != "" {
		if err := checkServiceURL(s.URL); err != nil {
			return Service{}, err
		}
	}
	s.Credentials, err = parseCredentialList(obj["credentials"], use)
	if err != nil {
		return Service{}, err
	}
	return s, nil
}

func parseCredentialList(raw any, use Use) ([]Credential, error) {
	if raw == nil {
		return nil, fmt.Errorf("missing field \"credentials\": a service lists at least one credential")
	}
	items, err := decodeList(raw)
	if err != nil {
		return nil, fmt.Errorf("field \"credentials\" %v", err)
	}
	switch {
	case len(items) == 0:
		return nil, fmt.Errorf("field \"credentials\" is empty: a service lists at least one credential")
	case len(items) > maxServiceCredential:
		return nil, fmt.Errorf("field \"credentials\" has %d entries; the limit is %d a service", len(items), maxServiceCredential)
	}
	out := make([]Credential, 0, len(items))
	for i, item := range items {
		c, err := Parse(item, use)
		if err != nil {
			return nil, fmt.Errorf("credentials[%d]: %v", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkServiceURL accepts an absolute URL that identifies a service: a scheme, a host, an
// optional port and path; no user info, query or fragment, which matching would ignore.
func checkServiceURL(v string) error {
	u, err := url.Parse(v)
	switch {
	case err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("field \"url\" must be an absolute URL with a scheme and a host, such as https://crm.example.com/api")
	case u.User != nil:
		return fmt.Errorf("field \"url\" must not carry user info: put credentials in the credentials list")
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(v, "?#"):
		return fmt.Errorf("field \"url\" must not have a query or a fragment: a service is matched by scheme, host, port and path")
	}
	if why := AmbiguousPath(u.EscapedPath()); why != "" {
		return fmt.Errorf("field \"url\" must not hold %s in its path: servers read such paths in different ways", why)
	}
	return nil
}

// Redacted is the service as reads show it: its credentials without secret values.
func (s Service) Redacted() map[string]any {
	creds := make([]map[string]any, 0, len(s.Credentials))
	for _, c := range s.Credentials {
		creds = append(creds, c.Redacted())
	}
	out := map[string]any{"name": s.Name, "credentials": creds}
	for k, v := range map[string]string{"description": s.Description, "url": s.URL, "realm": s.Realm} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// TechnicalNames lists the technical credentials that services name, each once, in order.
func TechnicalNames(services []Service) []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range services {
		for _, c := range s.Credentials {
			if n := c.Fields["name"]; c.Type == "technical" && !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}
