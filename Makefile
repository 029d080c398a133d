# The usual targets of a HashiCorp Vault plugin. scripts/test.sh runs vet, test, testacc and fuzz
# in one go, each stage timed; it is the README's test command and what CI (.ci/run) runs.

# Every package but tests/, whose integration tests start a real Vault server.
UNIT_PKGS = $(shell go list ./... | grep -v /tests$$)

.PHONY: test testacc dev bench fmt fuzz vet

# Unit tests only: no Vault, the race detector on, under a minute.
test:
	go test -race -count=1 -timeout 5m $(TESTARGS) $(UNIT_PKGS)

# Integration tests against a real `vault server -dev` (scripts/vault.sh finds or builds it:
# $VAULT_BIN, a vault on PATH, else bin/vault), for the grant tests a real Ory Hydra
# (scripts/hydra.sh: $HYDRA_BIN, else bin/hydra), and for the Temporal tests a real Temporal dev
# server (scripts/temporal.sh: $TEMPORAL_BIN, else bin/temporal); then those of integrations/temporal,
# a module of its own, which start their own Vault and Temporal. VAULT_ACC gates them, as in
# HashiCorp plugins.
testacc:
	VAULT_ACC=1 go test -count=1 -timeout 40m $(TESTARGS) ./tests
	cd integrations/temporal && VAULT_ACC=1 go test -count=1 -timeout 15m $(TESTARGS) ./...

# A dev Vault with the plugin enabled at pecreds/ and the examples loaded.
dev:
	scripts/dev.sh

# The benchmarks against real Vault (BENCHMARKS.md); scripts/bench.sh -bench X for one.
bench:
	scripts/bench.sh

fmt:
	gofmt -w .

# The fuzz targets, bounded (PECREDS_FUZZTIME runs each, default 300000x).
fuzz:
	scripts/fuzz.sh

vet:
	go vet ./...
