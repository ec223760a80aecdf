package authz

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/jitproxy/jitproxy/internal/access"
)

// TestInputIsDerivedFromTheTypes: input.caller, input.action and
// input.grants are the JSON of their types, with every field present (no
// omitempty) and nil slices as empty arrays, and a missing kind part absent.
func TestInputIsDerivedFromTheTypes(t *testing.T) {
	in := Input{
		Caller: access.Caller{Session: "s", Agent: "a", User: "u"},
		Action: access.Action{Kind: access.KindAWS, Target: "aws", Method: "GET", Path: "/b/k",
			AWS: &access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "us-east-1", Resources: []string{"arn:aws:s3:::b/k"}}},
		Grants: NewGrantSet(Grant{ID: "g", Policy: "p", Target: "aws", Permissions: []access.Permission{
			{AWS: &access.AWSPermission{Actions: []string{"s3:Get*"}, Resources: []string{"*"}}},
		}}),
		Body: map[string]any{"n": json.Number("1")},
	}
	got, err := in.parsedInput()
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(map[string]any{
		"caller": map[string]any{"session": "s", "agent": "a", "user": "u", "groups": []any{}, "auth_method": "", "source_address": ""},
		"action": map[string]any{"kind": "aws", "target": "aws", "method": "GET", "path": "/b/k",
			"aws": map[string]any{"service": "s3", "action": "s3:GetObject", "region": "us-east-1", "account": "", "resources": []any{"arn:aws:s3:::b/k"}}},
		"grants": []any{map[string]any{"id": "g", "policy": "p", "target": "aws", "namespace": "", "permissions": []any{
			map[string]any{"aws": map[string]any{"actions": []any{"s3:Get*"}, "resources": []any{"*"}, "regions": []any{}}},
		}}},
		"body": map[string]any{"n": json.Number("1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Errorf("parsedInput() = %v\nwant %v", got, want)
	}
	// The field names are the JSON names: every key of the JSON encoding
	// is in the input.
	b, _ := json.Marshal(in.Action)
	var fromJSON map[string]any
	json.Unmarshal(b, &fromJSON)
	action := got.(ast.Object).Get(ast.StringTerm("action")).Value.(ast.Object)
	for k := range fromJSON {
		if action.Get(ast.StringTerm(k)) == nil {
			t.Errorf("input.action lacks %q, which its JSON has", k)
		}
	}
}

func fullInput() Input {
	return Input{
		Caller: access.Caller{Session: "s", Agent: "a", User: "u", Groups: []string{"g1", "g2"}, AuthMethod: "token", SourceAddr: "127.0.0.1:1"},
		Action: access.Action{Kind: "kubernetes", Target: "t", Method: "GET", Path: "/p",
			Kubernetes: &access.KubernetesAction{Verb: "get", ResourceRequest: true, APIGroup: "apps", APIVersion: "v1", Resource: "r", Subresource: "s", Namespace: "n", Name: "x"},
			AWS:        &access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "r", Account: "1", Resources: []string{"a"}},
		},
	}
}

// TestKeyTellsInputsApart: the decision cache's key changes with every
// field policies see, so that no two inputs policies could tell apart
// share a cached decision.
func TestKeyTellsInputsApart(t *testing.T) {
	base := fullInput()
	baseKey := string(base.key(nil))
	// Every leaf of input.caller and input.action, changed one at a time.
	var paths []string
	for _, root := range []string{"Caller", "Action"} {
		v := reflect.ValueOf(&base).Elem().FieldByName(root)
		paths = append(paths, leaves(v, root)...)
	}
	if len(paths) < 20 {
		t.Fatalf("found only %d fields: %v", len(paths), paths)
	}
	for _, p := range paths {
		in := fullInput()
		in.Caller.Groups = []string{"g1", "g2"}
		change(reflect.ValueOf(&in).Elem(), p)
		if string(in.key(nil)) == baseKey {
			t.Errorf("changing %s leaves the key unchanged", p)
		}
	}
	// Values that encodings without lengths or presence would confuse.
	pairs := []struct {
		name string
		a, b func(*Input)
	}{
		{"one group or two", func(in *Input) { in.Caller.Groups = []string{"ab"} }, func(in *Input) { in.Caller.Groups = []string{"a", "b"} }},
		{"text moved between fields", func(in *Input) { in.Caller.Session, in.Caller.Agent = "ab", "" }, func(in *Input) { in.Caller.Session, in.Caller.Agent = "a", "b" }},
		{"absent or empty part", func(in *Input) { in.Action.AWS = nil }, func(in *Input) { in.Action.AWS = &access.AWSAction{} }},
		{"no grants or an empty one", func(in *Input) { in.Grants = nil }, func(in *Input) { in.Grants = NewGrantSet(Grant{}) }},
		{"grant content", func(in *Input) { in.Grants = NewGrantSet(Grant{ID: "g", Namespace: "a"}) }, func(in *Input) { in.Grants = NewGrantSet(Grant{ID: "g", Namespace: "b"}) }},
		{"permission content", func(in *Input) {
			in.Grants = NewGrantSet(Grant{ID: "g", Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}}}}})
		}, func(in *Input) {
			in.Grants = NewGrantSet(Grant{ID: "g", Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"list"}}}}})
		}},
	}
	for _, p := range pairs {
		a, b := fullInput(), fullInput()
		p.a(&a)
		p.b(&b)
		if string(a.key(nil)) == string(b.key(nil)) {
			t.Errorf("%s: the keys are equal", p.name)
		}
	}
	// Nil and empty group lists are the same input ([] either way).
	a, b := fullInput(), fullInput()
	a.Caller.Groups, b.Caller.Groups = nil, []string{}
	if string(a.key(nil)) != string(b.key(nil)) {
		t.Error("nil and empty groups give different keys, though policies see [] for both")
	}
}

// leaves lists the paths of the string, bool, slice and pointer fields
// under v, a struct.
func leaves(v reflect.Value, prefix string) []string {
	var out []string
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		p := prefix + "." + v.Type().Field(f.index).Name
		switch fv.Kind() {
		case reflect.Pointer:
			out = append(out, p)
			if !fv.IsNil() {
				out = append(out, leaves(fv.Elem(), p)...)
			}
		case reflect.String, reflect.Bool, reflect.Slice:
			out = append(out, p)
		default:
			panic(fmt.Sprintf("field %s: add its kind to leaves", p))
		}
	}
	return out
}

// change changes the field at path under v: a string gains a character, a
// bool flips, a slice gains an element, a pointer becomes nil.
func change(v reflect.Value, path string) {
	var name string
	for rest := path; rest != ""; {
		name, rest, _ = strings.Cut(rest, ".")
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		v = v.FieldByName(name)
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Pointer:
		v.Set(reflect.Zero(v.Type()))
	}
}

// TestReadsInput: a policy may read input.caller.source_address only
// through a reference to it, into it, to a parent as a whole, or through a
// key computed at evaluation time.
func TestReadsInput(t *testing.T) {
	tests := []struct {
		rule string
		want bool
	}{
		{`forbid contains "x" if input.caller.source_address == "10.0.0.1:1"`, true},
		{`forbid contains "x" if startswith(input.caller.source_address, "10.")`, true},
		{`forbid contains "x" if input.caller["source_address"]`, true},
		{`forbid contains "x" if { c := input.caller; c.source_address }`, true},
		{`forbid contains "x" if { some k; input.caller[k] == "10.0.0.1:1" }`, true},
		{`forbid contains "x" if { some k; input[k].source_address }`, true},
		{`forbid contains "x" if object.get(input, ["caller", "source_address"], "") != ""`, true},
		{`forbid contains "x" if json.marshal(input) == ""`, true},
		{`forbid contains "x" if input.caller.user == "eve"`, false},
		{`forbid contains "x" if input.action.kubernetes.namespace == "kube-system"`, false},
		{`forbid contains "x" if input.caller.source_address_family == "x"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m, err := ast.ParseModuleWithOpts("p.rego", "package jitproxy.authz\n\n"+tt.rule+"\n", ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatal(err)
			}
			if got := readsInput([]*ast.Module{m}, "caller", "source_address"); got != tt.want {
				t.Errorf("readsInput() = %v, want %v", got, tt.want)
			}
		})
	}
}
