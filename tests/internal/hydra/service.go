package hydra

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-jose/go-jose/v4"
)

// Clients of the client-credentials grant: services that authenticate as themselves, by a
// secret or (private_key_jwt) by an assertion signed with a key whose public half Hydra holds.

// AuthPrivateKeyJWT is client authentication by a signed JWT (RFC 7523; OIDC Core 9).
const AuthPrivateKeyJWT = "private_key_jwt"

// PublicKey is a private_key_jwt client's registered key: the public half, its kid (may be
// empty) and the algorithm the client signs with (RS256, ES256).
type PublicKey struct {
	Key   crypto.PublicKey
	KeyID string
	Alg   string
}

// CreateServiceClient registers a confidential client for the client-credentials grant, allowed
// scope, that must authenticate by authMethod. A private_key_jwt client is registered with key in
// its JWKS and key.Alg as its token_endpoint_auth_signing_alg, and has no secret; the others get
// one of Hydra's choosing.
func (s *Server) CreateServiceClient(ctx context.Context, authMethod, scope string, key *PublicKey) (Client, error) {
	body := map[string]any{
		"client_name":                "pecreds-tests-service",
		"grant_types":                []string{"client_credentials"},
		"scope":                      scope,
		"token_endpoint_auth_method": authMethod,
	}
	if authMethod == AuthPrivateKeyJWT {
		if key == nil {
			return Client{}, errors.New("a private_key_jwt client needs its public key")
		}
		body["jwks"] = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Key, KeyID: key.KeyID, Algorithm: key.Alg, Use: "sig"}}}
		body["token_endpoint_auth_signing_alg"] = key.Alg
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := s.adminJSON(ctx, http.MethodPost, "/admin/clients", nil, body, http.StatusCreated, &created); err != nil {
		return Client{}, fmt.Errorf("creating a %s service client: %w", authMethod, err)
	}
	if created.ClientID == "" || (authMethod != AuthPrivateKeyJWT && created.ClientSecret == "") {
		return Client{}, errors.New("creating a service client: Hydra answered no client_id or client_secret")
	}
	return Client{ID: created.ClientID, Secret: created.ClientSecret, AuthMethod: authMethod}, nil
}

// ClientCredentials asks for a token by the client-credentials grant, c authenticating by
// c.AuthMethod (a secret method): what a service's own token request gets.
func (s *Server) ClientCredentials(ctx context.Context, c Client, scope string) (Token, error) {
	return s.token(ctx, c, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
}
