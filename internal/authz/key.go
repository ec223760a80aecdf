package authz

import (
	"encoding/binary"
	"fmt"
	"reflect"
)

// appendKey appends to b an encoding of v, a value of one of the input
// types, that tells apart any two values policies could tell apart: every
// field the policy input has (toValue) is in it, strings are length
// prefixed, and slices and pointers carry their length and presence. Two
// values of the same type with the same encoding are the same input. It
// panics on a kind toValue does not support, as toValue does.
func appendKey(b []byte, v reflect.Value) []byte {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, 0)
		}
		return appendKey(append(b, 1), v.Elem())
	case reflect.Struct:
		for _, f := range fieldsOf(v.Type()) {
			b = appendKey(b, v.Field(f.index))
		}
		return b
	case reflect.Slice:
		b = binary.AppendUvarint(b, uint64(v.Len()))
		for i := range v.Len() {
			b = appendKey(b, v.Index(i))
		}
		return b
	case reflect.String:
		s := v.String()
		return append(binary.AppendUvarint(b, uint64(len(s))), s...)
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	}
	panic(fmt.Sprintf("authz: cannot key a %s", v.Type()))
}
