package temporal_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// noCredentialsInTemporal reads the run's whole history from the server, every event with its
// payloads (inputs, results, signals, markers of local activities, failures, memo), and what a
// describe shows, in the protobuf encoding the server stores (payload data raw), and finds none
// of the secrets the tests wrote, while finding what it should (the order, Ann's name, the
// process id, the wait), so that the search is seen to work.
func noCredentialsInTemporal(t *testing.T, ctx context.Context, c client.Client, run client.WorkflowRun, process string) {
	t.Helper()
	var stored []byte
	var types []string
	events := 0
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b...)
		types = append(types, strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"))
		events++
	}
	t.Logf("the history: %s", strings.Join(types, " "))
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	stored = append(stored, b...)
	for _, want := range []string{"order-7", `"ann"`, process, "PecredsProcessBroken", "crm: 200"} {
		if !bytes.Contains(stored, []byte(want)) {
			t.Errorf("the history (%d events) lacks %q: the search does not see what it should", events, want)
		}
	}
	secrets.Lock()
	defer secrets.Unlock()
	for _, s := range secrets.values {
		if bytes.Contains(stored, []byte(s)) {
			t.Errorf("the history (%d events) holds a secret value the tests wrote (%d characters)", events, len(s))
		}
	}
	t.Logf("%d events and the describe answer (%d bytes) hold none of %d secrets", events, len(stored), len(secrets.values))
}

// cliShowsTask runs the Temporal CLI as an operator would while the workflow waits: `temporal
// workflow metadata` shows its current details and `temporal workflow query --name
// pecreds-status` its Status; both name the task.
func cliShowsTask(t *testing.T, ctx context.Context, run client.WorkflowRun, task string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"metadata"}, {"query", "--name", temporal.StatusQuery}} {
		args = append(append([]string{"workflow"}, args...), "--address", env.temporal.FrontendHostPort(),
			"--workflow-id", run.GetID(), "--run-id", run.GetRunID())
		out, err := exec.CommandContext(ctx, env.tempBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("temporal %v: %v\n%s", args, err, out)
		}
		if !bytes.Contains(out, []byte(task)) {
			t.Errorf("temporal %v does not name task %s:\n%s", args, task, out)
		}
		t.Logf("temporal %s, while the workflow waits:\n%s", args[1], out)
	}
}
