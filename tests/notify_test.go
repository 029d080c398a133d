package tests

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// notifyDeadAfter is the shortened dead limit linked into the tests' build of the
// plugin (testBuildPluginName, -ldflags -X); production and every other test keep 24 hours.
const notifyDeadAfter = 8 * time.Second

// webhookSecret is a Standard Webhooks signing secret (whsec_ + base64 of 32 bytes) made from a
// label, remembered for the server-log check.
func webhookSecret(label string) string {
	key := sha256.Sum256([]byte(label))
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key[:])
	rememberSecrets(secret)
	return secret
}

// receiver is a Task Manager webhook on loopback, as a Task Manager would build it: it verifies
// every delivery with the Standard Webhooks reference library (timestamp tolerance included),
// records what it receives, and can be told to fail.
type receiver struct {
	url      string
	secret   string
	verifier *standardwebhooks.Webhook
	srv      *http.Server

	mu       sync.Mutex
	failing  bool
	received []received
	badSigs  int
	attempts int
}

type received struct {
	ID        string
	Timestamp string
	Signature string
	Body      map[string]any
	Raw       string
}

func startReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/hooks/pecreds", secret: secret, verifier: wh}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	verifyErr := r.verifier.Verify(raw, req.Header)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if verifyErr != nil {
		r.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	r.received = append(r.received, received{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body, Raw: string(raw)})
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setFailing(f bool) { r.mu.Lock(); r.failing = f; r.mu.Unlock() }

// attempted is how many posts reached the receiver, accepted or not.
func (r *receiver) attempted() int { r.mu.Lock(); defer r.mu.Unlock(); return r.attempts }

func (r *receiver) events() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.received...)
}

// waitFor waits until the receiver has n distinct events.
func (r *receiver) waitFor(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	var got []received
	if poll(within, 100*time.Millisecond, func() bool { got = r.events(); return len(distinct(got)) >= n }) {
		return got
	}
	t.Fatalf("the receiver has %d distinct events after %s, want %d: %v", len(distinct(got)), within, n, types(got))
	return nil
}

func distinct(rs []received) map[string]received {
	out := map[string]received{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

func types(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Body["type"].(string)+"@"+r.Body["process_id"].(string))
	}
	return out
}

func notifyMount(t *testing.T) (string, *receiver) {
	t.Helper()
	return notifyMountOf(t, newMount(t))
}

// notifyMountOf configures notification on mount, to a receiver of its own.
func notifyMountOf(t *testing.T, mount string) (string, *receiver) {
	t.Helper()
	r := startReceiver(t, webhookSecret("webhook-hmac-key-9"))
	write(t, mount+"/config", map[string]any{"notify_url": r.url, "notify_secret": r.secret, "notify_timeout": "2s"})
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "current"}}},
	}})
	return mount, r
}

// breakProcess instantiates a process and reports its user's credentials failed: process-broken
// and task-created. It answers the task id.
func breakProcess(t *testing.T, mount, id string) string {
	t.Helper()
	write(t, mount+"/process/"+id, map[string]any{"definition": "orders", "owner": "nia", "current": userCurrent(t, "nia")})
	return write(t, mount+"/process/"+id+"/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data["task_id"].(string)
}

func TestNotifyEveryEventTypeSigned(t *testing.T) {
	mount, r := notifyMount(t)
	srv := startTokenServer(t)
	createOAuth2(t, mount, "idp", srv, "notify")

	t1 := breakProcess(t, mount, "p1")
	write(t, mount+"/task/"+t1+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "nia")})
	t2 := breakProcess(t, mount, "p2")
	write(t, mount+"/task/"+t2+"/cancel", nil)
	// A process broken by a technical credential, resumed by an operator.
	write(t, mount+"/registry/tech", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "technical", "name": "idp"}}},
	}})
	write(t, mount+"/process/p3", map[string]any{"definition": "tech"})
	write(t, mount+"/process/p3/report", map[string]any{"service": "crm", "error": "auth_failed"}) // retry
	write(t, mount+"/process/p3/report", map[string]any{"service": "crm", "error": "auth_failed"}) // broken
	write(t, mount+"/process/p3/resume", nil)

	got := r.waitFor(t, 8, 20*time.Second)
	want := []string{
		"process-broken@p1", "task-created@p1", "task-completed@p1",
		"process-broken@p2", "task-created@p2", "task-cancelled@p2",
		"process-broken@p3", "process-resumed@p3",
	}
	if strings.Join(types(got), " ") != strings.Join(want, " ") {
		t.Errorf("received %v\nwant     %v", types(got), want)
	}
	for _, e := range got {
		for _, k := range []string{"id", "type", "time", "process_id", "task_id", "service", "owner", "owner_entity_id", "reason"} {
			if _, ok := e.Body[k]; !ok {
				t.Errorf("event %s lacks %s: %s", e.ID, k, e.Raw)
			}
		}
		if e.Body["id"] != e.ID {
			t.Errorf("the body's id %v is not the header's %s", e.Body["id"], e.ID)
		}
		secrets.Lock()
		for _, s := range secrets.values {
			if s != "" && strings.Contains(e.Raw, s) {
				t.Errorf("an event body carries a secret: %s", e.Raw)
			}
		}
		secrets.Unlock()
	}
	if r.badSigs != 0 {
		t.Errorf("%d deliveries with a bad signature", r.badSigs)
	}
	status := read(t, mount+"/notify/status").Data
	if status["pending"] != json.Number("0") || status["delivered"] != json.Number("8") || status["dead"] != json.Number("0") {
		t.Errorf("status %v", status)
	}
	if cfg := mustCLI(t, "read", "-format=json", mount+"/config"); strings.Contains(cfg, r.secret) {
		t.Error("config read shows notify_secret")
	}
}

func TestNotifyReceiverDownThenBackLosesNothing(t *testing.T) {
	mount, r := notifyMount(t)
	r.setFailing(true)
	tasks := map[string]string{}
	for _, id := range []string{"a", "b", "c"} {
		tasks[id] = breakProcess(t, mount, id)
	}
	write(t, mount+"/task/"+tasks["a"]+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "nia")})
	var status map[string]any
	waitFor(t, 20*time.Second, func() bool {
		status = read(t, mount+"/notify/status").Data
		return status["pending"] == json.Number("7") && strings.Contains(status["last_error"].(string), "503")
	})
	r.setFailing(false)
	got := r.waitFor(t, 7, 30*time.Second)
	perProcess := map[string][]string{}
	for _, e := range distinctInOrder(got) {
		pid := e.Body["process_id"].(string)
		perProcess[pid] = append(perProcess[pid], e.Body["type"].(string))
	}
	if strings.Join(perProcess["a"], " ") != "process-broken task-created task-completed" {
		t.Errorf("order for a: %v", perProcess["a"])
	}
	for _, id := range []string{"b", "c"} {
		if strings.Join(perProcess[id], " ") != "process-broken task-created" {
			t.Errorf("order for %s: %v", id, perProcess[id])
		}
	}
	if n := r.attempted(); n <= 7 {
		t.Errorf("only %d delivery attempts: the failures were not retried", n)
	}
}

// distinctInOrder keeps each event's first delivery, in arrival order.
func distinctInOrder(rs []received) []received {
	seen := map[string]bool{}
	var out []received
	for _, r := range rs {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out
}

func TestNotifyPendingSurvivesPluginReload(t *testing.T) {
	mount, r := notifyMount(t)
	r.setFailing(true)
	breakProcess(t, mount, "r1")
	breakProcess(t, mount, "r2")
	waitFor(t, 30*time.Second, func() bool { return r.attempted() >= 2 }) // deliveries failed before the reload
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	r.setFailing(false)
	// The reloaded plugin's delivery starts from the stored outbox; a status read wakes the mount.
	read(t, mount+"/notify/status")
	got := r.waitFor(t, 4, 30*time.Second)
	if len(distinct(got)) != 4 {
		t.Errorf("after the reload: %v", types(got))
	}
}

func TestNotifyDeadEventsAndRetry(t *testing.T) {
	mount := "pecreds-notify-dead"
	if err := env.client.Sys().Mount(mount, &api.MountInput{Type: testBuildPluginName}); err != nil {
		t.Fatal(err)
	}
	mount, r := notifyMountOf(t, removedAtEnd(t, mount))
	r.setFailing(true)
	breakProcess(t, mount, "d1")
	var status map[string]any
	poll(notifyDeadAfter+20*time.Second, 500*time.Millisecond, func() bool {
		status = read(t, mount+"/notify/status").Data
		return status["dead"] == json.Number("2")
	})
	if status["dead"] != json.Number("2") || status["pending"] != json.Number("0") {
		t.Fatalf("after the dead limit (%s): %v", notifyDeadAfter, status)
	}
	// Dead events are never tried (internal/outbox's unit tests show it; here, a look): once a
	// live process's events reach the receiver, delivery has run, and passed d1's by.
	r.setFailing(false)
	breakProcess(t, mount, "d2")
	if got := types(distinctInOrder(r.waitFor(t, 2, 15*time.Second))); strings.Join(got, " ") != "process-broken@d2 task-created@d2" {
		t.Errorf("dead events were delivered without notify/retry, or live ones were not: %v", got)
	}
	out := mustCLI(t, "write", "-f", "-format=json", mount+"/notify/retry")
	if !strings.Contains(out, `"requeued": 2`) {
		t.Errorf("retry answered %s", out)
	}
	got := types(distinctInOrder(r.waitFor(t, 4, 15*time.Second)))
	if strings.Join(got[2:], " ") != "process-broken@d1 task-created@d1" {
		t.Errorf("after retry: %v", got)
	}

	_, err := env.client.Logical().Write(mount+"/config", map[string]any{"notify_url": "not a url"})
	badRequest(t, err, "notify_url must be an absolute https URL")
}

// Every delivery verifies with the Standard Webhooks reference library; each attempt carries its
// own timestamp, and the same webhook-id on every retry.
func TestNotifyStandardWebhooksHeadersPerAttempt(t *testing.T) {
	mount, r := notifyMount(t)
	r.setFailing(true)
	breakProcess(t, mount, "sw")
	// Two failed attempts (1 s apart by the backoff), then the receiver is back for the third.
	waitFor(t, 20*time.Second, func() bool { return r.attempted() >= 2 })
	r.setFailing(false)
	got := r.waitFor(t, 2, 20*time.Second)
	if r.badSigs != 0 {
		t.Errorf("%d deliveries did not verify", r.badSigs)
	}
	first := got[0]
	if first.Body["id"] != first.ID || !strings.HasPrefix(first.Signature, "v1,") || strings.Contains(first.Signature, " ") {
		t.Errorf("headers: id %q, body id %v, signature %q", first.ID, first.Body["id"], first.Signature)
	}
	ts, err := strconv.ParseInt(first.Timestamp, 10, 64)
	made, _ := time.Parse(time.RFC3339Nano, first.Body["time"].(string))
	if err != nil || ts <= made.Unix() {
		t.Errorf("the timestamp %q is not the retried attempt's own (the event was made at %s)", first.Timestamp, made)
	}
}

// A rotation answers the new secret once; deliveries during the overlap verify with the old and
// with the new secret, so the receiver switches without a gap. A malformed secret is a 400 that
// never echoes it.
func TestNotifySecretRotationWithoutAGap(t *testing.T) {
	mount, old := notifyMount(t)
	out := mustCLI(t, "write", "-f", "-format=json", mount+"/notify/rotate-secret")
	var rotated struct {
		Data struct {
			Secret string `json:"notify_secret"`
			Until  string `json:"previous_secret_until"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || !strings.HasPrefix(rotated.Data.Secret, "whsec_") || rotated.Data.Until == "" {
		t.Fatalf("rotate answered %s", out)
	}
	rememberSecrets(rotated.Data.Secret)
	if cfg := mustCLI(t, "read", "-format=json", mount+"/config"); strings.Contains(cfg, rotated.Data.Secret) {
		t.Error("config read shows the new secret")
	}
	breakProcess(t, mount, "rot")
	fromOld := old.waitFor(t, 2, 20*time.Second)
	newVerifier, err := standardwebhooks.NewWebhook(rotated.Data.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fromOld {
		h := http.Header{}
		h.Set("webhook-id", e.ID)
		h.Set("webhook-timestamp", e.Timestamp)
		h.Set("webhook-signature", e.Signature)
		if err := newVerifier.Verify([]byte(e.Raw), h); err != nil {
			t.Errorf("a delivery during the overlap does not verify under the new secret: %v", err)
		}
	}

	// The receiver switches to the new secret: deliveries verify there too.
	switched := startReceiver(t, rotated.Data.Secret)
	write(t, mount+"/config", map[string]any{"notify_url": switched.url})
	write(t, mount+"/process/rot/report", map[string]any{"service": "crm", "error": "forbidden"}) // task-cancelled
	switched.waitFor(t, 1, 20*time.Second)
	if switched.badSigs != 0 {
		t.Errorf("%d deliveries failed under the new secret", switched.badSigs)
	}

	const bad = "not-a-standard-webhooks-secret-77"
	rememberSecrets(bad)
	_, err = env.client.Logical().Write(mount+"/config", map[string]any{"notify_secret": bad})
	if msg := badRequest(t, err, "notify_secret must be whsec_"); strings.Contains(msg, bad) {
		t.Errorf("the 400 echoes the secret: %s", msg)
	}
}

// The receiver down with 2,000 events pending, then back: every one is delivered, each process's
// in order, and status counts them.
func TestNotifyOutageWithTwoThousandPending(t *testing.T) {
	mount, r := notifyMount(t)
	r.setFailing(true)
	const processes = 400 // five events each: process-broken, task-created, task-cancelled, ...
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < processes; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer func() { <-sem; wg.Done() }()
			task := breakProcess(t, mount, id)
			write(t, mount+"/task/"+task+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "nia")})
			write(t, mount+"/process/"+id+"/report", map[string]any{"service": "crm", "error": "auth_failed"})
		}(fmt.Sprintf("o%03d", i))
	}
	wg.Wait()
	status := read(t, mount+"/notify/status").Data
	if status["pending"] != json.Number("2000") {
		t.Fatalf("status with the receiver down: %v", status)
	}
	r.setFailing(false)
	got := r.waitFor(t, 2000, 120*time.Second)
	perProcess := map[string][]string{}
	for _, e := range distinctInOrder(got) {
		pid := e.Body["process_id"].(string)
		perProcess[pid] = append(perProcess[pid], e.Body["type"].(string))
	}
	want := "process-broken task-created task-completed process-broken task-created"
	for pid, seq := range perProcess {
		if strings.Join(seq, " ") != want {
			t.Errorf("%s: %v", pid, seq)
		}
	}
	waitFor(t, 20*time.Second, func() bool {
		status = read(t, mount+"/notify/status").Data
		return status["pending"] == json.Number("0") && status["delivered"] == json.Number("2000")
	})
	if status["last_delivered_time"] == "" || status["last_error_time"] == "" || status["overflowed"] != json.Number("0") {
		t.Errorf("status after the outage: %v", status)
	}
}
