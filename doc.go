// Package pecreds is a HashiCorp Vault secrets engine that keeps the credentials of a
// business-process engine's processes: per-definition and global credentials registries, a
// technical credentials manager, processes as Vault leases, and credential-update tasks for
// processes whose user credentials failed.
//
// The contract is DESIGN.md in the project's shared folder; README.md tells how to use it.
package pecreds
