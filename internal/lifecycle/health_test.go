package lifecycle

import (
	"fmt"
	"strings"
	"testing"
)

var defaultMapping = map[string]string{
	"auth_failed": Broken, "credentials_expired": Broken, "credentials_unavailable": Broken,
	"forbidden": Failed, "unavailable": Running,
	"quota_exceeded": Running, // an operator's own class
}

// kinds are the credentials a reported call may have been served with.
var kinds = map[string]Used{
	"current":              {Kind: UsedCurrent, Index: 0, Type: "current"},
	"oauth2 technical":     {Kind: UsedTechnical, Index: 1, Type: "technical", Name: "idp", Rotates: true},
	"static technical":     {Kind: UsedTechnical, Index: 1, Type: "technical", Name: "crm-service"},
	"inline static":        {Kind: UsedStatic, Index: 2, Type: "password"},
	"none, current lost":   {Kind: UsedNone},
	"none, nothing at all": {Kind: UsedNone},
}

// TestDecideReportEveryCase walks every error class × credential kind × keep mode × Task Manager
// setting (and, for an OAuth2 technical token, each state of its refresh), and checks the health,
// whether the owner is asked, and that the reason names the service, the credential and the class.
func TestDecideReportEveryCase(t *testing.T) {
	tokens := map[string]Token{
		"refreshed":       {Generation: 4, Fresh: true},
		"refresh failed":  {Generation: 3, LastError: "the token endpoint answered HTTP 503"},
		"same generation": {Generation: 3, Fresh: true, Retried: true},
	}
	for class, mapped := range defaultMapping {
		for kindName, used := range kinds {
			for _, keep := range []string{"persistent", "transient", "none"} {
				for _, tm := range []bool{true, false} {
					tokenCases := map[string]Token{"-": {}}
					if used.Rotates {
						tokenCases = tokens
					}
					for tokName, tok := range tokenCases {
						r := Report{Service: "crm", Class: class, Mapped: mapped, Used: used, Token: tok, TaskManager: tm, KeepNone: keep == "none"}
						if kindName == "none, current lost" {
							r.CurrentUnusable = "lost"
						}
						name := fmt.Sprintf("%s/%s/keep=%s/task_manager=%v/token=%s", class, kindName, keep, tm, tokName)
						checkVerdict(t, name, r, DecideReport(r))
					}
				}
			}
		}
	}
}

// checkVerdict states the rules once, independently of DecideReport's code paths.
func checkVerdict(t *testing.T, name string, r Report, v Verdict) {
	t.Helper()
	retryable := r.Used.Rotates && (r.Class == "auth_failed" || r.Class == "credentials_expired")
	current := r.Used.Kind == UsedCurrent || r.CurrentUnusable != ""
	want := r.Mapped
	switch {
	case retryable && r.Token.Fresh && !r.Token.Retried:
		want = Running
	case current && r.Mapped == Broken && (!r.TaskManager || r.KeepNone):
		want = Failed
	}
	if v.Health != want {
		t.Errorf("%s: health %s, want %s", name, v.Health, want)
	}
	if wantTask := current && want == Broken; v.OpenTask != wantTask {
		t.Errorf("%s: open task %v, want %v", name, v.OpenTask, wantTask)
	}
	if wantRetry := retryable && want == Running; (v.RetryGeneration != 0) != wantRetry || (wantRetry && v.RetryGeneration != r.Token.Generation) {
		t.Errorf("%s: retry generation %d", name, v.RetryGeneration)
	}
	if want == Running {
		if v.Reason != "" {
			t.Errorf("%s: a running process has reason %q", name, v.Reason)
		}
		return
	}
	for _, part := range []string{`service "crm"`, "(" + r.Class + ")", describeUsed(r.Used, r.CurrentUnusable)} {
		if !strings.Contains(v.Reason, part) {
			t.Errorf("%s: reason %q does not name %s", name, v.Reason, part)
		}
	}
}

// The case an operator met: the current token expired, the engine was served the static
// technical credential after it and reported credentials_expired. The reason names the service,
// the credential and the class; no task (the owner cannot fix a technical credential).
func TestDecideReportNamesServiceCredentialAndClass(t *testing.T) {
	v := DecideReport(Report{Service: "crm", Class: "credentials_expired", Mapped: Broken, TaskManager: true,
		Used: Used{Kind: UsedTechnical, Index: 1, Type: "technical", Name: "crm-service"}})
	if v.Health != Broken || v.OpenTask || v.Reason != `service "crm": technical credential "crm-service" failed (credentials_expired)` {
		t.Errorf("%+v", v)
	}
}
