// Package strictjson checks JSON that two parties might read two ways:
// encoding/json keeps the last of two members of one name, other parsers
// the first, so a body that repeats a name can say one thing to jitproxy's
// policies and another to the upstream.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// RepeatedKeyError reports a member name given twice in one object.
type RepeatedKeyError struct{ Key string }

func (e *RepeatedKeyError) Error() string {
	return fmt.Sprintf("member %q is given more than once", e.Key)
}

// Errors of Check other than a RepeatedKeyError.
var (
	ErrInvalid  = errors.New("not valid JSON")
	ErrTooDeep  = errors.New("JSON nested too deeply")
	ErrTrailing = errors.New("data after the JSON value")
)

// Check checks that b is one JSON value, nested at most maxDepth deep (0:
// no limit but encoding/json's own), in which no object gives a member
// name twice, at any depth. It returns nil, a *RepeatedKeyError, or one of
// ErrInvalid, ErrTooDeep and ErrTrailing.
func Check(b []byte, maxDepth int) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token is a member name
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) == 0 {
				return nil
			}
			return ErrInvalid
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if maxDepth > 0 && len(stack) >= maxDepth {
					return ErrTooDeep
				}
				stack = append(stack, &frame{keys: map[string]bool{}, object: t == '{', key: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				if len(stack) == 0 && d.More() {
					return ErrTrailing
				}
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.keys[t] {
					return &RepeatedKeyError{Key: t}
				}
				top.keys[t] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}
