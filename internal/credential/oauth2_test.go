package credential

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

// testKeys are throw-away private keys, PEM, by what they are.
type testKeys struct {
	rsaPKCS8, rsaPKCS1, ecPKCS8, ecSEC1    string
	rsa1024, p384, ed25519, encrypted, two string
}

func makeTestKeys(t *testing.T) testKeys {
	t.Helper()
	var k testKeys
	must := func(_ any, s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	k.rsaPKCS8 = must(testcert.RSAKey(2048, false))
	k.rsaPKCS1 = must(testcert.RSAKey(2048, true))
	k.ecPKCS8 = must(testcert.ECKey(elliptic.P256(), false))
	k.ecSEC1 = must(testcert.ECKey(elliptic.P256(), true))
	k.rsa1024 = must(testcert.RSAKey(1024, false))
	k.p384 = must(testcert.ECKey(elliptic.P384(), false))
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	k.ed25519 = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	k.encrypted = string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}))
	k.two = k.ecPKCS8 + k.ecSEC1
	return k
}

func jwtClient(fields map[string]any) map[string]any {
	raw := map[string]any{"type": "oauth2", "token_url": "https://idp.example.com/token", "client_id": "c"}
	for k, v := range fields {
		raw[k] = v
	}
	return raw
}

func TestOAuth2AuthMethods(t *testing.T) {
	k := makeTestKeys(t)
	base := map[string]any{"type": "oauth2", "token_url": "https://idp.example.com/token", "client_id": "c"}
	for _, tc := range []struct {
		name   string
		fields map[string]any
		want   map[string]any // the redacted view's fields beyond base's
	}{
		{"default", map[string]any{"client_secret": "s3cret-cs"}, map[string]any{"auth_method": "client_secret_basic"}},
		{"basic", map[string]any{"auth_method": "client_secret_basic", "client_secret": "s3cret-cs"}, map[string]any{"auth_method": "client_secret_basic"}},
		{"post", map[string]any{"auth_method": "client_secret_post", "client_secret": "s3cret-cs"}, map[string]any{"auth_method": "client_secret_post"}},
		{"jwt rsa pkcs8 with kid", map[string]any{"auth_method": "private_key_jwt", "private_key": k.rsaPKCS8, "key_id": "key-2026"},
			map[string]any{"auth_method": "private_key_jwt", "key_id": "key-2026"}},
		{"jwt rsa pkcs1", map[string]any{"auth_method": "private_key_jwt", "private_key": k.rsaPKCS1}, map[string]any{"auth_method": "private_key_jwt"}},
		{"jwt ec pkcs8", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ecPKCS8}, map[string]any{"auth_method": "private_key_jwt"}},
		{"jwt ec sec1", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ecSEC1}, map[string]any{"auth_method": "private_key_jwt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(jwtClient(tc.fields), UseTechnical)
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			want := map[string]any{}
			for k, v := range base {
				want[k] = v
			}
			for k, v := range tc.want {
				want[k] = v
			}
			if got := c.Redacted(); !reflect.DeepEqual(got, want) {
				t.Errorf("redacted view\n got %#v\nwant %#v", got, want)
			}
			if m := c.Material(); m["private_key"] != tc.fields["private_key"] || m["client_secret"] != tc.fields["client_secret"] {
				t.Errorf("the material lost a secret")
			}
		})
	}
}

// TestOAuth2AuthMethodRefusals: each refusal names the field and the rule, and never quotes a key
// or a secret.
func TestOAuth2AuthMethodRefusals(t *testing.T) {
	k := makeTestKeys(t)
	cert, _, _ := testCertificate(t)
	notAKey := "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbCwgYnV0IHNlY3JldCB0ZXh0\n-----END PRIVATE KEY-----\n"
	for _, tc := range []struct {
		name   string
		fields map[string]any
		want   []string
	}{
		{"unknown method", map[string]any{"auth_method": "client_secret_jwt", "client_secret": "s3cret-cs"},
			[]string{`field "auth_method" must be one of client_secret_basic, client_secret_post, private_key_jwt`}},
		{"basic without secret", map[string]any{}, []string{`missing field "client_secret"`, "auth_method is client_secret_basic"}},
		{"post without secret", map[string]any{"auth_method": "client_secret_post"}, []string{`missing field "client_secret"`, "auth_method is client_secret_post"}},
		{"jwt without key", map[string]any{"auth_method": "private_key_jwt"}, []string{`missing field "private_key"`, "auth_method is private_key_jwt"}},
		{"jwt with a client secret", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ecPKCS8, "client_secret": "s3cret-cs"},
			[]string{`field "client_secret" must not be given with auth_method private_key_jwt`}},
		{"basic with a key", map[string]any{"client_secret": "s3cret-cs", "private_key": k.ecPKCS8},
			[]string{`field "private_key" must not be given with auth_method client_secret_basic`}},
		{"post with a key", map[string]any{"auth_method": "client_secret_post", "client_secret": "s3cret-cs", "private_key": k.rsaPKCS8},
			[]string{`field "private_key" must not be given with auth_method client_secret_post`}},
		{"post with a key id", map[string]any{"auth_method": "client_secret_post", "client_secret": "s3cret-cs", "key_id": "k1"},
			[]string{`field "key_id" must not be given with auth_method client_secret_post`}},
		{"key not PEM", map[string]any{"auth_method": "private_key_jwt", "private_key": "s3cret-not-pem"}, []string{`field "private_key" must be PEM text`}},
		{"key of garbage", map[string]any{"auth_method": "private_key_jwt", "private_key": notAKey}, []string{`field "private_key" is not a valid private key`}},
		{"a certificate", map[string]any{"auth_method": "private_key_jwt", "private_key": cert}, []string{`field "private_key" holds a PEM block of type "CERTIFICATE"`}},
		{"encrypted", map[string]any{"auth_method": "private_key_jwt", "private_key": k.encrypted}, []string{`field "private_key" is an encrypted key`}},
		{"two blocks", map[string]any{"auth_method": "private_key_jwt", "private_key": k.two}, []string{`field "private_key" must hold one PEM block`}},
		{"rsa 1024", map[string]any{"auth_method": "private_key_jwt", "private_key": k.rsa1024}, []string{`RSA key of 1024 bits; the minimum is 2048`}},
		{"p-384", map[string]any{"auth_method": "private_key_jwt", "private_key": k.p384}, []string{`EC key on P-384; only P-256 (ES256)`}},
		{"ed25519", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ed25519}, []string{`Ed25519 key; use an RSA (RS256) or EC P-256 (ES256) key`}},
		{"key id with a line break", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ecPKCS8, "key_id": "k1\nX-Evil: 1"},
			[]string{`field "key_id" must be one line without control characters`}},
		{"key id too long", map[string]any{"auth_method": "private_key_jwt", "private_key": k.ecPKCS8, "key_id": strings.Repeat("k", MaxTextBytes+1)},
			[]string{`field "key_id" is 1025 bytes long; the limit is 1024 bytes (1 KiB)`}},
		{"key too long", map[string]any{"auth_method": "private_key_jwt", "private_key": strings.Repeat("K", MaxCredentialBytes+1)},
			[]string{`field "private_key" is 65537 bytes long; the limit is 65536 bytes (64 KiB)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(jwtClient(tc.fields), UseTechnical)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, secret := range []string{"s3cret", "bm90IGEga2V5", k.ecPKCS8, k.rsaPKCS8, k.rsa1024, k.p384, k.ed25519, cert} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q carries a secret", err)
				}
			}
		})
	}
}

func TestParseSigningKeyTypes(t *testing.T) {
	k := makeTestKeys(t)
	for pemText, want := range map[string]string{k.rsaPKCS8: "rsa", k.rsaPKCS1: "rsa", k.ecPKCS8: "ec", k.ecSEC1: "ec"} {
		key, err := ParseSigningKey(pemText)
		switch {
		case err != nil:
			t.Errorf("%s: %v", want, err)
		case want == "rsa":
			if _, ok := key.(*rsa.PrivateKey); !ok {
				t.Errorf("got %T, want an RSA key", key)
			}
		case want == "ec":
			if ec, ok := key.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
				t.Errorf("got %T, want a P-256 key", key)
			}
		}
	}
}

// A credential stored before auth_method existed authenticates, and reads, as the default.
func TestOAuth2StoredWithoutAuthMethod(t *testing.T) {
	c := Credential{Type: "oauth2", Fields: map[string]string{"token_url": "https://x/t", "client_id": "c", "client_secret": "s"}}
	if c.AuthMethod() != AuthClientSecretBasic || c.Redacted()["auth_method"] != AuthClientSecretBasic {
		t.Errorf("auth method %q, read %v", c.AuthMethod(), c.Redacted())
	}
}
