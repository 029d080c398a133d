package main

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxFormBytes bounds a whole form post, read before any field is looked at.
const maxFormBytes = 32 << 10

// Byte limits of the fields a user types (pecreds's own limit is 64 KiB a credential).
const (
	maxNameBytes   = 128
	maxSecretBytes = 8 << 10
	maxShortBytes  = 64
)

// nameRegexp is pecreds's rule for names and ids (task ids, technical credential names), and
// this service's for userpass user names: nothing that could step into another path.
var nameRegexp = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// formValue is a field of a parsed form, bounded in bytes and valid UTF-8; secret fields are
// named in errors, never shown.
func formValue(r *http.Request, field, label string, limit int, required bool) (string, error) {
	if len(r.PostForm[field]) > 1 {
		return "", fmt.Errorf("%s is given more than once", label)
	}
	v := r.PostForm.Get(field)
	switch {
	case len(v) > limit:
		return "", fmt.Errorf("%s is longer than %d bytes", label, limit)
	case !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n"):
		return "", fmt.Errorf("%s holds characters it may not", label)
	case required && v == "":
		return "", fmt.Errorf("%s is required", label)
	}
	return v, nil
}

// parseForm reads a post's form, at most maxFormBytes.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("the form could not be read (at most %d bytes)", maxFormBytes)
	}
	return nil
}

// credentialsFrom builds the new credential object from a completion form: kind password,
// token or oauth2_user.
func credentialsFrom(r *http.Request) (map[string]any, error) {
	kind, err := formValue(r, "kind", "the kind of credentials", maxShortBytes, true)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "password":
		return passwordFrom(r)
	case "token":
		return tokenFrom(r)
	case "oauth2_user":
		return grantFrom(r)
	}
	return nil, errors.New("the kind of credentials is password, token or oauth2_user")
}

func passwordFrom(r *http.Request) (map[string]any, error) {
	user, err := formValue(r, "username", "the user name", maxNameBytes*2, true)
	if err != nil {
		return nil, err
	}
	pw, err := formValue(r, "password", "the password", maxSecretBytes, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"type": "password", "username": user, "password": pw}, nil
}

func tokenFrom(r *http.Request) (map[string]any, error) {
	tok, err := formValue(r, "token", "the token", maxSecretBytes, true)
	if err != nil {
		return nil, err
	}
	c := map[string]any{"type": "token", "token": tok}
	exp, err := formValue(r, "expires_at", "the expiry", maxShortBytes, false)
	if err != nil {
		return nil, err
	}
	if exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return nil, errors.New("the expiry is a time such as 2030-01-02T15:04:05Z, or empty")
		}
		c["expires_at"] = t.UTC().Format(time.RFC3339)
	}
	return c, nil
}

func grantFrom(r *http.Request) (map[string]any, error) {
	client, err := formValue(r, "client", "the OAuth2 client", maxNameBytes, true)
	if err != nil {
		return nil, err
	}
	if !nameRegexp.MatchString(client) {
		return nil, errors.New("the OAuth2 client is the name of an oauth2 technical credential (letters, digits, '.', '_', '-')")
	}
	access, err := formValue(r, "access_token", "the access token", maxSecretBytes, true)
	if err != nil {
		return nil, err
	}
	refresh, err := formValue(r, "refresh_token", "the refresh token", maxSecretBytes, false)
	if err != nil {
		return nil, err
	}
	in, err := formValue(r, "expires_in", "the access token's lifetime", maxShortBytes, true)
	if err != nil {
		return nil, err
	}
	secs, err := strconv.Atoi(in)
	if err != nil || secs <= 0 {
		return nil, errors.New("the access token's lifetime is a number of seconds")
	}
	c := map[string]any{"type": "oauth2_user", "client": client, "access_token": access, "expires_in": secs}
	if refresh != "" {
		c["refresh_token"] = refresh
	}
	return c, nil
}

// about says in plain words what a task asks of its owner.
func about(reason, service, process string) string {
	what := "a service"
	if service != "" {
		what = fmt.Sprintf("the service %q", service)
	}
	switch reason {
	case "auth_failed":
		return fmt.Sprintf("%s refused the credentials your process %q uses (perhaps you changed your password). Enter your current ones and the process goes on.", capital(what), process)
	case "credentials_expired":
		return fmt.Sprintf("Your credentials for %s have expired, or the sign-in behind them has ended. Enter new ones and your process %q goes on.", what, process)
	case "forbidden":
		return fmt.Sprintf("%s denied your process %q access with your credentials. Enter credentials that may do it.", capital(what), process)
	case "credentials_unavailable":
		return fmt.Sprintf("Your process %q could not get your credentials for %s. Enter them again.", process, what)
	case "lost":
		return fmt.Sprintf("The credentials your process %q kept for you are gone (they were kept in memory only). Enter them again and it goes on.", process)
	case "expired":
		return fmt.Sprintf("The credentials you gave your process %q have expired. Enter new ones and it goes on.", process)
	case "expiring":
		return fmt.Sprintf("The credentials you gave your process %q expire soon. Renew them now and it will not stop.", process)
	}
	return fmt.Sprintf("Your process %q needs new credentials for %s (%s).", process, what, reason)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
