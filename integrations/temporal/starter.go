package temporal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.temporal.io/sdk/client"

	pecreds "github.com/pecreds/vault-plugin-pecreds/client"
)

// Starter starts workflows for users: each with its pecreds process, created with the user's
// credentials.
type Starter struct {
	Temporal client.Client
	Pecreds  *pecreds.Client
}

// StartOptions are a workflow's start options and what its process starts with.
type StartOptions struct {
	Workflow      client.StartWorkflowOptions
	Definition    string         // the process's definition registry; empty for none
	Owner         string         // the user the workflow runs for, as the engine names them
	OwnerEntityID string         // their Vault identity entity: only they complete their tasks
	Credentials   map[string]any // the user's own credentials (pecreds.Password(...)); nil for none
	// TTL is the lease's first TTL (0: config's process_ttl), until the worker's first renewal
	// sets it to Options.LeaseTTL.
	TTL time.Duration
}

// processStarted is the ProcessSignal's payload: no credential, only the lease the workflow's
// worker renews.
type processStarted struct {
	LeaseID string `json:"lease_id"`
}

// Start starts the workflow, then creates its process (ProcessID of the run) with the user's
// credentials, then tells the workflow the process's lease id. The credentials go to pecreds
// only. If the process cannot be created, or the workflow told, the workflow is terminated (and
// a process created is ended) and the error answered.
func (s *Starter) Start(ctx context.Context, o StartOptions, workflow any, args ...any) (client.WorkflowRun, error) {
	opts := o.Workflow
	opts.Memo = maps.Clone(opts.Memo)
	if opts.Memo == nil {
		opts.Memo = map[string]any{}
	}
	opts.Memo[MemoKey] = o.Owner
	run, err := s.Temporal.ExecuteWorkflow(ctx, opts, workflow, args...)
	if err != nil {
		return nil, err
	}
	id := ProcessID(run.GetID(), run.GetRunID())
	lease, err := s.Pecreds.Create(ctx, pecreds.StartInput{ID: id, Definition: o.Definition, Owner: o.Owner,
		OwnerEntityID: o.OwnerEntityID, Current: o.Credentials, TTL: o.TTL})
	if err == nil {
		err = s.Temporal.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), ProcessSignal, processStarted{LeaseID: lease})
		if err != nil {
			err = errors.Join(fmt.Errorf("telling workflow %s its process: %w", run.GetID(), err), s.Pecreds.End(context.WithoutCancel(ctx), id))
		}
	} else {
		err = fmt.Errorf("creating process %s: %w", id, err)
	}
	if err != nil {
		terr := s.Temporal.TerminateWorkflow(context.WithoutCancel(ctx), run.GetID(), run.GetRunID(), "pecreds: its process could not be started")
		return nil, errors.Join(err, terr)
	}
	return run, nil
}

// Resume wakes a workflow run that waits for its owner's task, so that it looks at its process
// now: a Task Manager's webhook bridge calls it on task-completed. Without it, the workflow
// still resumes at its next check (Options.CheckEvery).
func Resume(ctx context.Context, c client.Client, workflowID, runID string) error {
	return c.SignalWorkflow(ctx, workflowID, runID, ResumeSignal, nil)
}
