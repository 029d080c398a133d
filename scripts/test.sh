#!/usr/bin/env bash
# Runs every test: go vet, the unit tests, and the integration tests in tests/, which start their
# own `vault server -dev` on a free loopback port with the freshly built plugin. Each stage prints
# its wall time.
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

stage "go vet"
go vet ./...

stage "unit tests"
go test -count=1 -timeout 10m "$@" $(go list ./... | grep -v /tests$)

stage "integration tests (real Vault servers)"
go test -count=1 -timeout 40m "$@" ./tests

# Fuzzing, bounded: each target for PECREDS_FUZZTIME runs (default 300000x, about 10 s each on
# 2 cores). Set it to 0 to skip. A count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can fail a target at the deadline with "context deadline exceeded" and no crasher
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
fuzztime=${PECREDS_FUZZTIME:-300000x}
if [ "$fuzztime" != "0" ]; then
  for target in ./internal/credential:FuzzParseCredential ./internal/credential:FuzzParseServices ./internal/resolve:FuzzMatchURL; do
    pkg=${target%%:*} name=${target##*:}
    stage "fuzzing $name for $fuzztime"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
  done
fi
stage ""
echo "test.sh: all stages passed in $(( $(date +%s) - start ))s"
