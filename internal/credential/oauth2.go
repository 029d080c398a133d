package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// How an oauth2 credential's client authenticates at the token endpoint (RFC 6749 2.3.1, RFC 7523
// 2.2; the names are OpenID Connect's token_endpoint_auth_method values, which providers use).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// AuthMethods are the methods an oauth2 credential may name, its default first.
var AuthMethods = []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT}

// minRSABits: a smaller RSA key signs nothing a provider should trust (NIST SP 800-131A).
const minRSABits = 2048

// AuthMethod is the credential's client authentication: its auth_method, or the default for one
// stored before the field existed.
func (c Credential) AuthMethod() string {
	if m := c.Fields["auth_method"]; m != "" {
		return m
	}
	return AuthClientSecretBasic
}

// checkOAuth2 pairs the client authentication with its secret: private_key_jwt takes a
// private_key (and maybe a key_id) and no client_secret; the secret methods take a client_secret
// and no key. A secret of the other kind is refused, never ignored: the operator meant something
// the credential would not do.
func checkOAuth2(c Credential) error {
	method := c.AuthMethod()
	if method == AuthPrivateKeyJWT {
		if c.Fields["client_secret"] != "" {
			return fmt.Errorf("field \"client_secret\" must not be given with auth_method %s: the client authenticates by its private_key alone", method)
		}
		if c.Fields["private_key"] == "" {
			return fmt.Errorf("missing field \"private_key\": it is required when auth_method is %s", method)
		}
		_, err := ParseSigningKey(c.Fields["private_key"])
		return err
	}
	if c.Fields["client_secret"] == "" {
		return fmt.Errorf("missing field \"client_secret\": it is required when auth_method is %s", method)
	}
	for _, f := range []string{"private_key", "key_id"} {
		if c.Fields[f] != "" {
			return fmt.Errorf("field %q must not be given with auth_method %s: it is used only with auth_method %s", f, method, AuthPrivateKeyJWT)
		}
	}
	return nil
}

// ParseSigningKey reads the private key of a private_key_jwt client: one PEM block holding an
// RSA key of at least 2048 bits (PKCS#8 or PKCS#1) or an EC P-256 key (PKCS#8 or SEC 1). Its
// errors name the field and the rule in words of their own: a parser's message is never passed
// on, so no byte of the key reaches one.
func ParseSigningKey(text string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New(`field "private_key" must be PEM text: a PKCS#8, PKCS#1 or SEC 1 key between its -----BEGIN and -----END lines`)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New(`field "private_key" must hold one PEM block, the private key alone`)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New(`field "private_key" is an encrypted key: give it unencrypted (Vault's storage encrypts it)`)
	default:
		return nil, fmt.Errorf(`field "private_key" holds a PEM block of type %q where a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY was expected`, sanitizedPEMType(block.Type))
	}
	if err != nil {
		return nil, fmt.Errorf(`field "private_key" is not a valid %s`, strings.ToLower(block.Type))
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf(`field "private_key" is an RSA key of %d bits; the minimum is %d`, bits, minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf(`field "private_key" is an EC key on %s; only P-256 (ES256) is supported`, k.Curve.Params().Name)
		}
		return k, nil
	}
	if _, ok := key.(ed25519.PrivateKey); ok {
		return nil, errors.New(`field "private_key" is an Ed25519 key; use an RSA (RS256) or EC P-256 (ES256) key`)
	}
	return nil, errors.New(`field "private_key" is neither an RSA nor an EC key; use an RSA (RS256) or EC P-256 (ES256) key`)
}

// sanitizedPEMType bounds a PEM type label for a message: a label is the operator's text, not
// key material, but it has no business being long.
func sanitizedPEMType(t string) string {
	if len(t) > 40 {
		return t[:40] + "..."
	}
	return t
}
