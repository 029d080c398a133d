package tests

import (
	"fmt"
	"regexp"
	"strings"
)

// How docs/api.md is written, so that a test can read it (its introduction says the same to
// readers):
//   - each path is a section headed "### `path`", the path as Vault's OpenAPI document writes it
//     without the mount (`process/{id}/resolve`; a LIST path ends in a slash: `process/`);
//   - a line "Methods: `GET`, `POST`" lists its HTTP methods (LIST for a list);
//   - a table whose header begins "| field | in | type | default |" lists its fields: the field
//     in backticks; where it comes (path, query, body, comma-separated); its OpenAPI type, with
//     the format in parentheses; the default the path declares in backticks at the start of the
//     cell (anything else when it declares none); its byte limit; secret (yes for a write-only
//     secret, inside for an object that may hold secrets, no); what it means;
//   - a line "Answer to `GET`: `a`, `b`." names each method's answer fields ("none" for none).

var (
	apiHeading = regexp.MustCompile("^### `([^`]+)`\\s*$")
	apiMethods = regexp.MustCompile("^Methods: (.+)$")
	apiAnswer  = regexp.MustCompile("^Answer to `([A-Z]+)`: (.+)$")
	codeSpan   = regexp.MustCompile("`([^`]*)`")
)

// parseAPIDoc reads the document's paths, and lists what it cannot read as problems.
func parseAPIDoc(text string) (map[string]*apiPath, []string) {
	out := map[string]*apiPath{}
	var problems []string
	var cur *apiPath
	var curName string
	inTable := false
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("docs/api.md:%d", i+1)
		if strings.HasPrefix(line, "#") {
			cur, inTable = nil, false
			if m := apiHeading.FindStringSubmatch(line); m != nil {
				if out[m[1]] != nil {
					problems = append(problems, fmt.Sprintf("%s: path %s is documented twice", where, m[1]))
				}
				curName, cur = m[1], newAPIPath()
				out[curName] = cur
			}
			continue
		}
		if cur == nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "| field | in | type | default |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "| ---"):
		case inTable && strings.HasPrefix(line, "|"):
			if err := cur.parseRow(line); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s: %v", where, curName, err))
			}
		default:
			inTable = false
			cur.parseLine(line)
		}
	}
	return out, problems
}

// parseLine reads a Methods or an Answer line; any other line is prose.
func (p *apiPath) parseLine(line string) {
	if m := apiMethods.FindStringSubmatch(line); m != nil {
		for _, c := range codeSpan.FindAllStringSubmatch(m[1], -1) {
			p.methods[c[1]] = true
		}
	}
	if m := apiAnswer.FindStringSubmatch(line); m != nil {
		set := map[string]bool{}
		for _, c := range codeSpan.FindAllStringSubmatch(m[2], -1) {
			set[c[1]] = true
		}
		p.answers[m[1]] = set
	}
}

// parseRow reads one row of a path's field table.
func (p *apiPath) parseRow(line string) error {
	cells := splitRow(line)
	if len(cells) != 7 {
		return fmt.Errorf("a field row has %d cells, not 7 (field | in | type | default | limit | secret | meaning): %s", len(cells), line)
	}
	name := codeSpan.FindStringSubmatch(cells[0])
	if name == nil {
		return fmt.Errorf("the field cell %q has no `name`", cells[0])
	}
	f := &apiField{in: map[string]bool{}, typ: cells[2], secret: cells[5]}
	for _, in := range strings.Split(cells[1], ",") {
		f.in[strings.TrimSpace(in)] = true
	}
	if strings.HasPrefix(cells[3], "`") {
		if m := codeSpan.FindStringSubmatch(cells[3]); m != nil {
			f.dflt, f.hasDflt = m[1], true
		}
	}
	switch f.secret {
	case "yes", "no", "inside":
	default:
		return fmt.Errorf("field %s: secret is %q, not yes, no or inside", name[1], f.secret)
	}
	p.fields[name[1]] = f
	return nil
}

// splitRow splits a table row into its trimmed cells; an escaped \| stays inside a cell.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}
