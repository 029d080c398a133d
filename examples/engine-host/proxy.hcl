# Vault Proxy beside the process engine: it logs in with AppRole (a role bound to the engine-host
# policy) and adds its token to every request, so the engine calls pecreds holding no Vault token.
# scripts/dev.sh makes the role and writes its ids under bin/dev/; then, from the project root:
#
#   vault proxy -config=examples/engine-host/proxy.hcl
#   VAULT_ADDR=http://127.0.0.1:8100 vault read pecreds/process/order-42/resolve/crm   # no token
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

# Loopback only: anyone who reaches this listener acts with the engine-host policy.
listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
