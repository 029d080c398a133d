package tests

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// 50 writers add a service each to one registry with check-and-set: no update is lost.
func TestConcurrentCASWritersLoseNoUpdate(t *testing.T) {
	mount := newMount(t)
	path := mount + "/registry/shared"
	write(t, path, map[string]any{"cas": 0})
	const writers = 50
	var wg sync.WaitGroup
	conflicts := make([]int, writers)
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 500; attempt++ {
				s, err := env.client.Logical().Read(path)
				if err != nil {
					errs[i] = err
					return
				}
				version := s.Data["version"].(json.Number)
				services, _ := s.Data["services"].([]any)
				// Redacted reads carry no secrets, so the current list can be written back as is.
				services = append(services, map[string]any{"name": fmt.Sprintf("s%d", i), "credentials": []map[string]any{{"type": "current"}}})
				_, err = env.client.Logical().Write(path, map[string]any{"services": services, "cas": version})
				if err == nil {
					return
				}
				if statusOf(err) != 400 {
					errs[i] = err
					return
				}
				conflicts[i]++
			}
			errs[i] = fmt.Errorf("writer %d never got its write in", i)
		}()
	}
	wg.Wait()
	total := 0
	for i := range errs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += conflicts[i]
	}
	got := read(t, path).Data
	services, _ := got["services"].([]any)
	if len(services) != writers || got["version"] != json.Number(fmt.Sprint(writers+1)) {
		t.Errorf("%d services at version %v, want %d at %d", len(services), got["version"], writers, writers+1)
	}
	t.Logf("%d writers, %d check-and-set conflicts retried", writers, total)
}

// 1,000 concurrent resolves while the technical token refreshes: no error, no expired token.
func TestConcurrentResolvesDuringRefresh(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	const lifetime = 6 * time.Second
	srv.SetLifetime(lifetime)
	createOAuth2(t, mount, "idp", srv, "conc")
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "credentials": []map[string]any{{"type": "technical", "name": "idp"}}},
	}})
	write(t, mount+"/process/p", map[string]any{"definition": "orders"})

	type result struct {
		at    time.Time
		token string
		err   error
	}
	const workers, each = 50, 20
	results := make([]result, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := env.client.Clone()
			c.SetToken(rootToken)
			for i := 0; i < each; i++ {
				var s *api.Secret
				var err error
				s, err = c.Logical().Read(mount + "/process/p/resolve/crm")
				r := result{at: time.Now(), err: err}
				if err == nil && s != nil {
					r.token, _ = s.Data["access_token"].(string)
				}
				results[w*each+i] = r
				time.Sleep(600 * time.Millisecond) // the point: 50 readers paced across the token's lifetimes
			}
		}()
	}
	wg.Wait()
	expiry := issuedExpiry(srv, "conc", lifetime)
	tokens := map[string]bool{}
	for _, r := range results {
		switch exp, ok := expiry[r.token]; {
		case r.err != nil:
			t.Errorf("resolve failed: %v", r.err)
		case !ok:
			t.Errorf("resolved a token the endpoint never issued")
		case !r.at.Before(exp):
			t.Errorf("resolved an expired token at %s (expired %s)", r.at.Format(time.RFC3339Nano), exp.Format(time.RFC3339Nano))
		}
		tokens[r.token] = true
		rememberSecrets(r.token)
	}
	if len(tokens) < 2 {
		t.Errorf("the resolves saw %d tokens: the refreshes did not happen during the run", len(tokens))
	}
	t.Logf("%d resolves saw %d token generations, %d token requests", len(results), len(tokens), srv.Requests("conc"))
}
