# Vault Agent renders a technical credential's OAuth2 token to a file, and renders it again
# after every refresh: technical/:name/creds answers ttl and rotation_period, so the agent
# re-reads it ttl+1 seconds later.
#
#   vault token create -policy=engine-host -field=token > bin/dev/agent-token   # or, in dev: echo root > bin/dev/agent-token
#   vault agent -config=examples/agent/agent.hcl
#
# scripts/dev.sh writes this file into its dev folder as agent.hcl, with its own address and
# folder (PECREDS_ADDR, PECREDS_DEV_DIR), and prints the command that runs it from anywhere.

vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "bin/dev/agent-token"
    }
  }
}

template_config {
  exit_on_retry_failure = true
}

template {
  source      = "examples/agent/engine-token.ctmpl"
  destination = "bin/dev/engine-token.json"
  perms       = "0600"
}
