#!/usr/bin/env bash
# Prints the path of a usable Vault server binary: $VAULT_BIN, else a `vault` on PATH, else
# bin/vault, built once from tools/vault (Vault v1.21.1 through the Go module proxy) and reused.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -n "${VAULT_BIN:-}" ]; then
  if [ ! -x "$VAULT_BIN" ]; then
    echo "vault.sh: VAULT_BIN=$VAULT_BIN is not an executable file" >&2
    exit 1
  fi
  echo "$VAULT_BIN"
  exit 0
fi
if command -v vault >/dev/null 2>&1; then
  command -v vault
  exit 0
fi

bin="$root/bin/vault"
if [ ! -x "$bin" ]; then
  echo "vault.sh: building Vault v1.21.1 into bin/vault (first time only; 2 to 4 minutes on 2 cores)..." >&2
  mkdir -p "$root/bin"
  start=$(date +%s)
  (cd "$root/tools/vault" && go build -ldflags "-s -w" -o "$bin.partial" github.com/hashicorp/vault) >&2
  mv "$bin.partial" "$bin"
  echo "vault.sh: built bin/vault in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"
