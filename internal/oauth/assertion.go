package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client authentication by a signed JWT (RFC 7523 2.2, OpenID Connect Core 9 private_key_jwt):
// the client proves itself by an assertion signed with its private key, fresh for every token
// request, instead of sending a secret. Signing is go-jose's; only the claims are ours.

// ClientAssertionType is RFC 7523's client_assertion_type of a JWT assertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionLifetime is how long a client assertion is good for: one token request needs seconds,
// and a short life limits what an assertion seen in transit is worth.
const AssertionLifetime = 60 * time.Second

// clientAssertion signs the assertion of one token request: iss and sub the client id, aud the
// token endpoint, a random jti (so that an endpoint can refuse a replay), iat now, exp one
// AssertionLifetime later; RS256 for an RSA key, ES256 for an EC P-256 key, and kid when given.
// Its error is ours: nothing of the key reaches it.
func clientAssertion(c Config, now time.Time) (string, error) {
	alg, err := signingAlgorithm(c.SigningKey)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: c.SigningKey, KeyID: c.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", errors.New("the client assertion could not be signed: the key does not fit its algorithm")
	}
	claims := jwt.Claims{
		Issuer:   c.ClientID,
		Subject:  c.ClientID,
		Audience: jwt.Audience{c.TokenURL},
		ID:       rand.Text(),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", errors.New("the client assertion could not be signed")
	}
	return token, nil
}

// signingAlgorithm is the JWS algorithm of a signing key: RS256 for RSA, ES256 for EC P-256.
func signingAlgorithm(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jose.RS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return jose.ES256, nil
		}
	case nil:
		return "", errors.New("private_key_jwt needs a signing key")
	}
	return "", errors.New("the signing key is neither RSA nor EC P-256")
}
