package lifecycle

import "fmt"

// The health decision: what a reported failure means — the health the operator's mapping gives,
// unless a failing OAuth2 technical token is worth one retry with a fresh one, and whether the
// process's owner is asked for new credentials — with a reason that names the service, the
// credential and the error class.

// Healths of a process.
const (
	Running = "running"
	Broken  = "broken"
	Failed  = "failed"
)

// UsedKind is what kind of credential a reported call was served with.
type UsedKind int

const (
	// UsedNone: nothing was usable for the service when the failure was reported.
	UsedNone UsedKind = iota
	// UsedCurrent: the process's current credentials (the user's own).
	UsedCurrent
	// UsedTechnical: a technical credential, by name.
	UsedTechnical
	// UsedStatic: a credential written in the registry or runtime layer itself.
	UsedStatic
)

// Used is the credential a reported call was served with, as a resolve at report time sees it.
type Used struct {
	Kind    UsedKind
	Index   int    // its place in the service's list
	Type    string // its type (password, token, technical, ...)
	Name    string // a technical credential's name
	Rotates bool   // a technical credential whose token pecreds fetches (oauth2)
}

// Token is what a rotating technical credential's token is now, after the report asked for a
// fresh one.
type Token struct {
	Generation int
	Fresh      bool   // valid, and its last request did not fail
	Retried    bool   // the process was already told to retry with this very generation
	LastError  string // why the last request failed, if it did
}

// Report is a reported failure and what the decision needs to know around it.
type Report struct {
	Service string
	Class   string // the error class reported
	Mapped  string // the health config.error_health_mapping gives the class
	Used    Used
	// CurrentUnusable: nothing was usable because the current credentials are lost or expired.
	CurrentUnusable string
	Token           Token // for a rotating technical credential
	TaskManager     bool  // config.task_manager
	KeepNone        bool  // the process keeps no current credentials
}

// Verdict is what the failure means for the process.
type Verdict struct {
	Health string
	Reason string // names the service, the credential and the class
	// OpenTask: the user's own credentials failed and the process waits for its owner.
	OpenTask bool
	// RetryGeneration, when not 0: the process is told to retry with this token generation.
	RetryGeneration int
}

// DecideReport decides a reported failure. A failing OAuth2 technical token (auth_failed,
// credentials_expired) is retried once per token generation with a fresh token; the same
// generation failing again, or no fresh token to be had, falls to the mapping. A failure of the
// user's own credentials that the mapping sends to broken asks the owner — or, without a Task
// Manager or without kept credentials, fails the process. Anything else takes the mapping.
func DecideReport(r Report) Verdict {
	what := describeUsed(r.Used, r.CurrentUnusable)
	v := Verdict{Health: r.Mapped, Reason: fmt.Sprintf("service %q: %s failed (%s)", r.Service, what, r.Class)}
	current := r.Used.Kind == UsedCurrent || (r.Used.Kind == UsedNone && r.CurrentUnusable != "")
	switch {
	case r.Used.Kind == UsedTechnical && r.Used.Rotates && (r.Class == "auth_failed" || r.Class == "credentials_expired"):
		switch {
		case r.Token.Retried:
			v.Reason = fmt.Sprintf("service %q: %s failed again with a fresh token (%s)", r.Service, what, r.Class)
		case !r.Token.Fresh:
			why := r.Token.LastError
			if why == "" {
				why = "no token request could be made"
			}
			v.Reason = fmt.Sprintf("service %q: %s failed and could not be refreshed: %s (%s)", r.Service, what, why, r.Class)
		default:
			return Verdict{Health: Running, RetryGeneration: r.Token.Generation}
		}
	case current:
		if v.Health == Broken && (!r.TaskManager || r.KeepNone) {
			v.Health = Failed // without a Task Manager the engine aborts, as it always did
		}
		v.OpenTask = v.Health == Broken
	}
	if v.Health == Running {
		v.Reason = ""
	}
	return v
}

// describeUsed names the credential a call was served with.
func describeUsed(u Used, currentUnusable string) string {
	switch u.Kind {
	case UsedCurrent:
		return "the current credentials"
	case UsedTechnical:
		return fmt.Sprintf("technical credential %q", u.Name)
	case UsedStatic:
		return fmt.Sprintf("credential [%d] (%s)", u.Index, u.Type)
	}
	if currentUnusable != "" {
		return fmt.Sprintf("the current credentials (%s)", currentUnusable)
	}
	return "no usable credential"
}
