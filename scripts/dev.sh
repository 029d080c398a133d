#!/usr/bin/env bash
# Starts a dev Vault with the plugin built, registered (by sha256 and version) and enabled at
# pecreds/, loads the examples, and prints what to type next. Ctrl-C stops everything it started.
#   PECREDS_ADDR        listen address (default 127.0.0.1:8200)
#   PECREDS_DEV_DIR     where the server's files go (default bin/dev; emptied first)
#   PECREDS_PROXY_ADDR  where the engine host's Vault Proxy listens (default 127.0.0.1:8100)
# It writes proxy.hcl and agent.hcl into the dev directory: the examples, with these addresses
# and that directory in place of their defaults, so the printed commands work from any folder.
#   PECREDS_TASKMANAGER=1  also start the Task Manager (examples/taskmanager), pecreds's webhooks
#                          sent to it, on PECREDS_TASKMANAGER_ADDR (default 127.0.0.1:8300)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# What this writes holds secrets (the agent's token, the AppRole secret id, the server's log with
# its root token and unseal key): readable by this user only, files 0600 and directories 0700.
umask 077

addr=${PECREDS_ADDR:-127.0.0.1:8200}
export VAULT_ADDR="http://$addr" VAULT_TOKEN=root
VAULT_BIN=$(scripts/vault.sh)
vault() { "$VAULT_BIN" "$@"; }
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' version.go)

dev=${PECREDS_DEV_DIR:-$root/bin/dev}
case $dev in /*) ;; *) dev=$root/$dev ;; esac   # the printed commands work from any folder
proxy_addr=${PECREDS_PROXY_ADDR:-127.0.0.1:8100}
rm -rf "$dev" && mkdir -p "$dev/plugins"
echo "dev.sh: building the plugin $version"
go build -o "$dev/plugins/vault-plugin-pecreds" ./cmd/vault-plugin-pecreds
sha=$(sha256sum "$dev/plugins/vault-plugin-pecreds" | cut -d' ' -f1)
printf 'plugin_directory = "%s"\n' "$dev/plugins" > "$dev/vault.hcl"

go build -o "$dev/token-endpoint" ./examples/token-endpoint
taskmanager_addr=${PECREDS_TASKMANAGER_ADDR:-127.0.0.1:8300}
if [ "${PECREDS_TASKMANAGER:-}" = 1 ]; then
  go build -o "$dev/taskmanager" ./examples/taskmanager
fi

echo "dev.sh: starting vault server -dev on $addr (log: $dev/vault.log)"
"$VAULT_BIN" server -dev -dev-root-token-id=root -dev-listen-address="$addr" \
  -config="$dev/vault.hcl" >"$dev/vault.log" 2>&1 &
server=$!
# A stand-in OAuth2 token endpoint on loopback, for the oauth2 technical credential "engine".
"$dev/token-endpoint" -lifetime=60s >"$dev/token-endpoint.url" 2>&1 &
endpoint=$!
taskmanager=
trap 'kill $server $endpoint $taskmanager 2>/dev/null; wait $server $endpoint $taskmanager 2>/dev/null; echo "dev.sh: stopped"' EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 100); do
  vault status >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "dev.sh: the server exited; see $dev/vault.log" >&2; tail -20 "$dev/vault.log" >&2; exit 1; }
  sleep 0.2
done
vault status >/dev/null || { echo "dev.sh: the server did not come up; see $dev/vault.log" >&2; exit 1; }

vault plugin register -sha256="$sha" -version="$version" -command=vault-plugin-pecreds secret vault-plugin-pecreds >/dev/null
vault secrets enable -path=pecreds -plugin-version="$version" vault-plugin-pecreds >/dev/null
vault secrets tune -max-lease-ttl=8760h pecreds >/dev/null

token_url=$(head -n 1 "$dev/token-endpoint.url")
vault write pecreds/technical/crm-service @examples/technical/crm-service.json >/dev/null
vault write pecreds/technical/engine type=oauth2 token_url="$token_url" \
  client_id=pecreds-dev client_secret=dev-only-client-secret scopes=tasks >/dev/null
vault write pecreds/registry/orders @examples/registries/orders.json >/dev/null
vault write pecreds/registry/common @examples/registries/common.json >/dev/null
vault write pecreds/config global_registries=common >/dev/null
echo root > "$dev/agent-token"   # for examples/agent/agent.hcl

# The proxy's and the agent's configurations for this server: the examples with this address,
# this directory and the proxy's address in place of their defaults (comments included).
render() {
  { echo "# Written by scripts/dev.sh from $1 for the dev server at $VAULT_ADDR."
    sed -e "s#http://127.0.0.1:8200#$VAULT_ADDR#g" -e "s#127.0.0.1:8100#$proxy_addr#g" \
        -e "s#bin/dev/#$dev/#g" -e "s#\"examples/#\"$root/examples/#g" "$1"; } > "$2"
}
render examples/engine-host/proxy.hcl "$dev/proxy.hcl"
render examples/agent/agent.hcl "$dev/agent.hcl"

# The people of the walkthrough: the policies; Ann, an end user (userpass, the user policy, her
# own identity entity); the engine host, an AppRole bound to the engine-host policy, whose ids
# examples/engine-host/proxy.hcl reads.
for policy in admin engine-host user task-manager; do
  vault policy write "$policy" "examples/policies/$policy.hcl" >/dev/null
done
vault auth enable userpass >/dev/null
vault write auth/userpass/users/ann password=ann-dev-login token_policies=user >/dev/null
userpass=$(vault read -field=accessor sys/auth/userpass)
ann_entity=$(vault write -field=id identity/entity name=ann)
vault write identity/entity-alias name=ann canonical_id="$ann_entity" mount_accessor="$userpass" >/dev/null
echo "$ann_entity" > "$dev/ann-entity-id"
vault auth enable approle >/dev/null
vault write auth/approle/role/engine-host token_policies=engine-host token_ttl=1h >/dev/null
vault read -field=role_id auth/approle/role/engine-host/role-id > "$dev/engine-host-role-id"
vault write -f -field=secret_id auth/approle/role/engine-host/secret-id > "$dev/engine-host-secret-id"

# The Task Manager, opt-in: Ann signs in there with her own login; pecreds's webhooks go to it,
# signed with a fresh Standard Webhooks secret (whsec_ and 32 random bytes) kept in a 0600 file.
taskmanager_hint="PECREDS_TASKMANAGER=1 scripts/dev.sh also starts the Task Manager, where Ann completes her tasks."
if [ "${PECREDS_TASKMANAGER:-}" = 1 ]; then
  printf 'whsec_%s' "$(head -c 32 /dev/urandom | base64 -w0)" > "$dev/notify-secret"
  "$dev/taskmanager" -listen "$taskmanager_addr" -vault "$VAULT_ADDR" -mount pecreds -userpass auth/userpass \
    -webhook-secret-file "$dev/notify-secret" >"$dev/taskmanager.url" 2>"$dev/taskmanager.log" &
  taskmanager=$!
  for _ in $(seq 1 100); do
    [ -s "$dev/taskmanager.url" ] && break
    kill -0 $taskmanager 2>/dev/null || { echo "dev.sh: the Task Manager exited; see $dev/taskmanager.log" >&2; tail -20 "$dev/taskmanager.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -s "$dev/taskmanager.url" ] || { echo "dev.sh: the Task Manager did not start; see $dev/taskmanager.log" >&2; exit 1; }
  taskmanager_url=$(head -n 1 "$dev/taskmanager.url")
  vault write pecreds/config notify_url="${taskmanager_url}hooks/pecreds" notify_secret=@"$dev/notify-secret" >/dev/null
  taskmanager_hint="The Task Manager is at $taskmanager_url (log: $dev/taskmanager.log): Ann signs in there
with ann / ann-dev-login and completes her tasks; pecreds's webhooks go to it."
fi

cat <<TEXT

pecreds $version is enabled at pecreds/ on a dev Vault (root token "root"), with the example
registries "orders" (a process definition) and "common" (global), the technical credentials
"crm-service" (a password) and "engine" (oauth2, 60s tokens from a stand-in token endpoint at
$token_url).

The policies admin, engine-host, user and task-manager are installed. Ann logs in with userpass
(password ann-dev-login); her identity entity's id is in $dev/ann-entity-id. The engine host is
the AppRole engine-host, its ids in $dev/engine-host-role-id and -secret-id (read by
$dev/proxy.hcl: examples/engine-host/proxy.hcl written for this server).

$taskmanager_hint

In another shell:

  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root
  alias vault=$VAULT_BIN    # unless a vault CLI is on your PATH

  ANN_TOKEN=\$(vault login -token-only -method=userpass username=ann password=ann-dev-login)
  vault proxy -config=$dev/proxy.hcl &   # the engine host's proxy on $proxy_addr
  VAULT_ADDR=http://$proxy_addr VAULT_TOKEN= vault read pecreds/config   # through the proxy, no token

  vault read pecreds/config
  vault list pecreds/registry
  vault read pecreds/registry/orders
  vault read pecreds/technical/engine
  vault read pecreds/technical/engine/creds
  vault path-help pecreds/
  vault agent -config=$dev/agent.hcl &   # renders $dev/engine-token.json
  (cd $root && go run ./examples/engine -ann-entity $ann_entity -complete-after 5s)   # the reference engine

Ctrl-C here stops the server.
TEXT
wait $server
