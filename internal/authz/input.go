package authz

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// parsedInput builds the policy input as OPA's own value, so that OPA
// evaluates it without converting it: input.caller, input.action and
// input.grants are their Go types with the field names of their json tags.
// Unlike their JSON, every field is present, whatever omitempty says, and a
// nil slice is an empty array, so that policies need no guards; only a nil
// pointer (the part of another kind of target, input.action.aws of a
// Kubernetes request) is absent. input.grants was built once, with the
// GrantSet.
func (in Input) parsedInput() (ast.Value, error) {
	m := ast.NewObjectWithCapacity(6)
	m.Insert(ast.InternedTerm("caller"), ast.NewTerm(toValue(reflect.ValueOf(in.Caller))))
	m.Insert(ast.InternedTerm("action"), ast.NewTerm(toValue(reflect.ValueOf(in.Action))))
	m.Insert(ast.InternedTerm("grants"), ast.NewTerm(in.Grants.value()))
	for _, doc := range []struct {
		name string
		v    any
	}{{"body", in.Body}, {"object", in.Object}, {"old_object", in.OldObject}} {
		if doc.v == nil {
			continue
		}
		v, err := ast.InterfaceToValue(doc.v)
		if err != nil {
			return nil, fmt.Errorf("input.%s: %w", doc.name, err)
		}
		m.Insert(ast.InternedTerm(doc.name), ast.NewTerm(v))
	}
	return m, nil
}

// field is a struct field as encoding/json sees it.
type field struct {
	index int
	name  *ast.Term
}

var fieldCache sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{index: i, name: ast.StringTerm(name)})
	}
	fieldCache.Store(t, fs)
	return fs
}

// toValue converts v to the value its JSON would decode to in Rego, but
// with every field present and nil slices as empty arrays. Only the kinds
// the input types use are supported; another is a programming error and
// panics.
func toValue(v reflect.Value) ast.Value {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ast.NullValue
		}
		return toValue(v.Elem())
	case reflect.Struct:
		fs := fieldsOf(v.Type())
		obj := ast.NewObjectWithCapacity(len(fs))
		for _, f := range fs {
			fv := v.Field(f.index)
			if fv.Kind() == reflect.Pointer && fv.IsNil() {
				continue
			}
			obj.Insert(f.name, ast.NewTerm(toValue(fv)))
		}
		return obj
	case reflect.Slice:
		// A nil slice is an empty array, not null as in JSON, so that
		// policies can iterate and count it without a guard.
		terms := make([]*ast.Term, v.Len())
		for i := range terms {
			terms[i] = ast.NewTerm(toValue(v.Index(i)))
		}
		return ast.NewArray(terms...)
	case reflect.String:
		return ast.String(v.String())
	case reflect.Bool:
		return ast.Boolean(v.Bool())
	}
	panic(fmt.Sprintf("authz: cannot convert a %s to policy input", v.Type()))
}
