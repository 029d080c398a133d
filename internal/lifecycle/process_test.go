package lifecycle

import (
	"encoding/json"
	"testing"
)

// Records as v0.2.0 stores them, every field set and a minimal one: decoding and encoding again
// gives the same bytes, so what is in storage reads and writes unchanged.
var storedRecords = map[string]struct {
	record string
	into   func() any
}{
	"process, every field":           {`{"id":"order-42","nonce":"5b9c1e7a-0000-4000-8000-000000000001","definition":"orders","owner":"ann","owner_entity_id":"ent-ann","keep_credentials":"persistent","has_current":true,"health":"broken","health_reason":"service \"crm\": the current credentials failed (auth_failed)","task_id":"T-1","broken_by_current":true,"operator_reason":"service \"erp\": technical credential \"erp-svc\" failed (auth_failed)","runtime":[{"name":"crm","description":"CRM","url":"https://crm.example.com","realm":"r","credentials":[{"type":"password","label":"l","fields":{"password":"pw","username":"ann"}},{"type":"technical","fields":{"name":"erp-svc"}}]}],"retried":{"erp-svc":3},"current":{"type":"token","fields":{"token":"tok\u003c\u0026\u003e"},"lists":{"scopes":["a","b"]}},"expires_at":"2026-11-30T12:00:00.123456789Z","created_time":"2026-11-29T12:00:00.123456789Z","updated_time":"2026-11-29T12:01:00.123456789Z"}`, func() any { return &Process{} }},
	"process, running, nothing kept": {`{"id":"p","nonce":"","definition":"","owner":"","owner_entity_id":"","keep_credentials":"","has_current":false,"health":"running","health_reason":"","task_id":"","runtime":[],"expires_at":"0001-01-01T00:00:00Z","created_time":"2026-11-29T12:00:00.123456789Z","updated_time":"2026-11-29T12:00:00.123456789Z"}`, func() any { return &Process{} }},
	"task, completed":                {`{"id":"T-1","process_id":"order-42","service":"crm","reason":"auth_failed","owner":"ann","owner_entity_id":"ent-ann","status":"completed","completed_by":"ent-ann","created_time":"2026-11-29T12:00:00.123456789Z","closed_time":"2026-11-29T13:00:00.123456789Z"}`, func() any { return &Task{} }},
	"task, open":                     {`{"id":"T-2","process_id":"p","service":"","reason":"","owner":"","owner_entity_id":"","status":"open","created_time":"2026-11-29T12:00:00.123456789Z","closed_time":"0001-01-01T00:00:00Z"}`, func() any { return &Task{} }},
}

func TestStoredRecordsRoundTrip(t *testing.T) {
	for name, tc := range storedRecords {
		v := tc.into()
		if err := json.Unmarshal([]byte(tc.record), v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(again) != tc.record {
			t.Errorf("%s: encoded again differently:\n got  %s\n want %s", name, again, tc.record)
		}
	}
}

// The write-ahead log stores an effect's kind as its number: a kind never changes its number.
func TestEffectKindNumbers(t *testing.T) {
	for kind, want := range map[EffectKind]int{Announce: 0, PutCurrent: 1, DeleteCurrent: 2, PutTask: 3, PutProcess: 4, DeleteProcess: 5, DeleteTask: 6} {
		if int(kind) != want {
			t.Errorf("effect kind %d, want %d", kind, want)
		}
	}
}
