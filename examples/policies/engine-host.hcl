# engine-host: the process engine. It instantiates and ends processes (leases), adds runtime
# credentials, resolves, reports failures, and reads technical credentials' material for Vault
# Agent templates. It cannot change registries, technical credentials or config.
path "pecreds/process" {
  capabilities = ["list"]
}
# update lets a repeated instantiation get its 400 ("exists") rather than a 403.
path "pecreds/process/+" {
  capabilities = ["create", "update", "read", "delete"]
}
path "pecreds/process/+/credentials" {
  capabilities = ["read", "update"]
}
path "pecreds/process/+/credentials/+" {
  capabilities = ["delete"]
}
path "pecreds/process/+/resolve" {
  capabilities = ["read", "update"]
}
# A resolve may be response-wrapped (vault read -wrap-ttl=60s ..., the Go client's
# ResolveWrapped): the engine host gets a single-use wrapping token for an activity worker, which
# unwraps it with that token alone and needs no policy. No min_wrapping_ttl or max_wrapping_ttl
# here: either one makes Vault refuse every resolve that is not wrapped.
path "pecreds/process/+/resolve/+" {
  capabilities = ["read"]
}
path "pecreds/process/+/report" {
  capabilities = ["update"]
}
path "pecreds/process/+/preflight" {
  capabilities = ["update"]
}
path "pecreds/technical/+/creds" {
  capabilities = ["read"]
}
path "pecreds/config" {
  capabilities = ["read"]
}
# Renewing: only pecreds' process leases. vault lease renew and api.LifetimeWatcher (the Go
# client) send the body form, {lease_id, increment}; allowed_parameters limits lease_id to this
# mount's process leases, so the engine cannot keep any other lease in the namespace alive.
path "sys/leases/renew" {
  capabilities = ["update"]
  allowed_parameters = {
    "lease_id"  = ["pecreds/process/*"]
    "increment" = []
  }
}
# Revoking: only the URL form, and only pecreds' process leases. Never the body form
# "sys/leases/revoke": it would let the engine revoke any lease in the namespace. The engine ends a
# process with DELETE pecreds/process/:id, or vault write -f sys/leases/revoke/<lease_id>.
path "sys/leases/revoke/pecreds/process/*" {
  capabilities = ["update"]
}
