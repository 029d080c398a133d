package tokenserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestAssertionChecks: the endpoint refuses what a provider refuses, so that the plugin's tests
// against it prove something: an assertion signed by another key, for another audience or
// client, expired, too long-lived or replayed; two methods at once; a method the client is not
// registered for.
func TestAssertionChecks(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.SetClientKey("app", key.Public())

	sign := func(k *ecdsa.PrivateKey, mutate func(*jwt.Claims)) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		c := jwt.Claims{Issuer: "app", Subject: "app", Audience: jwt.Audience{s.TokenURL()}, ID: rand.Text(),
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
		if mutate != nil {
			mutate(&c)
		}
		a, err := jwt.Signed(signer).Claims(c).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	post := func(form url.Values, basic bool) int {
		form.Set("grant_type", "client_credentials")
		req, _ := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth("app", "secret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	withAssertion := func(a string) url.Values {
		return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {a}}
	}

	good := sign(key, nil)
	if code := post(withAssertion(good), false); code != http.StatusOK {
		t.Fatalf("a good assertion: %d (%+v)", code, s.Issues("app"))
	}
	for name, tc := range map[string]struct {
		form  url.Values
		basic bool
		want  int
	}{
		"replayed":           {withAssertion(good), false, http.StatusUnauthorized},
		"another key":        {withAssertion(sign(other, nil)), false, http.StatusUnauthorized},
		"another audience":   {withAssertion(sign(key, func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://elsewhere/token"} })), false, http.StatusUnauthorized},
		"another issuer":     {withAssertion(sign(key, func(c *jwt.Claims) { c.Issuer = "mallory" })), false, http.StatusUnauthorized},
		"expired":            {withAssertion(sign(key, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })), false, http.StatusUnauthorized},
		"too long-lived":     {withAssertion(sign(key, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), false, http.StatusUnauthorized},
		"no jti":             {withAssertion(sign(key, func(c *jwt.Claims) { c.ID = "" })), false, http.StatusUnauthorized},
		"and a Basic header": {withAssertion(sign(key, nil)), true, http.StatusBadRequest},
		"and a secret":       {func() url.Values { f := withAssertion(sign(key, nil)); f.Set("client_secret", "s"); return f }(), false, http.StatusBadRequest},
		"Basic alone":        {url.Values{}, true, http.StatusUnauthorized},
	} {
		if code := post(tc.form, tc.basic); code != tc.want {
			t.Errorf("%s: %d, want %d", name, code, tc.want)
		}
	}
	for _, is := range s.Issues("app")[1:] {
		if is.Token != "" || is.Refused == "" {
			t.Errorf("a bad request got a token: %+v", is)
		}
	}
}
