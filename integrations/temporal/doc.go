// Package temporal runs Temporal workflows with their user's credentials from pecreds.
//
// A workflow started for a user gets a pecreds process of its own, whose id is derived from the
// workflow's id and run id (ProcessID). The program that starts it (a web front, an API) holds the
// user's credentials for a moment and hands them to pecreds, never to Temporal:
//
//	s := &temporal.Starter{Temporal: temporalClient, Pecreds: client.New(vaultClient, "pecreds")}
//	run, err := s.Start(ctx, temporal.StartOptions{Workflow: client.StartWorkflowOptions{ID: "order-42",
//		TaskQueue: "orders"}, Definition: "orders", Owner: "ann", OwnerEntityID: annEntity,
//		Credentials: client.Password("ann", password)}, OrderWorkflow, order)
//
// The workflow's input, its history, its memo and every activity's input and result hold no
// credential: the starter sends Temporal only the process's lease id (a signal), which grants
// nothing without a Vault token allowed to renew it.
//
// The worker runs with the package's interceptor (NewInterceptor), which keeps each such
// workflow's process lease renewed through local activities on a durable timer, and ends the
// process when the workflow completes, fails or is cancelled. A workflow terminated (or timed
// out) runs no more code: its process ends when the lease it no longer renews expires
// (Options.LeaseTTL).
//
// An activity asks for the credentials of a service, or of a URL, with one call; when the service
// refuses them it says so with AuthFailed:
//
//	func (a *Activities) Book(ctx context.Context, entry Entry) error {
//		creds, err := temporal.Credentials(ctx, "ledger")
//		if err != nil {
//			return err
//		}
//		resp, err := a.call(creds.Fields["username"], creds.Fields["password"], entry)
//		if resp.StatusCode == http.StatusUnauthorized {
//			return temporal.AuthFailed("ledger", err)
//		}
//		...
//	}
//
// The interceptor reports the failure to pecreds. When pecreds answers that the process is broken
// (its owner's credentials failed; a task asks the owner for new ones), the activity ends with a
// non-retryable failure of type WaitErrorType and the workflow waits durably: it reads the
// process's health every Options.CheckEvery (a timer), or at once when signalled ResumeSignal (by
// WebhookBridge, which receives pecreds's task-completed webhook, or Resume), and once the owner
// has completed the task it runs the activity (or local activity) again. While it waits, the
// workflow's current details (Temporal's UI, `temporal workflow metadata`) and StatusQuery name
// the task.
//
// docs/temporal.md is the user's guide.
package temporal
