package outbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks v1 (standardwebhooks.com): the headers a delivery carries and the secret's
// form, so a receiver verifies with any of the specification's reference libraries.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	// SecretPrefix begins every signing secret: whsec_ + base64 of the key.
	SecretPrefix = "whsec_"
	// MinKeyBytes and MaxKeyBytes bound the key the secret encodes.
	MinKeyBytes = 24
	MaxKeyBytes = 64
	// NewKeyBytes is the size of a key NewSecret makes.
	NewKeyBytes = 32
)

// ParseSecret decodes a signing secret: whsec_ + standard base64 of 24 to 64 bytes. Its error
// names the field and the rule, never the value.
func ParseSecret(field, secret string) ([]byte, error) {
	rule := fmt.Sprintf("%s must be %s followed by the standard base64 of %d to %d random bytes (vault write -f <mount>/notify/rotate-secret makes one)",
		field, SecretPrefix, MinKeyBytes, MaxKeyBytes)
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%s; the value given does not begin with %s", rule, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s; the value given is not base64", rule)
	}
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return nil, fmt.Errorf("%s; the value given encodes %d bytes", rule, len(key))
	}
	return key, nil
}

// NewSecret makes a signing secret from random bytes read from rand.
func NewSecret(rand io.Reader) (string, error) {
	key := make([]byte, NewKeyBytes)
	if _, err := io.ReadFull(rand, key); err != nil {
		return "", fmt.Errorf("making a signing secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Sign is the webhook-signature header of one delivery attempt: "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" under each key, space-separated, in the order given (during a rotation's
// overlap, the new key first, then the previous one).
func Sign(id string, at time.Time, body []byte, keys ...[]byte) string {
	msg := id + "." + strconv.FormatInt(at.Unix(), 10) + "."
	sigs := make([]string, 0, len(keys))
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(msg))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}
