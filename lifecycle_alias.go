package pecreds

import "github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"

// The root package's former names of what internal/lifecycle now owns, kept for one change so
// that the move reads apart from the renaming of its uses; the next change renames them away.

type (
	processEntry = lifecycle.Process
	taskEntry    = lifecycle.Task
	lifeState    = lifecycle.State
	lifeEvent    = lifecycle.Event
	effect       = lifecycle.Effect
	effectKind   = lifecycle.EffectKind
)

const (
	lifeFailure     = lifecycle.Failure
	lifeExpiring    = lifecycle.Expiring
	lifeComplete    = lifecycle.Complete
	lifeCancel      = lifecycle.Cancel
	lifeResume      = lifecycle.Resume
	lifeEnd         = lifecycle.End
	lifeOrphan      = lifecycle.Orphan
	lifeRepair      = lifecycle.Repair
	lifeRenew       = lifecycle.Renew
	lifeForgetTask  = lifecycle.ForgetTask
	lifeRuntime     = lifecycle.Runtime
	lifeFoldCurrent = lifecycle.FoldCurrent

	effAnnounce      = lifecycle.Announce
	effPutCurrent    = lifecycle.PutCurrent
	effDeleteCurrent = lifecycle.DeleteCurrent
	effPutTask       = lifecycle.PutTask
	effPutProcess    = lifecycle.PutProcess
	effDeleteProcess = lifecycle.DeleteProcess
	effDeleteTask    = lifecycle.DeleteTask

	taskOpen      = lifecycle.StatusOpen
	taskCompleted = lifecycle.StatusCompleted
	taskCancelled = lifecycle.StatusCancelled

	keepPersistent = lifecycle.KeepPersistent
	keepTransient  = lifecycle.KeepTransient
	keepNone       = lifecycle.KeepNone

	eventProcessBroken  = lifecycle.ProcessBroken
	eventProcessResumed = lifecycle.ProcessResumed
	eventTaskCreated    = lifecycle.TaskCreated
	eventTaskCompleted  = lifecycle.TaskCompleted
	eventTaskCancelled  = lifecycle.TaskCancelled
)

func transition(st lifeState, ev lifeEvent) (lifeState, []effect, error) {
	return lifecycle.Transition(st, ev)
}
