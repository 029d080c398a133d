package pecreds

import (
	"github.com/pecreds/vault-plugin-pecreds/internal/census"
	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A process's summary for the census (the process itself is internal/lifecycle's).

const (
	processStoragePrefix = "process/"
)

// summarize is what the census keeps of a process.
func summarize(p *lifecycle.Process) census.Process {
	return census.Process{ID: p.ID, Definition: p.Definition, Health: p.Health, Keep: p.KeepCredentials,
		OpenTask: p.TaskID != "", Technicals: credential.TechnicalNames(p.Runtime), TaskID: p.TaskID, OwnerEntityID: p.OwnerEntityID}
}
