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
# The process leases: renew and revoke.
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
