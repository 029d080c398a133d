package credential

import (
	"encoding/json"
	"fmt"
)

// The limits of DESIGN.md (the end of "Paths"), in items and in bytes: every input an outsider
// sends is bounded here, and checked before anything is stored. The plugin's memory bounds live
// in the root's limits.go.
const (
	// MaxNameLength bounds names: registries, technical credentials, services, processes, tasks.
	MaxNameLength = 128
	// MaxServices bounds a registry's or a runtime layer's services; maxServiceCredential a
	// service's credentials.
	MaxServices          = 1000
	maxServiceCredential = 32
	// MaxCredentialBytes bounds one credential in its API form, PEM included: each secret is
	// bounded with it.
	MaxCredentialBytes = 64 << 10
	maxPEMBytes        = MaxCredentialBytes
	// MaxLayerBytes bounds a registry's or a runtime layer's services as stored (JSON).
	MaxLayerBytes = 1 << 20
	// MaxTextBytes bounds free text: message, label, description, health_reason.
	MaxTextBytes = 1 << 10
	// MaxOwnerBytes bounds a process's owner, copied into its tasks and events.
	MaxOwnerBytes = 256
	// MaxEventBytes bounds one Task Manager event's body.
	MaxEventBytes = 4 << 10
)

// CheckBytes refuses a value longer than limit bytes; the error names the field and the limit,
// never the value.
func CheckBytes(field, v string, limit int) error {
	if len(v) > limit {
		return fmt.Errorf("%s is %d bytes long; the limit is %s", field, len(v), byteCount(limit))
	}
	return nil
}

// byteCount says a limit in words: "1024 bytes (1 KiB)".
func byteCount(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d bytes (%d MiB)", n, n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d bytes (%d KiB)", n, n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkCredentialSize bounds a credential before it is parsed, naming a field that alone passes
// the bound.
func checkCredentialSize(obj map[string]any) error {
	n := RawSize(obj)
	if n <= MaxCredentialBytes {
		return nil
	}
	for k, v := range obj {
		if s, ok := v.(string); ok && len(s) > MaxCredentialBytes {
			return fmt.Errorf("field %q is %d bytes long; the limit is %s a credential, PEM included", k, len(s), byteCount(MaxCredentialBytes))
		}
	}
	return fmt.Errorf("the credential takes about %d bytes; the limit is %s a credential, PEM included", n, byteCount(MaxCredentialBytes))
}

// RawSize is about what a decoded JSON value takes as JSON text: its strings' and keys' bytes
// and a little for each item. It bounds work before parsing: a huge input is refused without
// being copied into credentials first.
func RawSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 2
	case map[string]any:
		n := 2
		for k, item := range x {
			n += len(k) + 4 + RawSize(item)
		}
		return n
	case []any:
		n := 2
		for _, item := range x {
			n += 1 + RawSize(item)
		}
		return n
	case []string:
		n := 2
		for _, s := range x {
			n += len(s) + 3
		}
		return n
	}
	return 8 // numbers, booleans, null
}

// CheckLayer refuses services that take more than MaxLayerBytes as stored. what names the place:
// "services" for a registry, "the runtime layer" for a process.
func CheckLayer(what string, services []Service) error {
	b, err := json.Marshal(services)
	if err != nil {
		return fmt.Errorf("%s: measuring it: %v", what, err)
	}
	if len(b) > MaxLayerBytes {
		return fmt.Errorf("%s would take %d bytes as stored; the limit is %s", what, len(b), byteCount(MaxLayerBytes))
	}
	return nil
}

// ApproxBytes is about what a credential takes in memory: its strings and a little for each.
func (c Credential) ApproxBytes() int {
	n := 64 + len(c.Type) + len(c.Label)
	for k, v := range c.Fields {
		n += 32 + len(k) + len(v)
	}
	for k, l := range c.Lists {
		n += 32 + len(k)
		for _, v := range l {
			n += 16 + len(v)
		}
	}
	return n
}

// ServicesApproxBytes is about what services take in memory.
func ServicesApproxBytes(services []Service) int {
	n := 0
	for _, s := range services {
		n += 96 + len(s.Name) + len(s.Description) + len(s.URL) + len(s.Realm)
		for _, c := range s.Credentials {
			n += c.ApproxBytes()
		}
	}
	return n
}
