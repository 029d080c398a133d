package lifecycle

import "github.com/pecreds/vault-plugin-pecreds/internal/credential"

// grantRefreshed keeps a refreshed grant as the process's current credentials: in its record when
// persistent (one write, so the rotated refresh token is stored before the new access token can be
// served), in memory when transient. The refresh ran outside the process's lock, so its result is
// dropped when the grant it started from is no longer the one held (a task completed with a new
// grant, the process failed or ended): the held grant is newer, and is never overwritten.
func grantRefreshed(st State, ev Event) (State, []Effect, error) {
	p := *st.Process
	if p.Health == Failed || !p.HasCurrent || ev.Credential == nil {
		return st, nil, nil
	}
	switch p.KeepCredentials {
	case KeepPersistent:
		if !SameGrant(p.Current, ev.RefreshedFrom) {
			return st, nil, nil
		}
		p.Current = ev.Credential
		return State{Process: &p, Task: st.Task}, []Effect{{Kind: PutProcess, Process: &p}}, nil
	case KeepTransient:
		if !SameGrant(ev.Held, ev.RefreshedFrom) {
			return st, nil, nil
		}
		return st, []Effect{{Kind: PutCurrent, Process: st.Process, Credential: ev.Credential}}, nil
	}
	return st, nil, nil
}

// SameGrant says whether two credentials are the same grant as of one refresh: a grant with the
// same client, refresh token and access token. A refresh that rotated the refresh token, or new
// credentials from a task, make another.
func SameGrant(a, b *credential.Credential) bool {
	if a == nil || b == nil || a.Type != credential.GrantType || b.Type != credential.GrantType {
		return false
	}
	for _, f := range []string{"client", "refresh_token", "access_token"} {
		if a.Fields[f] != b.Fields[f] {
			return false
		}
	}
	return true
}
