package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"log"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/api"
)

//go:embed templates/*.html templates/style.css
var files embed.FS

// pages are the service's HTML templates (html/template: everything is escaped for its context).
type pages struct{ t *template.Template }

func parsePages() (*pages, error) {
	t, err := template.New("").Funcs(template.FuncMap{"when": when}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &pages{t: t}, nil
}

// taskView is a task as the page shows it: what it is about, never a credential.
type taskView struct {
	ID, ProcessID, Service, Reason, Created, About string
	opened                                         string // RFC 3339, for the order
}

// view is what a page renders.
type view struct {
	User, Username, Flash, Error string
	Tasks                        []taskView
	Notices                      []event
}

// render writes a page, built whole first so a template error is a clean 500.
func (a *app) render(w http.ResponseWriter, status int, name string, v view) {
	var buf bytes.Buffer
	if err := a.pages.t.ExecuteTemplate(&buf, name, v); err != nil {
		log.Printf("taskmanager: rendering %s: %v", name, err)
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (a *app) style(w http.ResponseWriter, _ *http.Request) {
	css, _ := files.ReadFile("templates/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write(css)
}

// userClient is a Vault client holding the signed-in user's token.
func (a *app) userClient(token string) (*api.Client, error) {
	c, err := a.vault.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}

// home is the sign-in page, or the signed-in user's open tasks.
func (a *app) home(w http.ResponseWriter, r *http.Request) {
	_, s := a.sessions.get(r)
	if s == nil {
		a.render(w, http.StatusOK, "signin", view{})
		return
	}
	a.showTasks(w, r, s, http.StatusOK, view{Flash: s.flash})
}

// showTasks renders the user's open tasks (task/mine, as the user) with v's message. A token
// Vault refuses (revoked, expired) ends the session: the user signs in again.
func (a *app) showTasks(w http.ResponseWriter, r *http.Request, s *session, status int, v view) {
	v.User, v.Notices = s.user, a.notices.of(s.entity)
	tasks, err := a.myTasks(r.Context(), s.token)
	var re *api.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		if id, _ := a.sessions.get(r); id != "" {
			a.sessions.remove(id)
		}
		a.sessions.clearCookie(w, r)
		a.render(w, http.StatusUnauthorized, "signin", view{Error: "Your sign-in has ended. Sign in again."})
		return
	case err != nil:
		log.Printf("taskmanager: listing the tasks of %q: %v", s.user, err)
		v.Error, status = "Your tasks could not be listed: Vault did not answer as it should. Try again, or sign in again.", http.StatusBadGateway
	}
	v.Tasks = tasks
	a.render(w, status, "tasks", v)
}

func (a *app) myTasks(ctx context.Context, token string) ([]taskView, error) {
	c, err := a.userClient(token)
	if err != nil {
		return nil, err
	}
	list, err := c.Logical().ListWithContext(ctx, a.mount+"/task/mine")
	if err != nil || list == nil {
		return nil, err
	}
	keys, _ := list.Data["keys"].([]any)
	info, _ := list.Data["key_info"].(map[string]any)
	var out []taskView
	for _, k := range keys {
		id, _ := k.(string)
		i, _ := info[id].(map[string]any)
		tv := taskView{ID: id}
		tv.ProcessID, _ = i["process_id"].(string)
		tv.Service, _ = i["service"].(string)
		tv.Reason, _ = i["reason"].(string)
		tv.opened, _ = i["created"].(string)
		tv.Created = when(tv.opened)
		tv.About = about(tv.Reason, tv.Service, tv.ProcessID)
		out = append(out, tv)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].opened < out[j].opened })
	return out, nil
}

// signIn logs the user in to Vault with userpass and keeps the token in a new session.
func (a *app) signIn(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		a.render(w, http.StatusRequestEntityTooLarge, "signin", view{Error: err.Error()})
		return
	}
	user, err := formValue(r, "username", "the user name", maxNameBytes, true)
	if err == nil && !nameRegexp.MatchString(user) {
		err = errors.New("the user name holds characters it may not")
	}
	if err != nil {
		a.render(w, http.StatusBadRequest, "signin", view{Error: err.Error()})
		return
	}
	pw, err := formValue(r, "password", "the password", maxSecretBytes, true)
	if err != nil {
		a.render(w, http.StatusBadRequest, "signin", view{Username: user, Error: err.Error()})
		return
	}
	secret, err := a.vault.Logical().WriteWithContext(r.Context(), a.userpass+"/login/"+user, map[string]any{"password": pw})
	if err != nil || secret == nil || secret.Auth == nil {
		status, msg := http.StatusUnauthorized, "Sign-in failed: the user name or the password is wrong."
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode >= 500 {
			status, msg = http.StatusBadGateway, "Sign-in failed: Vault could not be reached. Try again later."
		}
		a.render(w, status, "signin", view{Username: user, Error: msg})
		return
	}
	a.endSession(r) // a new sign-in gets a new session id; an earlier one ends
	ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second
	id, expires, ended, err := a.sessions.create(secret.Auth.ClientToken, user, secret.Auth.EntityID, ttl)
	if err != nil {
		ended = append(ended, secret.Auth.ClientToken) // a sign-in refused leaves no live token
	}
	for _, token := range ended {
		a.revoke(r.Context(), token)
	}
	if err != nil {
		a.render(w, http.StatusServiceUnavailable, "signin", view{Error: err.Error()})
		return
	}
	a.sessions.setCookie(w, r, id, expires)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signOut ends the session and revokes its Vault token.
func (a *app) signOut(w http.ResponseWriter, r *http.Request) {
	a.endSession(r)
	a.sessions.clearCookie(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// endSession forgets the request's session, if it has one, and revokes its Vault token.
func (a *app) endSession(r *http.Request) {
	id, s := a.sessions.get(r)
	if s == nil {
		return
	}
	if token := a.sessions.remove(id); token != "" {
		a.revoke(r.Context(), token)
	}
}

// revoke revokes a user's Vault token (a session that ended).
func (a *app) revoke(ctx context.Context, token string) {
	if c, err := a.userClient(token); err == nil {
		_ = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
}

// crossOrigin answers a post another site's page made: refused, whatever it carried.
func (a *app) crossOrigin(w http.ResponseWriter, r *http.Request) {
	log.Printf("taskmanager: refused a cross-origin %s %s", r.Method, r.URL.Path)
	a.render(w, http.StatusForbidden, "message", view{Error: "Refused: this form was sent from another site's page."})
}
