package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumBin is Debian's chromium, which scripts/test.sh installs when it is missing.
const chromiumBin = "/usr/bin/chromium"

// taskManager is examples/taskmanager, built and started for one test.
type taskManager struct {
	url  string // ends in "/"
	proc *process
}

// startTaskManager builds the Task Manager and starts it on a free port, for the users of p, with
// the webhook secret in secretFile; it prints its URL first.
func startTaskManager(t *testing.T, p *people, secretFile string) *taskManager {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "taskmanager")
	build := exec.Command("go", "build", "-o", bin, "./examples/taskmanager")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Task Manager: %v\n%s", err, out)
	}
	proc := startProcess(t, filepath.Join(dir, "taskmanager.log"), bin, "-listen", "127.0.0.1:0", "-vault", env.addr,
		"-mount", p.mount, "-userpass", p.userpass, "-webhook-secret-file", secretFile)
	var url string
	started := regexp.MustCompile(`(?m)^(http://127\.0\.0\.1:\d+/)$`)
	if !poll(30*time.Second, 50*time.Millisecond, func() bool {
		m := started.FindStringSubmatch(proc.log())
		if m != nil {
			url = m[1]
		}
		return m != nil || proc.cmd.ProcessState != nil
	}) || url == "" {
		t.Fatalf("the Task Manager did not start:\n%s", proc.log())
	}
	return &taskManager{url: url, proc: proc}
}

// newBrowser starts headless Chromium with a fresh profile, closed when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Fatalf("the browser tests need Debian's chromium at %s (scripts/test.sh installs it): %v", chromiumBin, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 1000))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// browse runs steps that load a page and answers its HTTP status.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// pageText is the text of the page's body.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return text
}

// signIn signs user in on the Task Manager's page, as a person types it.
func signIn(t *testing.T, ctx context.Context, tm *taskManager, user string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(tm.url), chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), user+"-vault-login")); err != nil {
		t.Fatalf("%s fills in the sign-in form: %v", user, err)
	}
	if status := browse(t, ctx, user+" signs in", chromedp.Click(chromedp.CSS(`#signin button`))); status != http.StatusOK {
		t.Fatalf("%s signing in: status %d: %s", user, status, pageText(t, ctx))
	}
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("user"))); err != nil || got != user {
		t.Fatalf("signed in as %q (%v), want %s", got, err, user)
	}
}

// sessionCookie is the Task Manager's cookie as the browser holds it.
func sessionCookie(t *testing.T, ctx context.Context, tm *taskManager) *network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tm.url}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "taskmanager_session" {
			return c
		}
	}
	t.Fatalf("no session cookie among %d", len(res.Cookies))
	return nil
}

// brokenTaskOf starts a process for Ann and has the engine report her password refused: the
// process is broken and waits for her task, whose id this answers.
func brokenTaskOf(t *testing.T, p *people, id string) string {
	t.Helper()
	if _, err := p.engine.Logical().Write(p.mount+"/process/"+id, map[string]any{
		"definition": "orders", "owner": "ann", "owner_entity_id": p.annEntity, "current": userCurrent(t, "ann"),
	}); err != nil {
		t.Fatal(err)
	}
	s, err := p.engine.Logical().Write(p.mount+"/process/"+id+"/report", map[string]any{"service": "crm", "error": "auth_failed", "message": "401 from CRM"})
	if err != nil || s.Data["health"] != "broken" || s.Data["task_id"] == "" {
		t.Fatalf("the engine reports %s's failure: %v %v", id, s, err)
	}
	return s.Data["task_id"].(string)
}

// The Task Manager in a real browser: Ann signs in with her own Vault login, sees the tasks her
// processes' failures made in plain words (and what the webhooks told), a page of another origin
// cannot complete one in her name, she completes one and its process resumes; Bob sees none of
// her tasks and cannot complete one by posting its id; signing out ends the session.
func TestTaskManagerInABrowser(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": []map[string]any{{"type": "current"}}},
	}})
	secret := webhookSecret("taskmanager-webhooks")
	secretFile := filepath.Join(t.TempDir(), "notify-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := startTaskManager(t, p, secretFile)
	write(t, m+"/config", map[string]any{"notify_url": tm.url + "hooks/pecreds", "notify_secret": secret, "notify_timeout": "2s"})
	mine, theirs := brokenTaskOf(t, p, "order-7"), brokenTaskOf(t, p, "order-8")
	rememberSecrets("ann-vault-login", "bob-vault-login", "ann-browser-password", "mallory-password")

	ctx := newBrowser(t)
	signIn(t, ctx, tm, "ann")
	annSeesHerTasks(t, ctx, tm, mine, theirs)
	crossOriginRefused(t, ctx, p, tm, theirs)
	annCompletes(t, ctx, p, tm, mine)
	signOutEnds(t, ctx, tm)

	signIn(t, ctx, tm, "bob")
	bobCannotCompleteAnns(t, ctx, p, tm, theirs)
	webhooksVerified(t, tm)
	for _, s := range []string{"ann-vault-login", "ann-browser-password", "mallory-password", "hvs."} {
		if strings.Contains(tm.proc.log(), s) {
			t.Errorf("the Task Manager's log holds a secret (%d characters)", len(s))
		}
	}
}

func annSeesHerTasks(t *testing.T, ctx context.Context, tm *taskManager, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("task-"+id))); err != nil {
			t.Fatalf("ann's task %s is not on her page: %v", id, err)
		}
	}
	text := pageText(t, ctx)
	for _, want := range []string{`The service "crm" refused the credentials your process "order-7" uses`, "Process order-8, service crm", "New password", "New token", "New OAuth2 grant"} {
		if !strings.Contains(text, want) {
			t.Errorf("ann's page does not say %q:\n%s", want, text)
		}
	}
	// The webhooks pecreds sent (verified, hers) show on her page.
	if !poll(30*time.Second, 500*time.Millisecond, func() bool {
		return browse(t, ctx, "reloading", chromedp.Reload()) == http.StatusOK && strings.Count(pageText(t, ctx), "task-created") == 2
	}) {
		t.Fatalf("the webhooks' task-created events are not on ann's page:\n%s\n%s", pageText(t, ctx), tm.proc.log())
	}
	c := sessionCookie(t, ctx, tm)
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || len(c.Value) != 43 || strings.HasPrefix(c.Value, "hvs.") {
		t.Errorf("the session cookie: HttpOnly %v, SameSite %q, a value of %d characters", c.HTTPOnly, c.SameSite, len(c.Value))
	}
	if seen, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || seen != "" {
		t.Errorf("a script reads the cookie: %q %v", seen, err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(screenshot) < 1000 || !bytes.HasPrefix(screenshot, []byte("\x89PNG")) {
		t.Fatalf("the task page's screenshot is not a PNG (%d bytes)", len(screenshot))
	}
	// The README shows docs/taskmanager.png; PECREDS_SCREENSHOT=1 makes it anew from this run
	// (each run's task ids and times differ, so it is not rewritten on every run).
	if os.Getenv("PECREDS_SCREENSHOT") == "1" {
		if err := os.WriteFile("../docs/taskmanager.png", screenshot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// crossOriginRefused: a page of another origin (another port of the same host, so the browser
// even sends the SameSite=Strict cookie) posts a completion form to the Task Manager in Ann's
// browser: 403, and the task stays open.
func crossOriginRefused(t *testing.T, ctx context.Context, p *people, tm *taskManager, id string) {
	t.Helper()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form method="post" action="%stasks/%s/complete"><input type="hidden" name="kind" value="password">
<input type="hidden" name="username" value="mallory"><input type="hidden" name="password" value="mallory-password">
<button id="go" type="submit">Win a prize</button></form>`, tm.url, id)
	}))
	defer evil.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.ID("go"))); err != nil {
		t.Fatal(err)
	}
	if status := browse(t, ctx, "the other origin's post", chromedp.Click(chromedp.ID("go"))); status != http.StatusForbidden {
		t.Errorf("a form post from another origin: status %d, want 403: %s", status, pageText(t, ctx))
	}
	// The same without a browser's Sec-Fetch-Site: the Origin header alone is refused too.
	req, _ := http.NewRequest(http.MethodPost, tm.url+"tasks/"+id+"/complete", strings.NewReader("kind=password&username=m&password=mallory-password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	req.AddCookie(&http.Cookie{Name: "taskmanager_session", Value: sessionCookie(t, ctx, tm).Value})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a post with a foreign Origin: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if task := read(t, p.mount+"/task/"+id).Data; task["status"] != "open" {
		t.Errorf("after the cross-origin posts the task is %v", task)
	}
}

// annCompletes types her new password into her task's form: the task closes, the process runs
// again and resolves the new password; the page never shows it.
func annCompletes(t *testing.T, ctx context.Context, p *people, tm *taskManager, id string) {
	t.Helper()
	form := `#task-` + id + ` form[data-kind="password"] `
	if err := chromedp.Do(ctx, chromedp.Navigate(tm.url), chromedp.WaitVisible(chromedp.CSS(form)),
		chromedp.SendKeys(chromedp.CSS(form+`input[name="password"]`), "ann-browser-password")); err != nil {
		t.Fatal(err)
	}
	if status := browse(t, ctx, "ann completes her task", chromedp.Click(chromedp.CSS(form+`button`))); status != http.StatusOK {
		t.Fatalf("completing: status %d: %s", status, pageText(t, ctx))
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("flash")))
	if err != nil || !strings.Contains(flash, "Task "+id+" is completed") {
		t.Errorf("after completing: %q %v", flash, err)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil || strings.Contains(html, "ann-browser-password") || strings.Contains(html, "hvs.") || strings.Contains(html, "task-"+id+`"`) {
		t.Errorf("the page after completing shows a secret or the closed task (%v)", err)
	}
	proc := read(t, p.mount+"/process/order-7").Data
	if proc["health"] != "running" || proc["task_id"] != "" {
		t.Errorf("the process after the task: %v", proc)
	}
	if got := read(t, p.mount+"/process/order-7/resolve/crm").Data["password"]; got != "ann-browser-password" {
		t.Errorf("the process resolves another password after the task")
	}
	if task := read(t, p.mount+"/task/"+id).Data; task["status"] != "completed" || task["completed_by"] != p.annEntity {
		t.Errorf("the task: %v", task)
	}
}

// signOutEnds: after signing out the page asks to sign in, and the old session id is worth nothing.
func signOutEnds(t *testing.T, ctx context.Context, tm *taskManager) {
	t.Helper()
	old := sessionCookie(t, ctx, tm).Value
	if status := browse(t, ctx, "signing out", chromedp.Click(chromedp.ID("signout"))); status != http.StatusOK {
		t.Fatalf("signing out: status %d", status)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("signin"))); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, tm.url, nil)
	req.AddCookie(&http.Cookie{Name: "taskmanager_session", Value: old})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := make([]byte, 64<<10)
	n, _ := resp.Body.Read(body)
	if !strings.Contains(string(body[:n]), `id="signin"`) {
		t.Errorf("the old session still shows tasks")
	}
}

// bobCannotCompleteAnns: Bob sees none of Ann's tasks, and a completion he posts with her task's
// id (a form he makes in his own page) is refused by pecreds: 403, the task open, the process
// broken.
func bobCannotCompleteAnns(t *testing.T, ctx context.Context, p *people, tm *taskManager, id string) {
	t.Helper()
	text := pageText(t, ctx)
	if !strings.Contains(text, "You have no open tasks") || strings.Contains(text, id) || strings.Contains(text, "order-") {
		t.Errorf("bob's page: %s", text)
	}
	post := fmt.Sprintf(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/tasks/%s/complete";
for (const [k, v] of [["kind", "password"], ["username", "bob"], ["password", "mallory-password"]]) {
  const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i); }
document.body.appendChild(f); f.submit(); })()`, id)
	if status := browse(t, ctx, "bob posts ann's task id", chromedp.Evaluate[chromedp.Void](post)); status != http.StatusForbidden {
		t.Errorf("bob completing ann's task: status %d, want 403: %s", status, pageText(t, ctx))
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error"))); err != nil || !strings.Contains(msg, "is not yours to complete") {
		t.Errorf("bob is told: %q %v", msg, err)
	}
	if task := read(t, p.mount+"/task/"+id).Data; task["status"] != "open" {
		t.Errorf("ann's task after bob's post: %v", task)
	}
	if proc := read(t, p.mount+"/process/order-8").Data; proc["health"] != "broken" || proc["task_id"] != id {
		t.Errorf("ann's process after bob's post: %v", proc)
	}
}

// webhooksVerified: a delivery that does not carry pecreds's signature is refused.
func webhooksVerified(t *testing.T, tm *taskManager) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tm.url+"hooks/pecreds", strings.NewReader(`{"id":"x","type":"task-created"}`))
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,Zm9yZ2VkIHNpZ25hdHVyZSBvZiAzMiBieXRlcyEhISE=")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a forged delivery: status %d, want 401", resp.StatusCode)
	}
}
