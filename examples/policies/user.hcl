# user: an end user sees and completes their own credential-update tasks, and nothing else.
# pecreds itself checks that the completing token's identity entity owns the task (403
# otherwise, and always for a task whose process has no owner entity); task/mine lists only the
# caller's own open tasks. The user cannot list everyone's tasks nor read a process.
path "pecreds/task/mine" {
  capabilities = ["list"]
}
path "pecreds/task/+/complete" {
  capabilities = ["update"]
}
