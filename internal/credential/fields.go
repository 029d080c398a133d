package credential

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// The syntax checks of credential fields, and the certificate type's own check. No storage.

func checkFieldSyntax(f credentialField, v string) error {
	if f.oneOf != nil && !slices.Contains(f.oneOf, v) {
		return fmt.Errorf("field %q must be one of %s", f.name, strings.Join(f.oneOf, ", "))
	}
	switch f.kind {
	case kindLine:
		if err := CheckBytes(fmt.Sprintf("field %q", f.name), v, MaxTextBytes); err != nil {
			return err
		}
		if strings.ContainsFunc(v, unicode.IsControl) {
			return fmt.Errorf("field %q must be one line without control characters", f.name)
		}
	case kindTime:
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return fmt.Errorf("field %q must be an RFC 3339 time such as 2026-01-02T15:04:05Z", f.name)
		}
	case kindPEM:
		if len(v) > maxPEMBytes {
			return fmt.Errorf("field %q is %d bytes long; the limit for PEM text is %d bytes (64 KiB)", f.name, len(v), maxPEMBytes)
		}
		if block, _ := pem.Decode([]byte(v)); block == nil {
			return fmt.Errorf("field %q must be PEM text (-----BEGIN ...-----)", f.name)
		}
	case kindURL:
		return CheckOutboundURL(fmt.Sprintf("field %q", f.name), v)
	case kindName:
		return ValidateName(fmt.Sprintf("field %q", f.name), v)
	case kindVSChar:
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return fmt.Errorf("field %q must be printable ASCII (RFC 6749 VSCHAR): no control characters, no line breaks, nothing beyond ASCII", f.name)
		}
	case kindTokenType:
		if !tokenTypeRegexp.MatchString(v) {
			return fmt.Errorf("field %q must be letters, digits and -._~+/ (such as Bearer or DPoP)", f.name)
		}
	case kindSeconds:
		if _, err := seconds(v); err != nil {
			return fmt.Errorf("field %q %v", f.name, err)
		}
	}
	return nil
}

// checkCertificate parses the certificate, the CA chain and the key, and checks that the key
// belongs to the certificate. tls errors carry no key material.
func checkCertificate(c Credential) error {
	certPEM := c.Fields["certificate"]
	if _, err := parseCertificates(certPEM); err != nil {
		return fmt.Errorf("field \"certificate\": %v", err)
	}
	if chain := c.Fields["ca_chain"]; chain != "" {
		if _, err := parseCertificates(chain); err != nil {
			return fmt.Errorf("field \"ca_chain\": %v", err)
		}
	}
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(c.Fields["private_key"])); err != nil {
		return fmt.Errorf("field \"private_key\" does not fit field \"certificate\": %s",
			strings.TrimPrefix(err.Error(), "tls: "))
	}
	return nil
}

func parseCertificates(text string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a PEM block of type %q where a CERTIFICATE was expected", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("is not a valid X.509 certificate: %v", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	return certs, nil
}

// FieldInfo describes one field a use allows, for path schemas and help.
type FieldInfo struct {
	Name   string
	List   bool // a list of strings
	Secret bool // never read back
}

// Fields lists, once each, the fields of the types allowed at a use.
func Fields(use Use) []FieldInfo {
	var out []FieldInfo
	seen := map[string]bool{}
	for _, t := range credentialTypes {
		if t.uses&use == 0 {
			continue
		}
		for _, f := range t.fields {
			if !seen[f.name] {
				seen[f.name] = true
				out = append(out, FieldInfo{Name: f.name, List: f.kind == kindList, Secret: f.secret})
			}
		}
	}
	return out
}
