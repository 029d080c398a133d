package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// docs/api.md is checked against the OpenAPI document Vault generates for a mounted pecreds, so
// that no path, method, field, type, default or answer field can drift from what the plugin
// serves. docs_api_parse_test.go reads the document's tables; this file reads the spec and
// compares.

// oasDoc is the part of Vault's OpenAPI document the comparison reads.
type oasDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]oasSchema `json:"schemas"`
	} `json:"components"`
}

type oasSchema struct {
	Type         string               `json:"type"`
	Format       string               `json:"format"`
	Default      any                  `json:"default"`
	Properties   map[string]oasSchema `json:"properties"`
	DisplayAttrs *struct {
		Sensitive bool `json:"sensitive"`
	} `json:"x-vault-displayAttrs"`
}

type oasParameter struct {
	Name   string    `json:"name"`
	In     string    `json:"in"`
	Schema oasSchema `json:"schema"`
}

type oasOperation struct {
	OperationID string         `json:"operationId"`
	Parameters  []oasParameter `json:"parameters"`
}

// apiField is one field of a path as the spec or the document has it.
type apiField struct {
	in       map[string]bool // path, query, body
	typ      string          // "string", or "string (duration)" with a format
	dflt     string          // the declared default as text; "" when none
	hasDflt  bool
	secret   string // the document's column: yes, no or inside
	isSecret bool   // the spec's: marked sensitive
}

// apiPath is one path of the mount: its methods (GET, POST, DELETE, LIST), its fields and the
// fields each method answers.
type apiPath struct {
	methods map[string]bool
	fields  map[string]*apiField
	answers map[string]map[string]bool // method → answer fields
}

func newAPIPath() *apiPath {
	return &apiPath{methods: map[string]bool{}, fields: map[string]*apiField{}, answers: map[string]map[string]bool{}}
}

var httpVerbs = map[string]bool{"get": true, "post": true, "put": true, "patch": true, "delete": true}

// specPaths reads the mount's paths from Vault's OpenAPI document, keyed as the document writes
// them: without the mount, `process/{id}`, and a LIST path with its trailing slash.
func specPaths(t *testing.T, doc oasDoc, mount string) map[string]*apiPath {
	t.Helper()
	out := map[string]*apiPath{}
	prefix := "/" + mount + "/"
	for raw, item := range doc.Paths {
		if !strings.HasPrefix(raw, prefix) {
			continue
		}
		p := newAPIPath()
		out[strings.TrimPrefix(raw, prefix)] = p
		var shared []oasParameter
		if b, ok := item["parameters"]; ok {
			if err := json.Unmarshal(b, &shared); err != nil {
				t.Fatalf("OpenAPI %s parameters: %v", raw, err)
			}
		}
		for _, prm := range shared {
			p.field(prm.Name, prm.In, prm.Schema)
		}
		for verb, b := range item {
			if !httpVerbs[verb] {
				continue // parameters, description, x-vault-…
			}
			var op oasOperation
			if err := json.Unmarshal(b, &op); err != nil {
				t.Fatalf("OpenAPI %s %s: %v", raw, verb, err)
			}
			p.operation(doc, verb, op)
		}
	}
	return out
}

// operation adds what one operation of the spec declares: its method, its query parameters, its
// request body's fields and its answer's fields. Vault's merged document leaves the operations'
// schema references empty; the components keep the SDK's names, the operation id in title case
// followed by Request or Response.
func (p *apiPath) operation(doc oasDoc, verb string, op oasOperation) {
	method := strings.ToUpper(verb)
	for _, prm := range op.Parameters {
		if prm.Name == "list" && prm.In == "query" {
			method = "LIST"
			continue
		}
		p.field(prm.Name, prm.In, prm.Schema)
	}
	p.methods[method] = true
	name := titleCase(op.OperationID)
	for k, s := range doc.Components.Schemas[name+"Request"].Properties {
		p.field(k, "body", s)
	}
	if props := doc.Components.Schemas[name+"Response"].Properties; len(props) > 0 {
		p.answers[method] = map[string]bool{}
		for k := range props {
			p.answers[method][k] = true
		}
	}
}

func (p *apiPath) field(name, in string, s oasSchema) {
	f := p.fields[name]
	if f == nil {
		f = &apiField{in: map[string]bool{}, typ: s.Type}
		if s.Format != "" {
			f.typ += " (" + s.Format + ")"
		}
		if s.Default != nil {
			f.dflt, f.hasDflt = defaultText(s.Default), true
		}
		p.fields[name] = f
	}
	f.in[in] = true
	f.isSecret = f.isSecret || (s.DisplayAttrs != nil && s.DisplayAttrs.Sensitive)
}

// defaultText writes a default as the document does: a string as it is, anything else as JSON.
func defaultText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// titleCase is the SDK's name for an operation's components: pecreds-read-status →
// PecredsReadStatus.
func titleCase(id string) string {
	parts := strings.Split(id, "-")
	for i, s := range parts {
		if s != "" {
			parts[i] = strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return strings.Join(parts, "")
}

// The API reference documents every path, method, field, type, default, secret marking and
// answer field of the OpenAPI document Vault generates for a mounted pecreds, and nothing that
// document lacks.
func TestDocsAPIMatchesOpenAPI(t *testing.T) {
	mount := newMount(t)
	r := env.client.NewRequest("GET", "/v1/sys/internal/specs/openapi")
	resp, err := env.client.RawRequest(r)
	if err != nil {
		t.Fatalf("reading the OpenAPI document: %v", err)
	}
	defer resp.Body.Close()
	var doc oasDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decoding the OpenAPI document: %v", err)
	}
	spec := specPaths(t, doc, mount)
	if len(spec) < 20 {
		t.Fatalf("the OpenAPI document has %d paths under %s/: the mount's paths were not found", len(spec), mount)
	}
	text, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	documented, problems := parseAPIDoc(string(text))
	problems = append(problems, compareAPI(spec, documented)...)
	if len(problems) > 0 {
		t.Errorf("docs/api.md has drifted from the OpenAPI document Vault generates (%d differences):\n  %s",
			len(problems), strings.Join(problems, "\n  "))
	}
}

// compareAPI lists every difference between the spec and the document, in words.
func compareAPI(spec, documented map[string]*apiPath) []string {
	var out []string
	for _, name := range sortedKeys(spec) {
		d := documented[name]
		if d == nil {
			out = append(out, fmt.Sprintf("path %s is served but not documented (a section \"### `%s`\")", name, name))
			continue
		}
		out = append(out, comparePath(name, spec[name], d)...)
	}
	for _, name := range sortedKeys(documented) {
		if spec[name] == nil {
			out = append(out, fmt.Sprintf("path %s is documented but the plugin does not serve it", name))
		}
	}
	return out
}

func comparePath(name string, s, d *apiPath) []string {
	var out []string
	if a, b := setText(s.methods), setText(d.methods); a != b {
		out = append(out, fmt.Sprintf("%s: methods are %s, documented %s", name, a, b))
	}
	for _, f := range sortedKeys(s.fields) {
		if d.fields[f] == nil {
			out = append(out, fmt.Sprintf("%s: field %s is missing from the table", name, f))
			continue
		}
		out = append(out, compareField(name+" "+f, s.fields[f], d.fields[f])...)
	}
	for _, f := range sortedKeys(d.fields) {
		if s.fields[f] == nil {
			out = append(out, fmt.Sprintf("%s: field %s is documented but the path does not declare it", name, f))
		}
	}
	for _, m := range sortedKeys(s.answers) {
		if a, b := setText(s.answers[m]), setText(d.answers[m]); a != b {
			out = append(out, fmt.Sprintf("%s: %s answers %s, documented %s", name, m, a, b))
		}
	}
	for _, m := range sortedKeys(d.answers) {
		if s.answers[m] == nil && len(d.answers[m]) > 0 {
			out = append(out, fmt.Sprintf("%s: an answer to %s is documented but the spec declares none", name, m))
		}
	}
	return out
}

func compareField(where string, s, d *apiField) []string {
	var out []string
	if a, b := setText(s.in), setText(d.in); a != b {
		out = append(out, fmt.Sprintf("%s: comes in %s, documented in %s", where, a, b))
	}
	if s.typ != d.typ {
		out = append(out, fmt.Sprintf("%s: type is %q, documented %q", where, s.typ, d.typ))
	}
	switch {
	case s.hasDflt && !d.hasDflt:
		out = append(out, fmt.Sprintf("%s: default is `%s`, documented without one", where, s.dflt))
	case !s.hasDflt && d.hasDflt:
		out = append(out, fmt.Sprintf("%s: documented default `%s`, the spec declares none (write a default the handler applies without backticks first)", where, d.dflt))
	case s.dflt != d.dflt:
		out = append(out, fmt.Sprintf("%s: default is `%s`, documented `%s`", where, s.dflt, d.dflt))
	}
	if s.isSecret != (d.secret == "yes") {
		out = append(out, fmt.Sprintf("%s: secret is %t in the spec, documented %q", where, s.isSecret, d.secret))
	}
	return out
}

func setText(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(m), ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
