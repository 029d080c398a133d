#!/usr/bin/env bash
# Prints the path of a usable Temporal CLI binary: $TEMPORAL_BIN, else bin/temporal, built once
# from tools/temporal (the Temporal CLI v1.5.1 through the Go module proxy) and reused. Its
# `temporal server start-dev` is a real Temporal server with an in-memory store. Like
# scripts/hydra.sh it does not take a `temporal` on PATH: the tests are written against the
# pinned version's flags and server. Progress goes to stderr; only the path goes to stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -n "${TEMPORAL_BIN:-}" ]; then
  if [ ! -x "$TEMPORAL_BIN" ]; then
    echo "temporal.sh: TEMPORAL_BIN=$TEMPORAL_BIN is not an executable file" >&2
    exit 1
  fi
  echo "$TEMPORAL_BIN"
  exit 0
fi

bin="$root/bin/temporal"
if [ ! -x "$bin" ]; then
  # The version tools/temporal/go.mod pins, stamped into the binary as the CLI's release builds
  # do (`temporal --version`; unstamped it says 0.0.0-DEV).
  version=$(cd "$root/tools/temporal" && go list -m -f '{{.Version}}' github.com/temporalio/cli)
  echo "temporal.sh: building the Temporal CLI $version into bin/temporal (first time only; about 3 minutes on 2 cores)..." >&2
  mkdir -p "$root/bin"
  start=$(date +%s)
  # Pure Go (its SQLite is modernc.org/sqlite), built without cgo as its release binaries are.
  (cd "$root/tools/temporal" && CGO_ENABLED=0 go build \
    -ldflags "-s -w -X github.com/temporalio/cli/temporalcli.Version=${version#v}" \
    -o "$bin.partial" github.com/temporalio/cli/cmd/temporal) >&2
  mv "$bin.partial" "$bin"
  echo "temporal.sh: built bin/temporal in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
