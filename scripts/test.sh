#!/usr/bin/env bash
# Runs every test: go vet, the unit tests, and the integration tests in tests/, which start their
# own `vault server -dev` on a free loopback port with the freshly built plugin.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

VAULT_BIN=$(scripts/vault.sh)
export VAULT_BIN
echo "test.sh: Vault server: $VAULT_BIN ($("$VAULT_BIN" version))"

echo "test.sh: go vet"
go vet ./...

echo "test.sh: unit and integration tests"
go test -count=1 -timeout 40m "$@" ./...

# Fuzzing, bounded: each target for PECREDS_FUZZTIME (default 10s). Set it to 0 to skip.
fuzztime=${PECREDS_FUZZTIME:-10s}
if [ "$fuzztime" != "0" ]; then
  for target in FuzzParseCredential FuzzParseServices FuzzMatchURL; do
    echo "test.sh: fuzzing $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" .
  done
fi
