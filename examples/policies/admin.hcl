# admin: operators who configure pecreds — config, registries, technical credentials — and look
# after processes and tasks (read, resume, cancel). They do not resolve a process's credentials.
path "pecreds/config" {
  capabilities = ["read", "create", "update"]
}
path "pecreds/registry/*" {
  capabilities = ["read", "create", "update", "delete", "list"]
}
path "pecreds/registry" {
  capabilities = ["list"]
}
path "pecreds/technical/*" {
  capabilities = ["read", "create", "update", "delete", "list"]
}
path "pecreds/technical" {
  capabilities = ["list"]
}
# ...but not the material: the technical credentials' secrets are the engine's.
path "pecreds/technical/+/creds" {
  capabilities = ["deny"]
}
path "pecreds/process" {
  capabilities = ["list"]
}
path "pecreds/process/+" {
  capabilities = ["read"]
}
path "pecreds/process/+/resume" {
  capabilities = ["update"]
}
path "pecreds/task" {
  capabilities = ["list"]
}
path "pecreds/task/+" {
  capabilities = ["read"]
}
path "pecreds/task/+/cancel" {
  capabilities = ["update"]
}
path "pecreds/notify/*" {
  capabilities = ["read", "update"]
}
path "pecreds/status" {
  capabilities = ["read"]
}
