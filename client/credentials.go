package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// A Credentials printed, logged or encoded shows where it came from and the names of its fields,
// never their values: a password, token or key reaches a log, an error or a workflow engine's
// history only if the caller takes it out of Fields itself.

// String describes the credentials without their values.
func (c Credentials) String() string {
	what := c.Type
	if c.Technical != "" {
		what += " " + c.Technical
	}
	return fmt.Sprintf("credentials for %s from %s [%d] %s (fields %s)", c.Service, c.Source, c.Index, what,
		strings.Join(c.fieldNames(), ", "))
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// MarshalJSON leaves the values out: the fields are listed by name. An activity that returned
// its Credentials would put no secret in its engine's history.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"service": c.Service, "source": c.Source, "index": c.Index,
		"type": c.Type, "technical": c.Technical, "fields": c.fieldNames(), "explain": c.Explain})
}

// LogValue leaves the values out of log/slog records too.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("service", c.Service), slog.String("source", c.Source), slog.Int("index", c.Index),
		slog.String("type", c.Type), slog.String("technical", c.Technical), slog.Any("fields", c.fieldNames()))
}

func (c Credentials) fieldNames() []string { return slices.Sorted(maps.Keys(c.Fields)) }
