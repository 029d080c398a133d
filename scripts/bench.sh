#!/usr/bin/env bash
# Runs the benchmarks against a real Vault dev server that the tests start (as scripts/test.sh
# does). Figures are ratios and counts measured in one run; nothing here is a timed test.
#   scripts/bench.sh                          every benchmark
#   scripts/bench.sh -bench TokenRefresh      one; add -bench.duration=30s etc. to shorten it
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
VAULT_BIN=$(scripts/vault.sh)
export VAULT_BIN
args=("$@")
if [ ${#args[@]} -eq 0 ]; then args=(-bench .); fi
# VAULT_ACC gates the tests package (tests/main_test.go); without it nothing would run.
VAULT_ACC=1 go test ./tests -run '^$' -benchtime 1x -timeout 60m -v "${args[@]}"
