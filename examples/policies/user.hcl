# user: an end user completes their own credential-update tasks. pecreds itself checks that the
# completing token's identity entity owns the task (403 otherwise); the policy only lets users
# find and complete tasks, and read nothing else.
path "pecreds/task" {
  capabilities = ["list"]
}
path "pecreds/task/+/complete" {
  capabilities = ["update"]
}
