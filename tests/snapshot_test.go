package tests

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// A Raft snapshot restore brings back processes and their leases as they were when the snapshot
// was taken (docs/operations.md, "Backup and restore"): a lease renewed since, whose expiry as the
// snapshot holds it has passed, is revoked by Vault — its process ends; a process created since is
// gone; a change since (a report that broke a process and opened a task) is undone; a process
// whose lease is still valid in the snapshot goes on, and its lease renews.
func TestSnapshotRestoreBringsBackLeasesAsTheyWere(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0]
	c.enablePlugin(n)
	mustWriteOn(t, n.client, "pecreds/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	short := mustWriteOn(t, n.client, "pecreds/process/short", map[string]any{"definition": "orders", "current": userCurrent(t, "sam"), "ttl": "15s"})
	shortEnds := time.Now().Add(15 * time.Second)
	long := mustWriteOn(t, n.client, "pecreds/process/long", map[string]any{"definition": "orders", "current": userCurrent(t, "lea"), "ttl": "1h"})

	var snap bytes.Buffer
	if err := n.client.Sys().RaftSnapshot(&snap); err != nil {
		t.Fatalf("taking a snapshot: %v", err)
	}

	// After the snapshot: the engine renews short, starts another process, and long breaks.
	if _, err := n.client.Sys().Renew(short.LeaseID, 3600); err != nil {
		t.Fatalf("renewing short: %v", err)
	}
	mustWriteOn(t, n.client, "pecreds/process/later", map[string]any{"definition": "orders", "current": userCurrent(t, "lou")})
	if got := mustWriteOn(t, n.client, "pecreds/process/long/report", map[string]any{"service": "crm", "error": "auth_failed"}); got.Data["health"] != "broken" {
		t.Fatalf("long's report answered %v", got.Data)
	}
	// Restore once short's expiry as the snapshot holds it has passed, though it was renewed.
	waitFor(t, 30*time.Second, func() bool { return time.Now().After(shortEnds.Add(time.Second)) })
	if got := mustReadOn(t, n.client, "pecreds/process/short"); got.Data["health"] != "running" {
		t.Fatalf("before the restore, renewed short reads %v", got.Data)
	}
	if err := n.client.Sys().RaftSnapshotRestore(bytes.NewReader(snap.Bytes()), false); err != nil {
		t.Fatalf("restoring the snapshot: %v", err)
	}
	c.waitActive(n)

	// short: its lease is revoked by the restored Vault, and the process ends with it.
	waitFor(t, 60*time.Second, func() bool {
		s, err := n.client.Logical().Read("pecreds/process/short")
		return err == nil && s == nil
	})
	if _, err := n.client.Sys().Renew(short.LeaseID, 60); err == nil {
		t.Error("short's lease, renewed after the snapshot, renews after the restore")
	}
	// later: never happened.
	if s, err := n.client.Logical().Read("pecreds/process/later"); err != nil || s != nil {
		t.Errorf("a process created after the snapshot reads %v, %v after the restore", s, err)
	}
	// long: as it was, running, no task; it resolves its user's credentials and renews.
	checkRestoredLong(t, n.client, long)
}

func checkRestoredLong(t *testing.T, c *api.Client, long *api.Secret) {
	t.Helper()
	got := mustReadOn(t, c, "pecreds/process/long")
	if got.Data["health"] != "running" || got.Data["task_id"] != "" {
		t.Errorf("long after the restore: %v (want running, without the task the report opened)", got.Data)
	}
	tasks, err := c.Logical().List("pecreds/task")
	if err != nil || (tasks != nil && len(tasks.Data["keys"].([]any)) != 0) {
		t.Errorf("open tasks after the restore: %v, %v", tasks, err)
	}
	if r := mustReadOn(t, c, "pecreds/process/long/resolve/crm"); r.Data["username"] != "lea" {
		t.Errorf("long resolves %v after the restore", r.Data)
	}
	if _, err := c.Sys().Renew(long.LeaseID, 3600); err != nil {
		t.Errorf("renewing long after the restore: %v", err)
	}
}
