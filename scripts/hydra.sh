#!/usr/bin/env bash
# Prints the path of a usable Ory Hydra binary: $HYDRA_BIN, else bin/hydra, built once from
# tools/hydra (Hydra v2.3.0 through the Go module proxy) and reused. Unlike scripts/vault.sh it
# does not take a `hydra` on PATH: the tests need the SQLite build (`DSN=memory`), which release
# binaries and distribution packages may not be. Progress goes to stderr; only the path goes to
# stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -n "${HYDRA_BIN:-}" ]; then
  if [ ! -x "$HYDRA_BIN" ]; then
    echo "hydra.sh: HYDRA_BIN=$HYDRA_BIN is not an executable file" >&2
    exit 1
  fi
  echo "$HYDRA_BIN"
  exit 0
fi

bin="$root/bin/hydra"
if [ ! -x "$bin" ]; then
  # The sqlite tag links SQLite through cgo (mattn/go-sqlite3), which needs a C compiler.
  if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
    echo "hydra.sh: building Hydra needs a C compiler for cgo (${CC:-gcc}); install gcc" >&2
    exit 1
  fi
  echo "hydra.sh: building Ory Hydra v2.3.0 into bin/hydra (first time only; about 3 minutes on 2 cores)..." >&2
  mkdir -p "$root/bin"
  start=$(date +%s)
  (cd "$root/tools/hydra" && CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension \
    -ldflags "-s -w" -o "$bin.partial" github.com/ory/hydra/v2) >&2
  mv "$bin.partial" "$bin"
  echo "hydra.sh: built bin/hydra in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
