package ocsf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// This file is a validator of OCSF events against the OCSF schema's
// source (the JSON files of github.com/ocsf/ocsf-schema, not the compiled
// export of the OCSF server), written for these tests because no Go
// library validates against it. It compiles classes and objects the way
// the OCSF server does (extends, $include of profiles, the dictionary,
// enum merging) and checks an event as the server's /api/v2/validate
// does, stricter where the server only warns: a wrong enum sibling, a
// deprecated attribute, an unmatched type regex are errors here.

// schemaDir finds the OCSF 1.8.0 schema: $OCSF_SCHEMA_DIR, or
// ../shared/ocsf-schema-1.8.0 from the module root. Without one the test
// is skipped.
func schemaDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("OCSF_SCHEMA_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "ocsf-schema-1.8.0")
			if _, err := os.Stat(filepath.Join(d, "dictionary.json")); err == nil {
				return d
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Skip("OCSF 1.8.0 schema not found at ../shared/ocsf-schema-1.8.0 from the module root; set OCSF_SCHEMA_DIR")
	return ""
}

// rawDef is a class or object file as written.
type rawDef struct {
	Name        string                     `json:"name"`
	Caption     string                     `json:"caption"`
	Extends     string                     `json:"extends"`
	Category    string                     `json:"category"`
	UID         *int                       `json:"uid"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints map[string][]string        `json:"constraints"`
	Deprecated  json.RawMessage            `json:"@deprecated"`
}

type dictType struct {
	Type   string `json:"type"`
	Regex  string `json:"regex"`
	MaxLen int    `json:"max_len"`
	Range  []int  `json:"range"`
	Values []any  `json:"values"`
}

// attr is a compiled attribute of a class or object.
type attr struct {
	typ         string
	isArray     bool
	requirement string
	profile     string // "" for attributes not of a profile
	enum        map[string]string
	sibling     string
	deprecated  bool
}

// entity is a compiled class or object.
type entity struct {
	kind, name, caption string
	attrs               map[string]*attr
	constraints         map[string][]string
	deprecated          bool
}

type ocsfSchema struct {
	dir        string
	version    string
	dict       map[string]map[string]any
	types      map[string]dictType
	regexes    map[string]*regexp.Regexp
	objects    map[string]*rawDef
	events     map[string]*rawDef
	profiles   map[string]bool
	categories map[string]struct {
		UID     int    `json:"uid"`
		Caption string `json:"caption"`
	}
	classes  map[int]*entity // by class_uid
	resolved map[string]*entity
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func loadSchema(t testing.TB) *ocsfSchema {
	t.Helper()
	dir := schemaDir(t)
	s, err := readSchema(dir)
	if err != nil {
		t.Fatalf("read OCSF schema %s: %v", dir, err)
	}
	return s
}

func readSchema(dir string) (*ocsfSchema, error) {
	s := &ocsfSchema{dir: dir, objects: map[string]*rawDef{}, events: map[string]*rawDef{},
		profiles: map[string]bool{}, classes: map[int]*entity{}, resolved: map[string]*entity{}, regexes: map[string]*regexp.Regexp{}}
	var version struct{ Version string }
	if err := readJSON(filepath.Join(dir, "version.json"), &version); err != nil {
		return nil, err
	}
	s.version = version.Version
	var dict struct {
		Attributes map[string]map[string]any `json:"attributes"`
		Types      struct {
			Attributes map[string]dictType `json:"attributes"`
		} `json:"types"`
	}
	if err := readJSON(filepath.Join(dir, "dictionary.json"), &dict); err != nil {
		return nil, err
	}
	s.dict, s.types = dict.Attributes, dict.Types.Attributes
	for name, ty := range s.types {
		if ty.Regex == "" {
			continue
		}
		re, err := regexp.Compile(ty.Regex)
		if err != nil {
			return nil, fmt.Errorf("type %s: regex: %w", name, err)
		}
		s.regexes[name] = re
	}
	var cats struct {
		Attributes map[string]struct {
			UID     int    `json:"uid"`
			Caption string `json:"caption"`
		} `json:"attributes"`
	}
	if err := readJSON(filepath.Join(dir, "categories.json"), &cats); err != nil {
		return nil, err
	}
	s.categories = cats.Attributes
	objs, _ := filepath.Glob(filepath.Join(dir, "objects", "*.json"))
	for _, f := range objs {
		var d rawDef
		if err := readJSON(f, &d); err != nil {
			return nil, err
		}
		s.objects[d.Name] = &d
	}
	profs, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.json"))
	for _, f := range profs {
		var d rawDef
		if err := readJSON(f, &d); err != nil {
			return nil, err
		}
		s.profiles[d.Name] = true
	}
	err := filepath.WalkDir(filepath.Join(dir, "events"), func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		var d rawDef
		if err := readJSON(path, &d); err != nil {
			return err
		}
		s.events[d.Name] = &d
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(s.objects) == 0 || len(s.events) == 0 {
		return nil, fmt.Errorf("no objects or event classes under %s", dir)
	}
	for name, d := range s.events {
		if d.UID == nil && name != "base_event" {
			continue // an abstract class of a category
		}
		cat, err := s.category(d)
		if err != nil {
			return nil, err
		}
		uid := 0
		if d.UID != nil {
			uid = s.categories[cat].UID*1000 + *d.UID
		}
		c, err := s.resolve("class", name)
		if err != nil {
			return nil, err
		}
		s.classes[uid] = c
		s.classEnums(c, uid, cat)
	}
	return s, nil
}

// category is the category of class d, which may be its parent's.
func (s *ocsfSchema) category(d *rawDef) (string, error) {
	for d != nil {
		if d.Category != "" {
			return d.Category, nil
		}
		d = s.events[d.Extends]
	}
	return "", fmt.Errorf("class without a category")
}

// classEnums sets the enums the OCSF server generates per class:
// class_uid, category_uid and type_uid with their captions.
func (s *ocsfSchema) classEnums(c *entity, uid int, cat string) {
	catUID, catCaption := 0, "Uncategorized"
	if cat, ok := s.categories[cat]; ok {
		catUID, catCaption = cat.UID, cat.Caption
	}
	c.attrs["class_uid"].enum = map[string]string{strconv.Itoa(uid): c.caption}
	c.attrs["category_uid"].enum = map[string]string{strconv.Itoa(catUID): catCaption}
	types := map[string]string{}
	for id, caption := range c.attrs["activity_id"].enum {
		n, _ := strconv.Atoi(id)
		types[strconv.Itoa(uid*100+n)] = c.caption + ": " + caption
	}
	c.attrs["type_uid"].enum = types
}

// resolve compiles a class ("class") or an object ("object") by name.
func (s *ocsfSchema) resolve(kind, name string) (*entity, error) {
	key := kind + ":" + name
	if e, ok := s.resolved[key]; ok {
		return e, nil
	}
	specs, d, err := s.specs(kind, name)
	if err != nil {
		return nil, err
	}
	e := &entity{kind: kind, name: name, caption: d.Caption, attrs: map[string]*attr{}, deprecated: len(d.Deprecated) > 0}
	for n := d; n != nil; n = s.def(kind, n.Extends) {
		if e.constraints == nil && n.Constraints != nil {
			e.constraints = n.Constraints
		}
		if len(n.Deprecated) > 0 {
			e.deprecated = true
		}
	}
	for an, spec := range specs {
		a, err := s.compile(an, spec)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, name, err)
		}
		e.attrs[an] = a
	}
	s.resolved[key] = e
	return e, nil
}

func (s *ocsfSchema) def(kind, name string) *rawDef {
	if name == "" {
		return nil
	}
	if kind == "class" {
		return s.events[name]
	}
	return s.objects[name]
}

// specs merges the attribute specifications of a class or object: its
// parent's, then the profiles it includes (their attributes marked with
// the profile), then its own; a child's fields override its parent's and
// enums are merged.
func (s *ocsfSchema) specs(kind, name string) (map[string]map[string]any, *rawDef, error) {
	d := s.def(kind, name)
	if d == nil {
		return nil, nil, fmt.Errorf("no %s %q", kind, name)
	}
	out := map[string]map[string]any{}
	if d.Extends != "" {
		parent, _, err := s.specs(kind, d.Extends)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s extends: %w", kind, name, err)
		}
		out = parent
	}
	own := map[string]map[string]any{}
	if raw, ok := d.Attributes["$include"]; ok {
		var paths []string
		if err := json.Unmarshal(raw, &paths); err != nil {
			return nil, nil, fmt.Errorf("%s %s: $include: %w", kind, name, err)
		}
		for _, p := range paths {
			var prof struct {
				Name       string                    `json:"name"`
				Meta       string                    `json:"meta"`
				Attributes map[string]map[string]any `json:"attributes"`
			}
			if err := readJSON(filepath.Join(s.dir, p), &prof); err != nil {
				return nil, nil, err
			}
			for an, spec := range prof.Attributes {
				spec = maps.Clone(spec)
				if _, ok := spec["profile"]; !ok && prof.Meta == "profile" {
					spec["profile"] = prof.Name
				}
				own[an] = mergeSpec(own[an], spec)
			}
		}
	}
	for an, raw := range d.Attributes {
		if an == "$include" {
			continue
		}
		var spec map[string]any
		if err := json.Unmarshal(raw, &spec); err != nil {
			return nil, nil, fmt.Errorf("%s %s: attribute %s: %w", kind, name, an, err)
		}
		own[an] = mergeSpec(own[an], spec)
	}
	for an, spec := range own {
		out[an] = mergeSpec(out[an], spec)
	}
	return out, d, nil
}

// mergeSpec returns base overridden by over, field by field; enums are
// merged value by value. Neither argument is modified.
func mergeSpec(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if k == "enum" {
			be, _ := out[k].(map[string]any)
			oe, _ := v.(map[string]any)
			m := maps.Clone(be)
			if m == nil {
				m = map[string]any{}
			}
			maps.Copy(m, oe)
			out[k] = m
			continue
		}
		out[k] = v
	}
	return out
}

// compile completes an attribute's specification with its dictionary
// entry.
func (s *ocsfSchema) compile(name string, spec map[string]any) (*attr, error) {
	d, ok := s.dict[name]
	if !ok {
		return nil, fmt.Errorf("attribute %s is not in the dictionary", name)
	}
	full := mergeSpec(d, spec)
	a := &attr{requirement: "optional"}
	a.typ, _ = full["type"].(string)
	a.isArray, _ = full["is_array"].(bool)
	if r, ok := full["requirement"].(string); ok {
		a.requirement = r
	}
	a.profile, _ = full["profile"].(string)
	a.sibling, _ = full["sibling"].(string)
	_, dep := full["@deprecated"]
	a.deprecated = dep
	if e, ok := full["enum"].(map[string]any); ok && len(e) > 0 {
		a.enum = map[string]string{}
		for k, v := range e {
			caption, _ := v.(map[string]any)["caption"].(string)
			a.enum[k] = caption
		}
	}
	if a.typ == "" {
		return nil, fmt.Errorf("attribute %s has no type", name)
	}
	return a, nil
}

// validation is the outcome of validating one event.
type validation struct {
	s        *ocsfSchema
	profiles map[string]bool
	errors   []string
	warnings []string
}

func (v *validation) errorf(format string, args ...any) {
	v.errors = append(v.errors, fmt.Sprintf(format, args...))
}

func (v *validation) warnf(format string, args ...any) {
	v.warnings = append(v.warnings, fmt.Sprintf(format, args...))
}

// validate checks one JSON-encoded event. It returns the errors (the
// event does not conform) and warnings (recommended attributes missing,
// a value of "Other" named "Other").
func (s *ocsfSchema) validate(data []byte) (errs, warns []string) {
	v := &validation{s: s, profiles: map[string]bool{}}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		return []string{"not a JSON object: " + err.Error()}, nil
	}
	n, ok := ev["class_uid"].(json.Number)
	uid, err := n.Int64()
	if !ok || err != nil {
		return []string{"class_uid missing or not an integer"}, nil
	}
	class, ok := s.classes[int(uid)]
	if !ok {
		return []string{fmt.Sprintf("class_uid %d: no such class in OCSF %s", uid, s.version)}, nil
	}
	if class.deprecated {
		v.errorf("class %s is deprecated", class.name)
	}
	if md, ok := ev["metadata"].(map[string]any); ok {
		if ver := md["version"]; ver != s.version {
			v.errorf("metadata.version %v, want %s", ver, s.version)
		}
		if ps, ok := md["profiles"].([]any); ok {
			for _, p := range ps {
				name, _ := p.(string)
				if !s.profiles[name] {
					v.errorf("metadata.profiles: unknown profile %v", p)
				}
				v.profiles[name] = true
			}
		}
	}
	v.object("", ev, class)
	act, err1 := numberOf(ev["activity_id"]).Int64()
	typ, err2 := numberOf(ev["type_uid"]).Int64()
	if err1 == nil && err2 == nil && typ != uid*100+act {
		v.errorf("type_uid %d, want class_uid*100+activity_id = %d", typ, uid*100+act)
	}
	return v.errors, v.warnings
}

func numberOf(x any) json.Number {
	n, _ := x.(json.Number)
	return n
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// object checks m against a compiled class or object.
func (v *validation) object(path string, m map[string]any, e *entity) {
	avail := map[string]*attr{}
	for name, a := range e.attrs {
		if a.profile == "" || v.profiles[a.profile] {
			avail[name] = a
		}
	}
	for _, name := range slices.Sorted(maps.Keys(avail)) {
		if _, ok := m[name]; ok {
			continue
		}
		switch avail[name].requirement {
		case "required":
			v.errorf("%s: required attribute missing (%s %s)", join(path, name), e.kind, e.name)
		case "recommended":
			v.warnf("%s: recommended attribute missing (%s %s)", join(path, name), e.kind, e.name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		p := join(path, name)
		a, ok := avail[name]
		if !ok {
			if a, ok := e.attrs[name]; ok {
				v.errorf("%s: attribute of profile %s, which metadata.profiles does not declare", p, a.profile)
			} else {
				v.errorf("%s: not an attribute of %s %s", p, e.kind, e.name)
			}
			continue
		}
		if a.deprecated {
			v.errorf("%s: deprecated attribute", p)
		}
		v.value(p, m[name], a)
		if a.sibling != "" && a.enum != nil && !a.isArray {
			if sib, ok := m[a.sibling]; ok {
				key := enumKey(m[name])
				switch {
				case key == "99" && sib == "Other":
					v.warnf("%s: %q for %s 99 (Other) should be the source's own name", join(path, a.sibling), sib, name)
				case key != "99" && sib != a.enum[key]:
					v.errorf("%s: %q, want %q, the caption of %s %s", join(path, a.sibling), sib, a.enum[key], name, key)
				}
			}
		}
	}
	for kind, names := range e.constraints {
		n := 0
		for _, name := range names {
			if _, ok := m[name]; ok {
				n++
			}
		}
		switch {
		case kind == "at_least_one" && n == 0:
			v.errorf("%s: %s %s needs at least one of %v", pathOr(path), e.kind, e.name, names)
		case kind == "just_one" && n != 1:
			v.errorf("%s: %s %s needs exactly one of %v, has %d", pathOr(path), e.kind, e.name, names, n)
		case kind != "at_least_one" && kind != "just_one":
			v.errorf("%s: unknown constraint %s", pathOr(path), kind)
		}
	}
}

func pathOr(path string) string {
	if path == "" {
		return "(event)"
	}
	return path
}

func enumKey(x any) string {
	switch x := x.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return fmt.Sprint(x)
}

// value checks an attribute's value: an array of its type or one value.
func (v *validation) value(path string, x any, a *attr) {
	if !a.isArray {
		v.one(path, x, a)
		return
	}
	arr, ok := x.([]any)
	if !ok {
		v.errorf("%s: %T, want an array of %s", path, x, a.typ)
		return
	}
	for i, el := range arr {
		v.one(fmt.Sprintf("%s[%d]", path, i), el, a)
	}
}

func (v *validation) one(path string, x any, a *attr) {
	switch {
	case a.typ == "object":
		if _, ok := x.(map[string]any); !ok {
			v.errorf("%s: %T, want a JSON object", path, x)
		}
	case v.s.objects[a.typ] != nil:
		m, ok := x.(map[string]any)
		if !ok {
			v.errorf("%s: %T, want object %s", path, x, a.typ)
			return
		}
		o, err := v.s.resolve("object", a.typ)
		if err != nil {
			v.errorf("%s: %v", path, err)
			return
		}
		if o.deprecated {
			v.errorf("%s: object %s is deprecated", path, o.name)
		}
		v.object(path, m, o)
	default:
		v.primitive(path, x, a.typ)
	}
	if a.enum != nil {
		if _, ok := a.enum[enumKey(x)]; !ok {
			v.errorf("%s: %v is not a value of its enum", path, x)
		}
	}
}

// primitive checks a value of a dictionary type: its base type, then the
// constraints of the type and of its super type.
func (v *validation) primitive(path string, x any, typ string) {
	chain := []string{typ}
	for t := typ; v.s.types[t].Type != ""; {
		t = v.s.types[t].Type
		chain = append(chain, t)
	}
	if _, ok := v.s.types[typ]; !ok {
		v.errorf("%s: type %s is neither a dictionary type nor an object", path, typ)
		return
	}
	base := chain[len(chain)-1]
	switch base {
	case "string_t":
		str, ok := x.(string)
		if !ok {
			v.errorf("%s: %T, want %s (string)", path, x, typ)
			return
		}
		for _, t := range chain {
			if ml := v.s.types[t].MaxLen; ml > 0 && utf8.RuneCountInString(str) > ml {
				v.errorf("%s: longer than %d, the most for %s", path, ml, t)
			}
			if re := v.s.regexes[t]; re != nil && !re.MatchString(str) {
				v.errorf("%s: %q does not match the pattern of %s", path, str, t)
			}
		}
	case "integer_t", "long_t":
		n, ok := x.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			v.errorf("%s: %v, want %s (an integer)", path, x, typ)
			return
		}
		for _, t := range chain {
			if r := v.s.types[t].Range; len(r) == 2 && (i < int64(r[0]) || i > int64(r[1])) {
				v.errorf("%s: %d outside the range %v of %s", path, i, r, t)
			}
		}
	case "float_t":
		n, ok := x.(json.Number)
		if _, good := new(big.Float).SetString(n.String()); !ok || !good {
			v.errorf("%s: %v, want %s (a number)", path, x, typ)
		}
	case "boolean_t":
		if _, ok := x.(bool); !ok {
			v.errorf("%s: %T, want %s (a boolean)", path, x, typ)
		}
	case "json_t":
	default:
		v.errorf("%s: unknown base type %s", path, base)
	}
}

// TestValidatorReadsSchema checks the validator's reading of the schema
// against what the OCSF documentation states for the classes used.
func TestValidatorReadsSchema(t *testing.T) {
	s := loadSchema(t)
	if s.version != Version {
		t.Fatalf("schema version %s, want %s", s.version, Version)
	}
	api := s.classes[6003]
	if api == nil || api.caption != "API Activity" {
		t.Fatalf("class 6003 = %+v, want API Activity", api)
	}
	want := map[string]string{"0": "Unknown", "1": "Create", "2": "Read", "3": "Update", "4": "Delete", "99": "Other"}
	if got := api.attrs["activity_id"].enum; !maps.Equal(got, want) {
		t.Errorf("API Activity activity_id enum = %v, want %v", got, want)
	}
	for name, req := range map[string]string{"actor": "required", "api": "required", "src_endpoint": "required", "metadata": "required", "time": "required"} {
		a := api.attrs[name]
		if a == nil || a.requirement != req || a.profile != "" {
			t.Errorf("API Activity %s = %+v, want %s and of no profile", name, a, req)
		}
	}
	if a := api.attrs["authorizations"]; a == nil || a.profile != "security_control" || !a.isArray || a.typ != "authorization" {
		t.Errorf("API Activity authorizations = %+v, want an array of authorization of profile security_control", a)
	}
	if a := api.attrs["cloud"]; a == nil || a.profile != "cloud" || a.requirement != "required" {
		t.Errorf("API Activity cloud = %+v, want required by profile cloud", a)
	}
	user, err := s.resolve("object", "user")
	if err != nil {
		t.Fatal(err)
	}
	if a := user.attrs["name"]; a == nil || a.typ != "username_t" || a.requirement != "recommended" {
		t.Errorf("user.name = %+v, want username_t, recommended", a)
	}
	if a := user.attrs["type_id"]; a == nil || a.enum["0"] != "Unknown" || a.enum["3"] != "System" {
		t.Errorf("user.type_id = %+v, want the dictionary's and the object's values", a)
	}
	for _, c := range []struct {
		uid  int
		name string
	}{{3002, "Authentication"}, {3004, "Entity Management"}, {3005, "User Access Management"}, {0, "Base Event"}} {
		if got := s.classes[c.uid]; got == nil || got.caption != c.name {
			t.Errorf("class %d = %+v, want %s", c.uid, got, c.name)
		}
	}
}
