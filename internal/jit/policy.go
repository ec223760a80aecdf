package jit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Access policy document identifiers.
const (
	PolicyAPIVersion = "jitproxy.dev/v1alpha1"
	PolicyKind       = "AccessPolicy"
)

// DefaultApprovalTimeout is how long a PENDING grant waits for approval when
// its policy does not say.
const DefaultApprovalTimeout = time.Hour

// Policy is an access policy: who may request a grant, what the grant
// allows, for how long, who must approve it, and how its credential is made.
// Policies are immutable once loaded.
type Policy struct {
	Name        string
	Description string
	// Version identifies the policy's content; grants record it.
	Version string
	// Target is the name of the configured target the grant applies to.
	Target string
	// Kind is the kind of target the permissions are for (access.KindKubernetes
	// or access.KindAWS), told by the fields of the permissions.
	Kind     string
	Subjects Subjects
	// Namespaces a grant may be requested for: names, or patterns in which
	// "*" stands for any run of characters ("team-*"); "*" alone allows
	// any. Empty when ClusterWide.
	Namespaces []string
	// ClusterWide grants apply to every namespace and to cluster-scoped
	// resources; they are requested without a namespace. AWS policies are
	// always ClusterWide: their grants have no namespace.
	ClusterWide bool
	// Permissions all have a part of the policy's Kind.
	Permissions []access.Permission
	Duration    Durations
	Approval    Approval
	Credential  CredentialSpec
	// Conditions limit when, from where and how grants are requested and
	// used; nil: they are not limited. (Omitted when nil from what the
	// Version hashes, so policies without conditions keep their versions.)
	Conditions *Conditions `json:",omitempty"`
}

// Subjects lists users and groups. A principal matches when its name is in
// Users or one of its groups is in Groups.
type Subjects struct {
	Users  []string `yaml:"users" json:"users,omitempty"`
	Groups []string `yaml:"groups" json:"groups,omitempty"`
}

// Matches reports whether the named principal with groups is listed.
func (s Subjects) Matches(name string, groups []string) bool {
	if slices.Contains(s.Users, name) {
		return true
	}
	return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(s.Groups, g) })
}

func (s Subjects) empty() bool { return len(s.Users) == 0 && len(s.Groups) == 0 }

// Durations bounds how long a grant lasts.
type Durations struct {
	// Default applies when a request names no duration; it defaults to Max.
	// A requester whose maximum is shorter gets their maximum.
	Default time.Duration `yaml:"default"`
	// Max is the longest grant that may be requested by a requester no
	// entry of MaxFor names. Required.
	Max time.Duration `yaml:"max"`
	// MaxFor, if any, gives some requesters their own maximum: the first
	// entry naming the requester or one of their groups applies, longer
	// or shorter than Max. (Omitted when empty from what the Version
	// hashes, so policies without it keep their versions.)
	MaxFor []MaxDuration `yaml:"maxFor" json:",omitempty"`
}

// MaxDuration is the longest grant the requesters it names may ask for.
type MaxDuration struct {
	Subjects `yaml:",inline"`
	Max      time.Duration `yaml:"max"`
}

// maxFor returns the longest grant user, a member of groups, may request.
func (d Durations) maxFor(user string, groups []string) time.Duration {
	for _, m := range d.MaxFor {
		if m.Matches(user, groups) {
			return m.Max
		}
	}
	return d.Max
}

// defaultFor returns the duration of a grant user requests without one:
// the default, capped at their maximum.
func (d Durations) defaultFor(user string, groups []string) time.Duration {
	return min(d.Default, d.maxFor(user, groups))
}

// Approval says who must approve a grant before it becomes ACTIVE.
type Approval struct {
	// Required is the number of distinct approvers needed; 0 grants at once.
	// With Steps it is their sum.
	Required int `yaml:"required"`
	// Approvers may approve or deny. Nobody approves their own request.
	// With Steps it is every step's approvers.
	Approvers Subjects `yaml:"approvers"`
	// Steps, if any, each need their own approvals, from their own
	// approvers: "1 from sre and 1 from security". One person's approval
	// counts for one step only.
	Steps []ApprovalStep `yaml:"steps" json:",omitempty"`
	// Timeout is how long a request stays PENDING before it EXPIRES.
	Timeout time.Duration `yaml:"timeout"`
}

// ApprovalStep is one group of approvals a request needs.
type ApprovalStep struct {
	Required  int      `yaml:"required" json:"required"`
	Approvers Subjects `yaml:"approvers" json:"approvers"`
}

// CredentialSpec says which credential provider mints a grant's credential
// and with which provider-specific options. jit does not interpret it: the
// provider named validates the options when the policies are loaded.
type CredentialSpec struct {
	Provider string            `yaml:"provider" json:"provider"`
	Options  map[string]string `yaml:"options" json:"options,omitempty"`
}

// allowsNamespace reports whether a grant for ns may be requested under
// p: ns is one of its namespaces or matches one of its patterns.
func (p *Policy) allowsNamespace(ns string) bool {
	if p.ClusterWide {
		return ns == ""
	}
	return ns != "" && slices.ContainsFunc(p.Namespaces, func(pat string) bool { return namespaceMatches(pat, ns) })
}

// namespaceMatches reports whether ns matches pat, in which each "*"
// stands for any run of characters, none included.
func namespaceMatches(pat, ns string) bool {
	first, rest, wild := strings.Cut(pat, "*")
	if !wild {
		return pat == ns
	}
	if !strings.HasPrefix(ns, first) {
		return false
	}
	ns = ns[len(first):]
	parts := strings.Split(rest, "*")
	last := parts[len(parts)-1]
	for _, part := range parts[:len(parts)-1] {
		i := strings.Index(ns, part)
		if i < 0 {
			return false
		}
		ns = ns[i+len(part):]
	}
	return strings.HasSuffix(ns, last)
}

// checkNamespacePattern reports what is wrong with a namespaces entry: a
// name that is not a DNS-1123 label, or a pattern that no such label
// could match.
func checkNamespacePattern(pat string) error {
	if !strings.Contains(pat, "*") {
		return checkNamespace(pat)
	}
	if pat == "*" {
		return nil
	}
	// Each "*" matches at least "a" in some label, so the pattern with
	// every "*" as "a" must itself be one.
	if err := checkNamespace(strings.ReplaceAll(pat, "*", "a")); err != nil {
		return fmt.Errorf("pattern %s matches no DNS-1123 label", quoteShort(pat))
	}
	return nil
}

type policyDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Description string          `yaml:"description"`
		Target      string          `yaml:"target"`
		Subjects    Subjects        `yaml:"subjects"`
		Namespaces  []string        `yaml:"namespaces"`
		ClusterWide bool            `yaml:"clusterWide"`
		Permissions []permissionDoc `yaml:"permissions"`
		Duration    Durations       `yaml:"duration"`
		Approval    Approval        `yaml:"approval"`
		Credential  CredentialSpec  `yaml:"credential"`
		Conditions  *Conditions     `yaml:"conditions"`
	} `yaml:"spec"`
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ParsePolicies parses one YAML stream of AccessPolicy documents separated
// by "---". Unknown fields are errors. Every invalid document is reported,
// named by file and position, in one joined error.
func ParsePolicies(file string, data []byte) ([]*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []*Policy
	var errs []error
	for i := 1; ; i++ {
		var doc policyDoc
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The decoder cannot resynchronise after a syntax error.
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, i, err))
			break
		}
		p, err := doc.policy()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, i, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func (d *policyDoc) policy() (*Policy, error) {
	s := d.Spec
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.APIVersion != PolicyAPIVersion || d.Kind != PolicyKind {
		bad("apiVersion/kind is %q/%q, want %q/%q", d.APIVersion, d.Kind, PolicyAPIVersion, PolicyKind)
	}
	if !namePattern.MatchString(d.Metadata.Name) {
		bad("metadata.name %q must be lower-case letters, digits and dashes, at most 63", d.Metadata.Name)
	}
	if s.Target == "" {
		bad("spec.target is required")
	}
	if s.Subjects.empty() {
		bad("spec.subjects must list at least one user or group")
	}
	switch {
	case permissionsKind(s.Permissions) == access.KindAWS:
	case s.ClusterWide && len(s.Namespaces) > 0:
		bad("spec.namespaces must be empty when spec.clusterWide is true")
	case !s.ClusterWide && len(s.Namespaces) == 0:
		bad("spec.namespaces is required unless spec.clusterWide is true")
	}
	for i, ns := range s.Namespaces {
		if err := checkNamespacePattern(ns); err != nil {
			bad("spec.namespaces[%d]: %w", i, err)
		}
	}
	kind, perms, err := permissions(s.Permissions)
	if err != nil {
		errs = append(errs, err)
	}
	if kind == access.KindAWS {
		if s.ClusterWide || len(s.Namespaces) > 0 {
			bad("spec.namespaces and spec.clusterWide do not apply to AWS permissions: AWS grants have no namespace")
		}
		s.ClusterWide = true
	}
	if s.Duration.Max <= 0 {
		bad("spec.duration.max must be a positive duration such as 1h")
	}
	if s.Duration.Default == 0 {
		s.Duration.Default = s.Duration.Max
	}
	if s.Duration.Default < 0 || s.Duration.Default > s.Duration.Max {
		bad("spec.duration.default %s must be positive and at most max %s", s.Duration.Default, s.Duration.Max)
	}
	for i, m := range s.Duration.MaxFor {
		if m.Subjects.empty() || m.Max <= 0 {
			bad("spec.duration.maxFor[%d] needs users or groups and a positive max", i)
		}
	}
	if len(s.Approval.Steps) > 0 {
		if s.Approval.Required != 0 || !s.Approval.Approvers.empty() {
			bad("spec.approval: give either required and approvers, or steps")
		}
		for i, st := range s.Approval.Steps {
			if st.Required < 1 || st.Approvers.empty() {
				bad("spec.approval.steps[%d] needs required of at least 1 and approvers", i)
			}
			s.Approval.Required += st.Required
			s.Approval.Approvers.Users = append(s.Approval.Approvers.Users, st.Approvers.Users...)
			s.Approval.Approvers.Groups = append(s.Approval.Approvers.Groups, st.Approvers.Groups...)
		}
	}
	if s.Approval.Required < 0 {
		bad("spec.approval.required must not be negative")
	}
	if s.Approval.Required > 0 && s.Approval.Approvers.empty() {
		bad("spec.approval.approvers must list users or groups when approvals are required")
	}
	if s.Approval.Timeout < 0 {
		bad("spec.approval.timeout must not be negative")
	}
	if s.Approval.Timeout == 0 {
		s.Approval.Timeout = DefaultApprovalTimeout
	}
	if s.Credential.Provider == "" {
		bad("spec.credential.provider is required")
	}
	if s.Conditions != nil {
		if err := s.Conditions.validate("spec.conditions"); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("access policy %q: %w", d.Metadata.Name, errors.Join(errs...))
	}
	p := &Policy{
		Name:        d.Metadata.Name,
		Description: s.Description,
		Target:      s.Target,
		Kind:        kind,
		Subjects:    s.Subjects,
		Namespaces:  s.Namespaces,
		ClusterWide: s.ClusterWide,
		Permissions: perms,
		Duration:    s.Duration,
		Approval:    s.Approval,
		Credential:  s.Credential,
		Conditions:  s.Conditions,
	}
	p.Version = policyVersion(p)
	return p, nil
}

func policyVersion(p *Policy) string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // Policy holds only strings, ints, bools, slices and maps.
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Policies is a loaded set of access policies, by name. It is immutable,
// and so safe for concurrent use.
type Policies struct {
	byName map[string]*Policy
	names  []string
}

// PolicySource gives the access policies in force. A Service reads it at
// each use (a grant request, a list of policies, a suggestion), so that a
// jitproxy that reloads its policies changes the source, not the Service.
type PolicySource interface {
	// AccessPolicies returns the set in force, never nil. It must be safe
	// for concurrent use and cheap.
	AccessPolicies() *Policies
}

// AccessPolicies returns s: a loaded set is a source whose policies never
// change.
func (s *Policies) AccessPolicies() *Policies { return s }

// NewPolicies returns the set of ps; two policies of one name are an error.
func NewPolicies(ps []*Policy) (*Policies, error) {
	set := &Policies{byName: make(map[string]*Policy, len(ps))}
	for _, p := range ps {
		if _, dup := set.byName[p.Name]; dup {
			return nil, fmt.Errorf("access policy %q is defined twice", p.Name)
		}
		set.byName[p.Name] = p
		set.names = append(set.names, p.Name)
	}
	sort.Strings(set.names)
	return set, nil
}

// LoadPolicies parses every .yaml and .yml file in fsys, at any depth.
func LoadPolicies(fsys fs.FS) (*Policies, error) {
	var all []*Policy
	var errs []error
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := path.Ext(p); d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ps, err := ParsePolicies(p, data)
		errs = append(errs, err)
		all = append(all, ps...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load access policies: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewPolicies(all)
}

// Get returns the named policy, or nil.
func (s *Policies) Get(name string) *Policy { return s.byName[name] }

// All returns every policy, sorted by name.
func (s *Policies) All() []*Policy {
	out := make([]*Policy, len(s.names))
	for i, n := range s.names {
		out[i] = s.byName[n]
	}
	return out
}
