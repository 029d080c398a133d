package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The walkthrough's end, as a user runs it: scripts/dev.sh with PECREDS_TASKMANAGER=1 (on
// non-default addresses) starts the Task Manager with pecreds's webhooks pointed at it; the
// reference engine breaks a process of Ann's; Ann signs in to the Task Manager with her dev login
// and completes her task with her new ledger password (the form posts a browser sends); the
// process resumes and books, and the page shows what the webhooks told.
func TestDevShTaskManagerEndsTheStory(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dev := startDevSh(t, "PECREDS_TASKMANAGER=1", fmt.Sprintf("PECREDS_TASKMANAGER_ADDR=127.0.0.1:%d", port))
	checkDevFilesPrivate(t, dev.dir)
	rememberSecrets("ann-ledger-password-1", "ann-ledger-password-2")
	tmURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if got, err := os.ReadFile(filepath.Join(dev.dir, "taskmanager.url")); err != nil || strings.TrimSpace(string(got)) != tmURL {
		t.Fatalf("the Task Manager's URL: %q %v, want %s", got, err, tmURL)
	}
	vault := devClient(t, dev)
	if cfg, err := vault.Logical().Read("pecreds/config"); err != nil || cfg.Data["notify_url"] != tmURL+"hooks/pecreds" {
		t.Fatalf("pecreds's notify_url: %v %v", cfg, err)
	}

	// The reference engine, as in the README, with Ann's entity from this dev.sh's files.
	entity, err := os.ReadFile(filepath.Join(dev.dir, "ann-entity-id"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "engine")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/engine").CombinedOutput(); err != nil {
		t.Fatalf("building the engine: %v\n%s", err, out)
	}
	engine := startProcess(t, filepath.Join(t.TempDir(), "engine.log"), "env", "VAULT_ADDR=http://"+dev.addr, "VAULT_TOKEN=root",
		bin, "-ann-entity", strings.TrimSpace(string(entity)), "-processes", "1", "-timeout", "3m")
	waiting := regexp.MustCompile(`waiting for Ann's task (\S+)`)
	var task string
	waitFor(t, 2*time.Minute, func() bool {
		m := waiting.FindStringSubmatch(engine.log())
		if m != nil {
			task = m[1]
		}
		return m != nil
	})

	browser := tmBrowser(t, tmURL)
	browser.post(t, "signin", url.Values{"username": {"ann"}, "password": {"ann-dev-login"}}, http.StatusSeeOther)
	if page := browser.get(t); !strings.Contains(page, `id="task-`+task+`"`) || !strings.Contains(page, `refused the credentials your process`) {
		t.Fatalf("ann's page does not show task %s:\n%s", task, page)
	}
	browser.post(t, "tasks/"+task+"/complete", url.Values{"kind": {"password"}, "username": {"ann"}, "password": {"ann-ledger-password-2"}}, http.StatusSeeOther)
	waitFor(t, time.Minute, func() bool { return strings.Contains(engine.log(), "all 1 processes resumed and booked") })
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(browser.get(t), "task-completed") })
	if page := browser.get(t); !strings.Contains(page, "You have no open tasks") || strings.Contains(page, "ann-ledger-password-2") {
		t.Errorf("ann's page after completing:\n%s", page)
	}
}

// devClient is a root client of a dev.sh server.
func devClient(t *testing.T, dev devServer) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + dev.addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(rootToken)
	return c
}

// formClient posts forms and reads pages as a same-origin browser does, keeping the cookie.
type formClient struct {
	base string
	c    *http.Client
}

func tmBrowser(t *testing.T, base string) *formClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &formClient{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (f *formClient) post(t *testing.T, path string, form url.Values, want int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d, want %d\n%s", path, resp.StatusCode, want, body)
	}
}

func (f *formClient) get(t *testing.T) string {
	t.Helper()
	resp, err := f.c.Get(f.base)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
