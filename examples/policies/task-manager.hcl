# task-manager: the Task Manager service. It lists and reads tasks (reconciling with the webhook
# events), and completes a task for its owner after authenticating the owner itself: that path,
# complete-on-behalf, does not check the caller's entity, so grant it to this service only. It
# watches the webhook outbox.
path "pecreds/task" {
  capabilities = ["list"]
}
path "pecreds/task/+" {
  capabilities = ["read"]
}
path "pecreds/task/+/complete-on-behalf" {
  capabilities = ["update"]
}
path "pecreds/notify/status" {
  capabilities = ["read"]
}
