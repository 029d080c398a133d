package credential

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// oauth2_user: a user's delegated OAuth2 grant, handed over by the engine host at the user's
// login. Its client is an oauth2 technical credential (token URL, client id, client
// authentication), so the client secret stays in the technical manager. The refresh token is
// kept for refreshes and never leaves the plugin: Material answers grantServes only.

// GrantType is the type name of a user's delegated grant.
const GrantType = "oauth2_user"

// maxExpiresIn bounds expires_in: ten years is past any grant's life, and keeps now+n in range.
const maxExpiresIn = 10 * 365 * 24 * 60 * 60

var grantFields = []credentialField{
	{name: "access_token", kind: kindVSChar, secret: true, required: true},
	{name: "refresh_token", kind: kindVSChar, secret: true},
	{name: "expires_at", kind: kindTime},
	// expires_in is input only: Settle turns it into expires_at at write time.
	{name: "expires_in", kind: kindSeconds},
	{name: "refresh_expires_at", kind: kindTime},
	{name: "scope", kind: kindVSChar},
	{name: "token_type", kind: kindTokenType, def: "Bearer"},
	{name: "client", kind: kindName, required: true},
}

// grantServes are the fields a resolve answers for a grant: what a call needs, nothing that
// would let the caller mint tokens of its own.
var grantServes = []string{"token_type", "access_token", "expires_at"}

// tokenTypeRegexp is the alphabet of a token type (DESIGN: what a token endpoint may answer).
var tokenTypeRegexp = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+$`)

// checkOAuth2User: the access token's lifetime is stated exactly once, and a refresh expiry
// comes with a refresh token.
func checkOAuth2User(c Credential) error {
	_, at := c.Fields["expires_at"]
	_, in := c.Fields["expires_in"]
	switch {
	case at && in:
		return errors.New(`fields "expires_at" and "expires_in" are both given: give one, the access token's expiry (RFC 3339) or its lifetime in seconds`)
	case !at && !in:
		return errors.New(`missing field "expires_at" or "expires_in": a grant states when its access token expires (the token endpoint's expires_in, in seconds, or an RFC 3339 time)`)
	}
	if _, ok := c.Fields["refresh_expires_at"]; ok && c.Fields["refresh_token"] == "" {
		return errors.New(`field "refresh_expires_at" is given without "refresh_token": it is the refresh token's expiry`)
	}
	return nil
}

// numberText gives a JSON number as its text, so that a number of seconds is checked as one
// whether it came as a number or a string; anything else is left for textValue to refuse.
func numberText(raw any) any {
	switch v := raw.(type) {
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return raw
}

func seconds(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("must be at most %d seconds", maxExpiresIn)
	case err != nil:
		return 0, errors.New("must be a whole number of seconds, such as 3600")
	case n <= 0:
		return 0, errors.New("must be a positive number of seconds: an access token that has expired is never served")
	case n > maxExpiresIn:
		return 0, fmt.Errorf("must be at most %d seconds", maxExpiresIn)
	}
	return n, nil
}

// Settle readies a parsed credential to be kept, at now (the backend's clock): a grant's
// expires_in becomes expires_at, and a grant already dead is refused — its access token expired
// with no refresh token to renew it, or its refresh token expired. An expired access token with a
// live refresh token is accepted: the grant lives on by its refresh token, and until a refresh
// gives a new access token the expired one is never served. Other types are returned as they are.
func (c Credential) Settle(now time.Time) (Credential, error) {
	if c.Type != GrantType {
		return c, nil
	}
	fields := make(map[string]string, len(c.Fields))
	for k, v := range c.Fields {
		fields[k] = v
	}
	c.Fields = fields
	if in, ok := fields["expires_in"]; ok {
		n, err := seconds(in)
		if err != nil {
			return Credential{}, fmt.Errorf("field %q %v", "expires_in", err)
		}
		// Seconds are cut, not rounded: the stated expiry is never later than the real one.
		fields["expires_at"] = now.Add(time.Duration(n) * time.Second).UTC().Truncate(time.Second).Format(time.RFC3339)
		delete(fields, "expires_in")
	}
	if t, ok := fieldTime(fields, "refresh_expires_at"); ok && !now.Before(t) {
		return Credential{}, errors.New(`field "refresh_expires_at" is not in the future: the grant has expired; the user must sign in again`)
	}
	if c.Expired(now) && fields["refresh_token"] == "" {
		return Credential{}, errors.New(`field "expires_at" is not in the future and there is no "refresh_token": the grant has expired; the user must sign in again`)
	}
	return c, nil
}

// SettleServices settles every credential of services (a runtime layer's) at now; errors name
// the place as ParseServices does.
func SettleServices(services []Service, now time.Time) ([]Service, error) {
	out := make([]Service, len(services))
	for i, s := range services {
		creds := make([]Credential, len(s.Credentials))
		for j, c := range s.Credentials {
			settled, err := c.Settle(now)
			if err != nil {
				return nil, fmt.Errorf("services[%d] (%s).credentials[%d]: %v", i, s.Name, j, err)
			}
			creds[j] = settled
		}
		s.Credentials = creds
		out[i] = s
	}
	return out, nil
}

// GrantClients lists the oauth2 technical credentials that grants name as their client, each
// once, in order.
func GrantClients(creds []Credential) []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range creds {
		if n := c.Fields["client"]; c.Type == GrantType && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

func fieldTime(fields map[string]string, name string) (time.Time, bool) {
	v, ok := fields[name]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}
