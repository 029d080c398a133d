# Vault Proxy beside the process engine: it logs in with AppRole (a role bound to the engine-host
# policy) and adds its token to every request, so the engine calls pecreds holding no Vault token.
# scripts/dev.sh makes the role and writes its ids under bin/dev/, and this file there as
# proxy.hcl with its own addresses and folder (PECREDS_ADDR, PECREDS_DEV_DIR, PECREDS_PROXY_ADDR):
# run the command it prints. With the defaults, from the project root, this file works as is:
#
#   vault proxy -config=examples/engine-host/proxy.hcl
#   VAULT_ADDR=http://127.0.0.1:8100 vault read pecreds/process/order-42/resolve/crm   # no token
#   curl -H "X-Vault-Request: true" http://127.0.0.1:8100/v1/pecreds/process/order-42   # the header is required
#
# In production: TLS on the listener or a Unix socket (listener "unix"), the secret id delivered
# by your platform (response-wrapped), and the proxy's own audit in Vault's audit log.

vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "bin/dev/engine-host-role-id"
      secret_id_file_path                 = "bin/dev/engine-host-secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

# Every request through the proxy carries the auto-auth token, whatever the caller sent.
api_proxy {
  use_auto_auth_token = "force"
}

# Loopback only: anyone who reaches this listener acts with the engine-host policy. Every request
# must carry the header X-Vault-Request: true (412 otherwise). vault/api, the vault CLI and the Go
# client send it; a browser cannot add it to a form post, and a cross-origin page cannot add it
# without a CORS preflight, which the proxy never grants. A page served through DNS rebinding is
# same-origin and can add it: where a browser runs on the engine host, use a Unix socket
# (listener "unix", file permissions limited to the engine's user), which no page can reach.
listener "tcp" {
  address                = "127.0.0.1:8100"
  tls_disable            = true
  require_request_header = true
}
