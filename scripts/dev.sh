#!/usr/bin/env bash
# Starts a dev Vault with the plugin built, registered (by sha256 and version) and enabled at
# pecreds/, loads the examples, and prints what to type next. Ctrl-C stops everything it started.
#   PECREDS_ADDR   listen address (default 127.0.0.1:8200)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

addr=${PECREDS_ADDR:-127.0.0.1:8200}
export VAULT_ADDR="http://$addr" VAULT_TOKEN=root
VAULT_BIN=$(scripts/vault.sh)
vault() { "$VAULT_BIN" "$@"; }
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' version.go)

dev="$root/bin/dev"
rm -rf "$dev" && mkdir -p "$dev/plugins"
echo "dev.sh: building the plugin $version"
go build -o "$dev/plugins/vault-plugin-pecreds" ./cmd/vault-plugin-pecreds
sha=$(sha256sum "$dev/plugins/vault-plugin-pecreds" | cut -d' ' -f1)
printf 'plugin_directory = "%s"\n' "$dev/plugins" > "$dev/vault.hcl"

echo "dev.sh: starting vault server -dev on $addr (log: bin/dev/vault.log)"
"$VAULT_BIN" server -dev -dev-root-token-id=root -dev-listen-address="$addr" \
  -config="$dev/vault.hcl" >"$dev/vault.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; echo "dev.sh: stopped"' EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 100); do
  vault status >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "dev.sh: the server exited; see bin/dev/vault.log" >&2; tail -20 "$dev/vault.log" >&2; exit 1; }
  sleep 0.2
done
vault status >/dev/null || { echo "dev.sh: the server did not come up; see bin/dev/vault.log" >&2; exit 1; }

vault plugin register -sha256="$sha" -version="$version" -command=vault-plugin-pecreds secret vault-plugin-pecreds >/dev/null
vault secrets enable -path=pecreds -plugin-version="$version" vault-plugin-pecreds >/dev/null
vault secrets tune -max-lease-ttl=8760h pecreds >/dev/null

vault write pecreds/registry/orders @examples/registries/orders.json >/dev/null
vault write pecreds/registry/common @examples/registries/common.json >/dev/null
vault write pecreds/config global_registries=common >/dev/null

cat <<TEXT

pecreds $version is enabled at pecreds/ on a dev Vault (root token "root"), with the example
registries "orders" (a process definition) and "common" (global) loaded.

In another shell:

  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  alias vault=$VAULT_BIN    # unless a vault CLI is on your PATH

  vault read pecreds/config
  vault list pecreds/registry
  vault read pecreds/registry/orders
  vault path-help pecreds/registry/orders

Ctrl-C here stops the server.
TEXT
wait $server
