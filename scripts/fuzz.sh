#!/usr/bin/env bash
# Runs the fuzz targets, bounded: each for PECREDS_FUZZTIME runs (default 300000x, about 10 s each
# on 2 cores; 0 skips them). A count, not a duration: with a duration, Go 1.26's fuzz coordinator
# can fail a target at the deadline with "context deadline exceeded" and no crasher
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
#   scripts/fuzz.sh                                           every target
#   scripts/fuzz.sh ./internal/resolve:FuzzMatchURL           one (package:name)
#   scripts/fuzz.sh -l                                        lists them (scripts/test.sh does)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

targets=(
  ./internal/credential:FuzzParseCredential
  ./internal/credential:FuzzParseServices
  ./internal/resolve:FuzzMatchURL
)
if [ "${1:-}" = "-l" ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
announce=true # each target's name, unless the caller named the one to run
if [ $# -gt 0 ]; then targets=("$@") announce=false; fi

fuzztime=${PECREDS_FUZZTIME:-300000x}
if [ "$fuzztime" = "0" ]; then
  echo "fuzz.sh: PECREDS_FUZZTIME=0: skipped"
  exit 0
fi
for target in "${targets[@]}"; do
  pkg=${target%%:*} name=${target##*:}
  if $announce; then echo "fuzz.sh: fuzzing $name for $fuzztime"; fi
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
