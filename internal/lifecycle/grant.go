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

// runtimeGrantRefreshed keeps a refreshed grant of the runtime layer in its place: one write of
// the process's record, so the rotated refresh token is stored before the new access token can be
// served. Dropped when the grant at that place is no longer the one the refresh started from (the
// engine rewrote the layer meanwhile) or the process failed.
func runtimeGrantRefreshed(st State, ev Event) (State, []Effect, error) {
	p := *st.Process
	if p.Health == Failed || ev.Credential == nil || !SameGrant(RuntimeGrant(&p, ev.Service, ev.Index), ev.RefreshedFrom) {
		return st, nil, nil
	}
	layer := make([]credential.Service, len(p.Runtime))
	copy(layer, p.Runtime)
	for i := range layer {
		if layer[i].Name == ev.Service {
			list := make([]credential.Credential, len(layer[i].Credentials))
			copy(list, layer[i].Credentials)
			list[ev.Index] = *ev.Credential
			layer[i].Credentials = list
		}
	}
	p.Runtime = layer
	return State{Process: &p, Task: st.Task}, []Effect{{Kind: PutProcess, Process: &p}}, nil
}

// RuntimeGrant is the grant (oauth2_user) at credential index of the process's runtime service
// named service; nil when there is none there.
func RuntimeGrant(p *Process, service string, index int) *credential.Credential {
	for i := range p.Runtime {
		svc := &p.Runtime[i]
		if svc.Name == service && index >= 0 && index < len(svc.Credentials) && svc.Credentials[index].Type == credential.GrantType {
			return &svc.Credentials[index]
		}
	}
	return nil
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
