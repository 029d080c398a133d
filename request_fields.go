package pecreds

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// A request's top-level fields, checked before the framework converts them and before any handler
// runs: a write names only the fields its path declares (a typo is refused, not ignored); every
// value has its field's type, and an error says so without quoting the value (the framework's own
// conversion errors quote it, into the answer, Vault's log and the audit log); a name, when
// given, is not empty; and each field is bounded in bytes (limits.go).

// objectFields are the request fields that take a JSON object or list. A JSON string is accepted
// too, so that `vault write pecreds/process/42 current=@user.json` works like a JSON body.
var objectFields = []string{"services", "current", "credentials", "error_health_mapping"}

// nameFields take a name when given: an empty value is a 400, not "none".
var nameFields = map[string]string{
	"definition":      "a registry name (or leave definition out for a process without one)",
	"owner_entity_id": "an identity entity id (or leave owner_entity_id out for the calling token's entity)",
}

// pathParam finds the fields a path pattern captures: they come from the path, not the body.
var pathParam = regexp.MustCompile(`\(\?P<([a-z_]+)>`)

// prepareFields readies a request's fields for the framework: errors name the field and the rule,
// never a value. JSON text given for an object or list field is replaced by its value.
func (b *backend) prepareFields(req *logical.Request) error {
	switch req.Operation {
	case logical.RenewOperation, logical.RevokeOperation, logical.RollbackOperation:
		return nil // Vault's own requests: a lease's renewal carries the data its create was given
	}
	path := b.Route(req.Path)
	if path == nil {
		return nil
	}
	if isWrite(req.Operation) {
		if err := checkKnownFields(path, req.Data); err != nil {
			return err
		}
	}
	if err := checkSensitiveFields(path, req.Data); err != nil {
		return err
	}
	if err := decodeObjectFields(path, req.Data); err != nil {
		return err
	}
	return checkFieldValues(path, req.Data)
}

func isWrite(op logical.Operation) bool {
	return op == logical.CreateOperation || op == logical.UpdateOperation || op == logical.PatchOperation
}

// checkKnownFields refuses a field the path does not declare, naming the nearest one it does.
func checkKnownFields(path *framework.Path, data map[string]any) error {
	var unknown []string
	for k := range data {
		if path.Fields[k] == nil {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := bodyFields(path)
	if len(known) == 0 {
		return fmt.Errorf("unknown field %q: this path takes no fields", unknown[0])
	}
	return fmt.Errorf("unknown field %q: did you mean %q? (the fields are %s)",
		unknown[0], nearest(unknown[0], known), strings.Join(known, ", "))
}

// bodyFields are the fields a request body may give: the path's, but those its pattern captures.
func bodyFields(path *framework.Path) []string {
	captured := map[string]bool{}
	for _, m := range pathParam.FindAllStringSubmatch(path.Pattern, -1) {
		captured[m[1]] = true
	}
	var out []string
	for k := range path.Fields {
		if !captured[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// nearest is the candidate closest to s by edit distance (the first of equals, in order).
func nearest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is Levenshtein's distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkSensitiveFields: a secret field must be a string, checked first and strictly (the
// framework would turn a number into text).
func checkSensitiveFields(path *framework.Path, data map[string]any) error {
	for k, schema := range path.Fields {
		v, given := data[k]
		if !given || v == nil || schema.DisplayAttrs == nil || !schema.DisplayAttrs.Sensitive {
			continue
		}
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s must be a string, not %s", k, credential.JSONKind(v))
		}
	}
	return nil
}

// decodeObjectFields replaces JSON text given for an object or list field by its value.
func decodeObjectFields(path *framework.Path, data map[string]any) error {
	for _, k := range objectFields {
		s, ok := data[k].(string)
		if !ok || path.Fields[k] == nil {
			continue
		}
		if len(s) > maxFieldBytes {
			return fmt.Errorf("%s is %d bytes long; the limit is %d bytes (1 MiB)", k, len(s), maxFieldBytes)
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			// The parser's message may quote the text, which may be a secret: give the offset only.
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				return fmt.Errorf("%s: the text given is not valid JSON (at byte %d)", k, syntax.Offset)
			}
			return fmt.Errorf("%s: the text given is not valid JSON", k)
		}
		data[k] = v
	}
	return nil
}

// checkFieldValues converts each given field as the framework will, and answers a failure in
// words of its own; then it bounds the field's size, and refuses an empty name.
func checkFieldValues(path *framework.Path, data map[string]any) error {
	fd := &framework.FieldData{Raw: data, Schema: path.Fields}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		schema := path.Fields[k]
		if schema == nil || data[k] == nil {
			continue
		}
		if err := checkFieldSize(k, data[k]); err != nil { // first: converting copies the value
			return err
		}
		if _, _, err := fd.GetOkErr(k); err != nil {
			return fmt.Errorf("%s must be %s, not %s", k, typeWords(schema.Type), credential.JSONKind(data[k]))
		}
		if want, ok := nameFields[k]; ok && data[k] == "" {
			return fmt.Errorf("%s is empty: give %s", k, want)
		}
	}
	return nil
}

// checkFieldSize bounds one field: its own limit for text, maxFieldBytes for any other.
func checkFieldSize(k string, v any) error {
	if limit, ok := fieldByteLimits[k]; ok {
		if s, isText := v.(string); isText {
			return credential.CheckBytes(k, s, limit)
		}
	}
	if n := credential.RawSize(v); n > maxFieldBytes {
		return fmt.Errorf("%s takes about %d bytes; the limit is %d bytes (1 MiB)", k, n, maxFieldBytes)
	}
	return nil
}

// typeWords names a field type for a person.
func typeWords(t framework.FieldType) string {
	switch t {
	case framework.TypeString, framework.TypeNameString, framework.TypeLowerCaseString:
		return "a string"
	case framework.TypeInt, framework.TypeInt64:
		return "an integer"
	case framework.TypeFloat:
		return "a number"
	case framework.TypeBool:
		return "true or false"
	case framework.TypeDurationSecond, framework.TypeSignedDurationSecond:
		return "a duration in seconds or a Go duration such as 90s"
	case framework.TypeMap:
		return "a JSON object (or JSON text holding one)"
	case framework.TypeSlice:
		return "a JSON list (or JSON text holding one)"
	case framework.TypeStringSlice, framework.TypeCommaStringSlice:
		return "a list of strings or a comma-separated string"
	case framework.TypeKVPairs:
		return "key=value pairs"
	case framework.TypeTime:
		return "an RFC 3339 time"
	}
	return "a " + t.String()
}
