package main

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
)

// complete completes a task with the credentials the form gives, as the signed-in user
// (task/:id/complete): pecreds refuses anyone but the task's owner, so a user who posts another
// user's task id gets 403 from Vault, and from here. The credentials go to Vault and nowhere else:
// no page shows them, no log or error names them.
func (a *app) complete(w http.ResponseWriter, r *http.Request) {
	id, s := a.sessions.get(r)
	if s == nil {
		a.render(w, http.StatusUnauthorized, "signin", view{Error: "Sign in first."})
		return
	}
	taskID := r.PathValue("id")
	if !nameRegexp.MatchString(taskID) || strings.Contains(taskID, "@") {
		a.showTasks(w, r, s, http.StatusBadRequest, view{Error: "That is not a task id."})
		return
	}
	if err := parseForm(w, r); err != nil {
		a.showTasks(w, r, s, http.StatusRequestEntityTooLarge, view{Error: err.Error()})
		return
	}
	creds, err := credentialsFrom(r)
	if err != nil {
		a.showTasks(w, r, s, http.StatusBadRequest, view{Error: "Task " + taskID + ": " + err.Error() + "."})
		return
	}
	c, err := a.userClient(s.token)
	if err == nil {
		_, err = c.Logical().WriteWithContext(r.Context(), a.mount+"/task/"+taskID+"/complete", map[string]any{"credentials": creds})
	}
	if err != nil {
		status, msg := refusal(taskID, err)
		log.Printf("taskmanager: %q completing task %q: refused (%d)", s.user, taskID, status)
		a.showTasks(w, r, s, status, view{Error: msg})
		return
	}
	log.Printf("taskmanager: %q completed task %q", s.user, taskID)
	a.sessions.setFlash(id, fmt.Sprintf("Task %s is completed: your process goes on with your new credentials.", taskID))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// refusal turns Vault's answer to a completion into a status and words for the user. Vault's
// messages name fields and rules, never a secret value, so a 400's are shown as they are.
func refusal(taskID string, err error) (int, string) {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return http.StatusBadGateway, "Vault could not be reached; the task is unchanged. Try again."
	}
	switch re.StatusCode {
	case http.StatusForbidden:
		return http.StatusForbidden, "Task " + taskID + " is not yours to complete (or your sign-in has ended): it is unchanged."
	case http.StatusNotFound:
		return http.StatusNotFound, "There is no task " + taskID + "."
	case http.StatusBadRequest:
		return http.StatusBadRequest, "Task " + taskID + " was not completed: " + strings.Join(re.Errors, "; ")
	}
	return http.StatusBadGateway, "Vault could not complete task " + taskID + " now; it is unchanged. Try again."
}
