#!/usr/bin/env bash
# Runs every test: go vet, the unit tests (race detector on, as `make test`), the integration tests
# in tests/ (as `make testacc`), which start their own `vault server -dev` on a free loopback port
# with the freshly built plugin (and, for the grant tests, their own Ory Hydra; for the Temporal
# tests, their own Temporal dev server; for the Task Manager's, headless Chromium), the tests of
# integrations/temporal (a module of its own, with its own Vault and Temporal dev server), and
# bounded fuzzing (as `make fuzz`). Each stage prints its wall time. Extra arguments go to every
# `go test` run (scripts/test.sh -run Registry -v).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

start=$(date +%s)
stage_start=$start
stage() { # prints the time the previous stage took, then names the next
  local now; now=$(date +%s)
  [ -n "${stage_name:-}" ] && echo "test.sh: ${stage_name} took $((now - stage_start))s"
  stage_name=$1 stage_start=$now
  [ -n "$1" ] && echo "test.sh: $1"
  return 0
}

stage "finding or building the Vault server"
VAULT_BIN=$(scripts/vault.sh)
export VAULT_BIN
echo "test.sh: Vault server: $VAULT_BIN ($("$VAULT_BIN" version))"

# The grant tests (tests/hydra_test.go) run a real Ory Hydra, built with cgo for its in-memory
# SQLite store: scripts/hydra.sh needs a C compiler the first time.
if [ -z "${HYDRA_BIN:-}" ] && [ ! -x bin/hydra ] && ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing gcc (Debian's package), which the cgo build of Hydra needs"
    apt-get update -qq >/dev/null && apt-get install -y -qq gcc libc6-dev >/dev/null
  else
    echo "test.sh: building Hydra needs a C compiler for cgo; install gcc" >&2
    exit 1
  fi
fi
stage "finding or building the Hydra server"
HYDRA_BIN=$(scripts/hydra.sh)
export HYDRA_BIN
echo "test.sh: Hydra server: $HYDRA_BIN ($(go version -m "$HYDRA_BIN" | awk '$1 == "mod" {print $2, $3}'))"

# The Temporal tests (tests/temporal_test.go) run the dev server of the Temporal CLI, pure Go:
# about 3 minutes to build the first time on 2 cores, then reused from bin/ (or $TEMPORAL_BIN).
stage "finding or building the Temporal CLI (its dev server)"
TEMPORAL_BIN=$(scripts/temporal.sh)
export TEMPORAL_BIN
echo "test.sh: Temporal CLI: $TEMPORAL_BIN ($("$TEMPORAL_BIN" --version))"

# The README walkthrough (run by TestREADMEWalkthroughRunsAsIs) pages with curl, as a reader does.
if ! command -v curl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing curl (Debian's package), which the README walkthrough uses"
    apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null
  else
    echo "test.sh: the README walkthrough needs curl; install it" >&2
    exit 1
  fi
fi

# The Task Manager's browser test (tests/taskmanager_test.go) drives Debian's headless Chromium.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing chromium (Debian's package), which the Task Manager's browser test drives"
    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: the Task Manager's browser test needs Chromium at /usr/bin/chromium; install Debian's chromium" >&2
    exit 1
  fi
fi

stage "go vet"
go vet ./...

stage "unit tests"
go test -race -count=1 -timeout 10m "$@" $(go list ./... | grep -v /tests$)

stage "integration tests (real Vault servers)"
# VAULT_ACC gates them (tests/main_test.go): plain `go test ./...` runs the unit tests only.
VAULT_ACC=1 go test -count=1 -timeout 40m "$@" ./tests

# integrations/temporal is a module of its own (the Temporal SDK stays out of the plugin's
# go.mod), so neither `go vet ./...` nor the stages above reach it. Its tests start their own
# Vault (with the plugin built from this tree) and Temporal dev server, from $VAULT_BIN and
# $TEMPORAL_BIN, under the same gate.
stage "integrations/temporal: go vet, unit and integration tests (real Vault and Temporal servers)"
(cd integrations/temporal && go vet ./... && VAULT_ACC=1 go test -race -count=1 -timeout 15m "$@" ./...)

# Fuzzing, bounded (scripts/fuzz.sh says how): PECREDS_FUZZTIME runs per target, 0 skips it.
export PECREDS_FUZZTIME=${PECREDS_FUZZTIME:-300000x}
if [ "$PECREDS_FUZZTIME" != "0" ]; then
  for target in $(scripts/fuzz.sh -l); do
    stage "fuzzing ${target##*:} for $PECREDS_FUZZTIME"
    scripts/fuzz.sh "$target"
  done
fi
stage ""
echo "test.sh: all stages passed in $(( $(date +%s) - start ))s"
