package authz

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// regoValue builds the policy input: input.caller, input.action and
// input.grants are their Go types with the field names of their json tags,
// built as plain maps and slices that OPA converts without a JSON round
// trip. Unlike their JSON, every field is present, whatever omitempty says,
// and a nil slice is an empty array, so that policies need no guards; only
// a nil pointer (the part of another kind of target, input.action.aws of a
// Kubernetes request) is absent.
func (in Input) regoValue() map[string]any {
	m := map[string]any{
		"caller": plain(reflect.ValueOf(in.Caller)),
		"action": plain(reflect.ValueOf(in.Action)),
		"grants": plain(reflect.ValueOf(in.Grants)),
	}
	if in.Body != nil {
		m["body"] = in.Body
	}
	if in.Object != nil {
		m["object"] = in.Object
	}
	if in.OldObject != nil {
		m["old_object"] = in.OldObject
	}
	return m
}

// field is a struct field as encoding/json sees it.
type field struct {
	index int
	name  string
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
		fs = append(fs, field{index: i, name: name})
	}
	fieldCache.Store(t, fs)
	return fs
}

// plain converts v to what encoding/json would produce when decoding its
// encoding into an any: maps, []any, strings, bools, numbers and nil. Only
// the kinds the input types use are supported; another is a programming
// error and panics.
func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		fs := fieldsOf(v.Type())
		m := make(map[string]any, len(fs))
		for _, f := range fs {
			fv := v.Field(f.index)
			if fv.Kind() == reflect.Pointer && fv.IsNil() {
				continue
			}
			m[f.name] = plain(fv)
		}
		return m
	case reflect.Slice:
		// A nil slice is an empty array, not null as in JSON, so that
		// policies can iterate and count it without a guard.
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			m[it.Key().String()] = plain(it.Value())
		}
		return m
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	panic(fmt.Sprintf("authz: cannot convert a %s to policy input", v.Type()))
}
