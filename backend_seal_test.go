package pecreds

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
)

// Every storage key that holds a secret, or says where one goes, is seal-wrapped; tasks, which
// hold none, are not (docs/security.md).
func TestSealWrapsEveryKeyThatHoldsASecret(t *testing.T) {
	b := newBackend(testDeps())
	wrapped := func(key string) bool {
		for _, p := range b.PathsSpecial.SealWrapStorage {
			if strings.HasPrefix(key, p) {
				return true
			}
		}
		return false
	}
	secretKeys := []string{
		configStorageKey,
		registryStoragePrefix + "orders",
		technicalStoragePrefix + "crm-service",
		technicalStatePrefix + "crm-service",
		processStoragePrefix + "order-42",
		legacyCurrentPrefix + "order-42",
		outboxStoragePrefix + "00000000000000000001",
		framework.WALPrefix + "1",
	}
	for _, key := range secretKeys {
		if !wrapped(key) {
			t.Errorf("storage key %s holds secrets but is not seal-wrapped", key)
		}
	}
	if wrapped(taskStoragePrefix + "t-1") {
		t.Errorf("task records hold no secret and are not meant to be seal-wrapped")
	}
}
