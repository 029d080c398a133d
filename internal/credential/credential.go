// Package credential holds the credential types (the engine's authentication modules) and the
// services that list them: schema, validation and redaction, and the URL rules their fields obey.
// No storage, no clock, no network: errors name the field and the rule, never a value.
package credential

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// This file holds the credential types (the engine's authentication modules): their schema,
// validation and redaction. It has no storage access. A new authentication module is one new
// entry in credentialTypes.

// fieldKind selects the syntax check of a credential field.
type fieldKind int

const (
	kindText      fieldKind = iota
	kindList                // a list of strings (JSON list or comma-separated string)
	kindTime                // an RFC 3339 time
	kindPEM                 // PEM text, at most maxPEMBytes
	kindURL                 // an outbound URL: https, or http to loopback (outbound.go)
	kindName                // a name of the technical credentials manager
	kindLine                // one line of text without control characters, at most MaxTextBytes
	kindVSChar              // printable ASCII (RFC 6749 VSCHAR): OAuth2 tokens and scopes
	kindTokenType           // an OAuth2 token type: letters, digits and -._~+/
	kindSeconds             // a whole number of seconds, as a JSON number or a string
)

type credentialField struct {
	name     string
	kind     fieldKind
	secret   bool
	required bool
	def      string
	oneOf    []string // the values allowed, when the field is a choice
}

type credentialType struct {
	name   string
	uses   Use
	fields []credentialField
	// check runs after every field is valid on its own; it sees the whole credential.
	check func(Credential) error
	// serves, when set, lists the only fields Material answers: the rest never leave the plugin.
	serves []string
}

// credentialTypes is the single list of authentication modules. It is never mutated.
var credentialTypes = []credentialType{
	{name: "password", uses: UseAnywhere, fields: []credentialField{
		{name: "username", required: true},
		{name: "password", secret: true, required: true},
		{name: "domain"},
	}},
	{name: "token", uses: UseAnywhere, fields: []credentialField{
		{name: "token", secret: true, required: true},
		{name: "token_type", def: "Bearer"},
		{name: "expires_at", kind: kindTime},
	}},
	{name: "api_key", uses: UseAnywhere, fields: []credentialField{
		{name: "key", secret: true, required: true},
		{name: "header", def: "X-API-Key"},
	}},
	{name: "certificate", uses: UseAnywhere, check: checkCertificate, fields: []credentialField{
		{name: "certificate", kind: kindPEM, required: true},
		{name: "private_key", kind: kindPEM, secret: true, required: true},
		{name: "ca_chain", kind: kindPEM},
	}},
	{name: "oauth2", uses: UseTechnical, check: checkOAuth2, fields: []credentialField{
		{name: "token_url", kind: kindURL, required: true},
		{name: "client_id", required: true},
		// The method decides which secret the client holds: client_secret, or private_key (with
		// an optional key_id) for private_key_jwt. checkOAuth2 enforces the pairing.
		{name: "auth_method", def: AuthClientSecretBasic, oneOf: AuthMethods},
		{name: "client_secret", secret: true},
		{name: "private_key", kind: kindPEM, secret: true},
		{name: "key_id", kind: kindLine},
		{name: "scopes", kind: kindList},
		{name: "audience"},
	}},
	{name: "oauth2_user", uses: UseCurrent | UseRuntime, check: checkOAuth2User, serves: grantServes, fields: grantFields},
	{name: "technical", uses: UseListed, fields: []credentialField{
		{name: "name", kind: kindName, required: true},
	}},
	{name: "current", uses: UseListed},
}

func lookupCredentialType(name string) (credentialType, bool) {
	for _, t := range credentialTypes {
		if t.name == name {
			return t, true
		}
	}
	return credentialType{}, false
}

// credentialTypeNames lists the types allowed at a use, for error messages and help.
func credentialTypeNames(use Use) []string {
	var names []string
	for _, t := range credentialTypes {
		if t.uses&use != 0 {
			names = append(names, t.name)
		}
	}
	return names
}

func (t credentialType) field(name string) (credentialField, bool) {
	for _, f := range t.fields {
		if f.name == name {
			return f, true
		}
	}
	return credentialField{}, false
}

func (t credentialType) allowedKeys() []string {
	keys := []string{"type", "label"}
	for _, f := range t.fields {
		keys = append(keys, f.name)
	}
	return keys
}

// Credential is one typed credential. Its API form is flat: {"type": ..., "label": ..., fields...}.
type Credential struct {
	Type   string              `json:"type"`
	Label  string              `json:"label,omitempty"`
	Fields map[string]string   `json:"fields,omitempty"`
	Lists  map[string][]string `json:"lists,omitempty"`
}

// nameRegexp is the name rule's alphabet; ValidateName is its one user.
var nameRegexp = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateName checks the name rule shared by registries, technical credentials, services,
// processes and tasks. what names the thing in the error ("registry name").
func ValidateName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is required", what)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%s is %d characters long; the limit is %d", what, len(name), MaxNameLength)
	case !nameRegexp.MatchString(name):
		return fmt.Errorf("%s %q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit", what, name)
	}
	return nil
}

// decodeObject and decodeList check the shape of a decoded JSON value. JSON text given for a
// top-level field is decoded before the handlers run (backend.HandleRequest).
func decodeObject(v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be a JSON object, not %s", JSONKind(v))
	}
	return m, nil
}

func decodeList(v any) ([]any, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("must be a JSON list, not %s", JSONKind(v))
	}
	return l, nil
}

func JSONKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

// Parse validates a credential in its API form for a use. Errors name the field and
// the rule and never carry a field's value.
func Parse(raw any, use Use) (Credential, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return Credential{}, err
	}
	if err := checkCredentialSize(obj); err != nil {
		return Credential{}, err
	}
	typeName, ok := obj["type"].(string)
	if !ok || typeName == "" {
		return Credential{}, fmt.Errorf("field \"type\" is required: one of %s", strings.Join(credentialTypeNames(use), ", "))
	}
	t, ok := lookupCredentialType(typeName)
	if !ok {
		return Credential{}, fmt.Errorf("unknown type %q: one of %s", typeName, strings.Join(credentialTypeNames(use), ", "))
	}
	if t.uses&use == 0 {
		return Credential{}, fmt.Errorf("type %q is not allowed in %s: use one of %s", typeName, use, strings.Join(credentialTypeNames(use), ", "))
	}
	if err := checkKeys(t, obj); err != nil {
		return Credential{}, err
	}
	c := Credential{Type: t.name}
	if label, present := obj["label"]; present {
		if c.Label, err = textValue("label", label); err != nil {
			return Credential{}, err
		}
		if err := CheckBytes(`field "label"`, c.Label, MaxTextBytes); err != nil {
			return Credential{}, err
		}
	}
	for _, f := range t.fields {
		if err := c.setField(t, f, obj[f.name]); err != nil {
			return Credential{}, err
		}
	}
	if t.check != nil {
		if err := t.check(c); err != nil {
			return Credential{}, err
		}
	}
	return c, nil
}

func checkKeys(t credentialType, obj map[string]any) error {
	var unknown []string
	for k := range obj {
		if k == "type" || k == "label" {
			continue
		}
		if _, ok := t.field(k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	noun := "field"
	if len(unknown) > 1 {
		noun = "fields"
	}
	return fmt.Errorf("unknown %s \"%s\" for type %q: the fields are %s",
		noun, strings.Join(unknown, `", "`), t.name, strings.Join(t.allowedKeys(), ", "))
}

// setField validates one field's raw value and stores it, applying the default.
func (c *Credential) setField(t credentialType, f credentialField, raw any) error {
	if f.kind == kindList {
		list, err := stringList(f.name, raw)
		if err != nil {
			return err
		}
		if len(list) == 0 && f.required {
			return missingField(t, f)
		}
		if len(list) > 0 {
			if c.Lists == nil {
				c.Lists = map[string][]string{}
			}
			c.Lists[f.name] = list
		}
		return nil
	}
	if f.kind == kindSeconds {
		raw = numberText(raw)
	}
	v, err := textValue(f.name, raw)
	if err != nil {
		return err
	}
	if v == "" {
		v = f.def
	}
	if v == "" {
		if f.required {
			return missingField(t, f)
		}
		return nil
	}
	if err := checkFieldSyntax(f, v); err != nil {
		return err
	}
	if c.Fields == nil {
		c.Fields = map[string]string{}
	}
	c.Fields[f.name] = v
	return nil
}

func missingField(t credentialType, f credentialField) error {
	return fmt.Errorf("missing field %q: it is required for type %q", f.name, t.name)
}

func textValue(name string, raw any) (string, error) {
	switch v := raw.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", fmt.Errorf("field %q must be a string, not %s", name, JSONKind(raw))
}

func stringList(name string, raw any) ([]string, error) {
	var items []any
	switch v := raw.(type) {
	case nil:
		return nil, nil
	case string:
		for _, s := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(s))
		}
	case []any:
		items = v
	case []string:
		for _, s := range v {
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("field %q must be a list of strings, not %s", name, JSONKind(raw))
	}
	var out []string
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("field %q[%d] must be a string, not %s", name, i, JSONKind(it))
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// Redacted is the credential as reads and lists show it: every field but the secret ones.
func (c Credential) Redacted() map[string]any {
	return c.view(false)
}

// Material is the credential with its secrets, for the answers that carry secrets (resolve,
// technical creds).
func (c Credential) Material() map[string]any {
	return c.view(true)
}

func (c Credential) view(withSecrets bool) map[string]any {
	out := map[string]any{"type": c.Type}
	t, _ := lookupCredentialType(c.Type)
	if c.Label != "" && (!withSecrets || t.serves == nil) {
		out["label"] = c.Label
	}
	for _, f := range t.fields {
		if f.secret && !withSecrets {
			continue
		}
		if withSecrets && t.serves != nil && !slices.Contains(t.serves, f.name) {
			continue
		}
		if v, ok := c.Fields[f.name]; ok {
			out[f.name] = v
		} else if f.def != "" {
			out[f.name] = f.def // stored before the field existed: it means its default
		}
		if l, ok := c.Lists[f.name]; ok {
			out[f.name] = append([]string(nil), l...)
		}
	}
	return out
}
