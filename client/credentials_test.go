package client_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// A Credentials printed in every way fmt knows, encoded as JSON (a workflow engine's history) or
// logged through log/slog shows where it came from and its field names, never a value.
func TestCredentialsShowNoSecret(t *testing.T) {
	c := &client.Credentials{Service: "crm", Source: "definition:orders", Index: 1, Type: "password", Technical: "crm-service",
		Fields: map[string]any{"username": "svc-user", "password": "s3cret-pw", "token": "tok-abc"}}
	asJSON, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("resolved", "creds", c, "value", *c)
	shown := []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", *c, *c, *c, *c), string(asJSON), logged.String(),
		fmt.Errorf("calling with %v", c).Error()}
	for _, s := range shown {
		for _, secret := range []string{"s3cret-pw", "tok-abc", "svc-user"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
		if !strings.Contains(s, "crm") || !strings.Contains(s, "password") {
			t.Errorf("%q does not say which credentials", s)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(asJSON, &back); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back["fields"]) != "[password token username]" || back["technical"] != "crm-service" {
		t.Errorf("encoded: %s", asJSON)
	}
	// The values stay where the caller takes them from.
	if c.Fields["password"] != "s3cret-pw" {
		t.Errorf("fields: %v", c.Fields)
	}
}
