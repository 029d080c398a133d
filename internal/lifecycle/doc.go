// Package lifecycle is what pecreds decides about its processes and tasks, without storage, clock
// or network: the process and task as stored, the health a reported failure means (health.go),
// and the state machine (transition.go) — every change of a process's health or of a task is one
// pure transition from a state and an event to the next state and the ordered writes and events
// that store it. The root package's one writer carries those out; nothing else writes a process
// or a task.
package lifecycle
