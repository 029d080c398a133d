package tests

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Ann completes her tasks in the Task Manager with the other kinds of credentials its forms offer,
// a token with an expiry and a new OAuth2 grant (its client an oauth2 technical credential): each
// process resumes and resolves what she typed, and the grant's refresh token never comes back.
func TestTaskManagerCompletesWithATokenOrAGrant(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	createOAuth2(t, m, "idp", startTokenServer(t), "tm-grant")
	secretFile := filepath.Join(t.TempDir(), "notify-secret")
	if err := os.WriteFile(secretFile, []byte(webhookSecret("taskmanager-kinds")), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := startTaskManager(t, p, secretFile)
	tokenTask, grantTask := brokenTaskOf(t, p, "order-7"), brokenTaskOf(t, p, "order-8")
	rememberSecrets("ann-typed-token", "ann-typed-access-token", "ann-typed-refresh-token")

	ctx := newBrowser(t)
	signIn(t, ctx, tm, "ann")
	completeIn(t, ctx, tm, tokenTask, "token", map[string]string{"token": "ann-typed-token", "expires_at": "2030-01-02T03:04:05Z"})
	completeIn(t, ctx, tm, grantTask, "oauth2_user", map[string]string{"client": "idp", "access_token": "ann-typed-access-token", "refresh_token": "ann-typed-refresh-token"})

	if got := read(t, m+"/process/order-7/resolve/crm").Data; got["token"] != "ann-typed-token" || got["expires_at"] != "2030-01-02T03:04:05Z" {
		t.Errorf("order-7 resolves another token (expires_at %v)", got["expires_at"])
	}
	got := read(t, m+"/process/order-8/resolve/crm").Data
	if got["access_token"] != "ann-typed-access-token" || got["refresh_token"] != nil {
		t.Errorf("order-8 resolves another grant, or its refresh token (fields %d)", len(got))
	}
	for _, id := range []string{"order-7", "order-8"} {
		if proc := read(t, m+"/process/"+id).Data; proc["health"] != "running" {
			t.Errorf("%s after its task: %v", id, proc["health"])
		}
	}
}

// completeIn opens the form of kind in a task's card, types fields into it and sends it.
func completeIn(t *testing.T, ctx context.Context, tm *taskManager, task, kind string, fields map[string]string) {
	t.Helper()
	card := `#task-` + task
	form := card + ` form[data-kind="` + kind + `"] `
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(tm.url),
		chromedp.Click(chromedp.CSS(card + ` details:has(form[data-kind="` + kind + `"]) summary`)), chromedp.WaitVisible(chromedp.CSS(form))}
	for name, v := range fields {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(form+`input[name="`+name+`"]`), v))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("filling the %s form of task %s: %v", kind, task, err)
	}
	if status := browse(t, ctx, "completing with "+kind, chromedp.Click(chromedp.CSS(form+`button`))); status != http.StatusOK {
		t.Fatalf("completing with %s: status %d: %s", kind, status, pageText(t, ctx))
	}
	if flash := pageText(t, ctx); !strings.Contains(flash, "Task "+task+" is completed") {
		t.Errorf("after completing with %s: %s", kind, flash)
	}
}
