package pecreds

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfigDefaults(t *testing.T) {
	b, s := getTestBackend(t)
	resp := mustSucceed(t, b, s, logical.ReadOperation, "config", nil)
	want := map[string]any{
		"keep_credentials":  "persistent",
		"global_registries": []string{},
		"process_ttl":       "24h",
		"process_max_ttl":   "0s",
		"task_manager":      true,
		"error_health_mapping": map[string]string{
			"auth_failed": "broken", "credentials_expired": "broken", "credentials_unavailable": "broken",
			"forbidden": "failed", "unavailable": "running",
		},
		"refresh_fraction": 0.67,
		"notify_url":       "",
		"notify_timeout":   "10s",

		"grant_refresh_concurrency": 8,

		"notify_secret_overlap":        "24h",
		"notify_concurrency":           4,
		"notify_max_events":            100000,
		"notify_previous_secret_until": "",
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Errorf("defaults\n got %#v\nwant %#v", resp.Data, want)
	}
}

func TestConfigWrite(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{
		"keep_credentials":     "transient",
		"global_registries":    "common,partners",
		"process_ttl":          "48h",
		"process_max_ttl":      "8760h",
		"error_health_mapping": `{"forbidden": "broken", "quota": "running"}`,
		"notify_url":           "https://tasks.example.com/hook",
		"notify_secret":        hookSecret,
	})
	// A second write changes only what it gives.
	resp := mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"task_manager": false})
	if len(resp.Warnings) != 2 {
		t.Errorf("want a warning for each missing global registry, got %v", resp.Warnings)
	}
	got := mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data
	for k, want := range map[string]any{
		"keep_credentials":  "transient",
		"global_registries": []string{"common", "partners"},
		"process_ttl":       "48h",
		"process_max_ttl":   "8760h",
		"task_manager":      false,
		"notify_url":        "https://tasks.example.com/hook",
	} {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	mapping := got["error_health_mapping"].(map[string]string)
	if mapping["forbidden"] != "broken" || mapping["quota"] != "running" || mapping["auth_failed"] != "broken" {
		t.Errorf("mapping %v: overrides or defaults missing", mapping)
	}
	if _, ok := got["notify_secret"]; ok {
		t.Error("notify_secret is read back")
	}

	// A new mapping replaces the stored overrides; the defaults stay.
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"error_health_mapping": map[string]any{"unavailable": "failed"}})
	mapping = mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data["error_health_mapping"].(map[string]string)
	if mapping["forbidden"] != "failed" || mapping["unavailable"] != "failed" || mapping["quota"] != "" {
		t.Errorf("mapping after replacement: %v", mapping)
	}

	// The cache is dropped when the key changes underneath.
	b.invalidate(context.Background(), "config")
	if got := mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data["keep_credentials"]; got != "transient" {
		t.Errorf("after invalidate keep_credentials = %v", got)
	}
}

func TestConfigRejects(t *testing.T) {
	cases := []struct {
		name string
		data map[string]any
		want []string
	}{
		{"keep mode", map[string]any{"keep_credentials": "forever"}, []string{"keep_credentials", "persistent, transient or none"}},
		{"health", map[string]any{"error_health_mapping": map[string]any{"auth_failed": "sleeping"}}, []string{"error_health_mapping", `"auth_failed"`, "running, broken or failed"}},
		{"health not a string", map[string]any{"error_health_mapping": map[string]any{"auth_failed": 3}}, []string{"error_health_mapping", "running, broken or failed"}},
		{"class", map[string]any{"error_health_mapping": map[string]any{"bad class": "failed"}}, []string{"error_health_mapping", `"bad class" is invalid`, "starting with a letter or digit"}},
		{"class too long", map[string]any{"error_health_mapping": map[string]any{strings.Repeat("c", 129): "failed"}}, []string{"error_health_mapping: error class is 129 characters long; the limit is 128"}},
		{"fraction 1", map[string]any{"refresh_fraction": 1}, []string{"refresh_fraction", "between 0.5 and 0.9"}},
		{"fraction 0", map[string]any{"refresh_fraction": 0}, []string{"refresh_fraction"}},
		{"grant refreshes 0", map[string]any{"grant_refresh_concurrency": 0}, []string{"grant_refresh_concurrency must be between 1 and 64; 0 is not"}},
		{"grant refreshes 65", map[string]any{"grant_refresh_concurrency": 65}, []string{"grant_refresh_concurrency must be between 1 and 64; 65 is not"}},
		{"registry name", map[string]any{"global_registries": "ok,bad/name"}, []string{"global_registries[1]", `"bad/name" is invalid`}},
		{"registry twice", map[string]any{"global_registries": "a,a"}, []string{"global_registries", "twice"}},
		{"ttl over max", map[string]any{"process_ttl": "48h", "process_max_ttl": "24h"}, []string{"process_ttl", "process_max_ttl"}},
		{"ttl zero", map[string]any{"process_ttl": 0}, []string{"process_ttl must be positive"}},
		{"notify url", map[string]any{"notify_url": "tasks.example.com", "notify_secret": hookSecret}, []string{"notify_url must be an absolute https URL"}},
		{"notify secret form", map[string]any{"notify_secret": "plain-hmac-key-42"}, []string{"notify_secret must be whsec_", "does not begin with whsec_"}},
		{"notify secret size", map[string]any{"notify_secret": "whsec_c2hvcnQ="}, []string{"notify_secret must be whsec_", "24 to 64", "encodes 5 bytes"}},
		{"notify overlap", map[string]any{"notify_secret_overlap": "1000h"}, []string{"notify_secret_overlap must be between 0 and 720h"}},
		{"notify concurrency", map[string]any{"notify_concurrency": 0}, []string{"notify_concurrency must be between 1 and 32"}},
		{"notify max events", map[string]any{"notify_max_events": 0}, []string{"notify_max_events must be between 1 and 1000000"}},
		{"notify secret", map[string]any{"notify_url": "https://tasks.example.com"}, []string{"notify_secret is required"}},
		{"notify timeout", map[string]any{"notify_timeout": "500ms"}, []string{"notify_timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, s := getTestBackend(t)
			mustFail(t, b, s, logical.UpdateOperation, "config", tc.data, tc.want...)
			// Nothing half-written: the config still reads as the defaults.
			if got := mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data["keep_credentials"]; got != "persistent" {
				t.Errorf("a rejected write changed the config: keep_credentials = %v", got)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", time.Minute: "1m", 10 * time.Second: "10s", 0: "0s", 61 * time.Second: "1m1s", 720 * time.Hour: "720h"} {
		if got := formatDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}
