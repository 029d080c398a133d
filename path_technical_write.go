package pecreds

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
)

// Writing a technical credential: the stored entry under its lock, then its first token outside it.

// tokenWriteWarning says what became of the token request a write asked for: nothing when a
// token with the written settings came.
func (b *backend) tokenWriteWarning(next *technicalEntry, st *oauth.State, want tokenWant, pending bool) string {
	now := b.deps.now()
	switch {
	case pending:
		return fmt.Sprintf("stored; its token request is still in flight after %s: read technical/%s for the outcome", b.deps.tokenWait, next.Name)
	case st != nil && st.ConfigVersion == next.Version && st.Failures == 0 && st.Generation > want.after:
		return ""
	case st != nil && st.ConfigVersion == next.Version && st.Failures > 0:
		return fmt.Sprintf("stored, but the token request failed: %s; it is retried with backoff, or fix the credential and write it again", st.LastError)
	}
	// No request could be made yet (the minimum interval): one with these settings is scheduled.
	_, at := st.FetchAllowed(now, b.deps.minFetchInterval, next.Version)
	b.refresher.scheduleAt(next.Name, at)
	w := fmt.Sprintf("stored; a token with these settings is asked for at %s (no token request follows the last sooner than %s)", formatTime(at), b.deps.minFetchInterval)
	if st.Valid(now) {
		w += "; the token asked with the previous settings is served until then"
	}
	return w
}

// tokenSettingsChanged: the write changes where, for what or how a token is asked, so the stored
// one is not what the credential now says. How covers the client's authentication but for a
// client secret's rotation: a new auth_method, private_key or key_id is tried at once, so that a
// key the provider does not know shows on the write, not at the next refresh.
func tokenSettingsChanged(current, next *technicalEntry) bool {
	if current.Credential.AuthMethod() != next.Credential.AuthMethod() {
		return true
	}
	for _, f := range []string{"token_url", "client_id", "audience", "private_key", "key_id"} {
		if current.Credential.Fields[f] != next.Credential.Fields[f] {
			return true
		}
	}
	return !slices.Equal(current.Credential.Lists["scopes"], next.Credential.Lists["scopes"])
}

// badInput is a write refused for its input: the handler answers 400 with its message.
type badInput struct{ error }

// writeTechnical stores a technical credential from a write, under the credential's lock (held for
// storage calls only): the stored one before, and the new one.
func (b *backend) writeTechnical(ctx context.Context, s logical.Storage, d *framework.FieldData, name string) (current, next *technicalEntry, err error) {
	lock := locksutil.LockForKey(b.technicalLocks, name)
	lock.Lock()
	defer lock.Unlock()
	if current, err = b.getTechnical(ctx, s, name); err != nil {
		return nil, nil, err
	}
	if err := secretFollowsEndpoint(d, current); err != nil {
		return nil, nil, badInput{err}
	}
	cred, err := credential.Parse(technicalInput(d, current), credential.UseTechnical)
	if err != nil {
		return nil, nil, badInput{err}
	}
	now := b.deps.now().UTC()
	next = &technicalEntry{Name: name, Credential: cred, Version: 1, CreatedTime: now, UpdatedTime: now}
	if current != nil {
		next.Version = current.Version + 1
		next.CreatedTime = current.CreatedTime
	}
	if err := b.putTechnical(ctx, s, next); err != nil {
		return nil, nil, err
	}
	if current == nil {
		b.scanForTechnical(s, name)
	}
	if current != nil && current.rotates() && !next.rotates() {
		return current, next, b.dropTokenState(ctx, s, name)
	}
	return current, next, nil
}

// dropTokenState removes a credential's token, ordered with a flight's store by the refresh lock.
func (b *backend) dropTokenState(ctx context.Context, s logical.Storage, name string) error {
	b.refresher.unschedule(name)
	lock := locksutil.LockForKey(b.refreshLocks, name)
	lock.Lock()
	defer lock.Unlock()
	return b.deleteTokenState(ctx, s, name)
}

// secretFollowsEndpoint: an update that sends an oauth2 credential's stored client secret
// somewhere new — another token_url, or another client_id — must give the secret itself. Else
// whoever may write (but not read) technical credentials could have the secret posted to an
// endpoint of theirs. For private_key_jwt the key is that secret: a stored key never signs an
// assertion for a new endpoint or another client.
func secretFollowsEndpoint(d *framework.FieldData, current *technicalEntry) error {
	if current == nil || current.Credential.Type != "oauth2" {
		return nil
	}
	if t, ok := d.Raw["type"]; ok && t != "oauth2" {
		return nil // a new type starts afresh: every required field must be given
	}
	secret, rule := "client_secret", "the stored secret is never sent to a new endpoint or for another client"
	method := current.Credential.AuthMethod()
	if m, ok := d.Raw["auth_method"].(string); ok && m != "" {
		method = m
	}
	if method == credential.AuthPrivateKeyJWT {
		secret, rule = "private_key", "the stored key never signs for a new endpoint or for another client"
	}
	if _, ok := d.Raw[secret]; ok {
		return nil
	}
	for _, field := range []string{"token_url", "client_id"} {
		if v, ok := d.Raw[field]; ok && v != current.Credential.Fields[field] {
			return fmt.Errorf("%s is required when %s changes: %s", secret, field, rule)
		}
	}
	return nil
}

// technicalInput gathers the credential's API form from the request. An update that keeps the
// type merges the given fields over the stored ones, so `client_secret=...` alone rotates a
// secret; an update that changes the type starts afresh.
func technicalInput(d *framework.FieldData, current *technicalEntry) map[string]any {
	in := map[string]any{}
	given := map[string]any{}
	for k, v := range d.Raw {
		if k != "name" {
			given[k] = v
		}
	}
	if current != nil {
		if t, ok := given["type"]; !ok || t == current.Credential.Type {
			for k, v := range current.Credential.Material() {
				in[k] = v
			}
		}
	}
	for k, v := range given {
		in[k] = v
	}
	dropOtherAuthSecrets(in, given, current)
	return in
}

// dropOtherAuthSecrets: an update that names an oauth2 credential's auth_method leaves the stored
// secrets of the other kind behind — a switch to private_key_jwt the client secret, a switch away
// from it the key and its key_id — for the new method has no use of them. One given in the write
// itself stays, and is refused.
func dropOtherAuthSecrets(in, given map[string]any, current *technicalEntry) {
	method, ok := given["auth_method"].(string)
	if !ok || current == nil || current.Credential.Type != "oauth2" || in["type"] != "oauth2" {
		return
	}
	stale := []string{"private_key", "key_id"}
	if method == credential.AuthPrivateKeyJWT {
		stale = []string{"client_secret"}
	}
	for _, f := range stale {
		if _, g := given[f]; !g {
			delete(in, f)
		}
	}
}
