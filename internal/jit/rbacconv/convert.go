package rbacconv

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// Defaults of Options.
const (
	DefaultMaxDuration = time.Hour
	DefaultProvider    = "tokenrequest"
	// DefaultServiceAccountNamespace is where the ServiceAccounts of
	// cluster-wide policies' tokenrequest credentials live.
	DefaultServiceAccountNamespace = "jitproxy-system"
)

// Options say how to convert. Only Target is required.
type Options struct {
	// Target is the name of the jitproxy target the policies grant on.
	Target string
	// Namespace, if set, converts only the RoleBindings of that namespace
	// (ClusterRoleBindings are left out: they are not of one namespace).
	Namespace string
	// IncludeSystem converts the cluster's own bindings too: those named
	// system:..., binding a system:... role, in kube-system, kube-public or
	// kube-node-lease, or labelled kubernetes.io/bootstrapping=rbac-defaults.
	// False leaves them out.
	IncludeSystem bool
	// MaxDuration is the policies' spec.duration.max; zero means
	// DefaultMaxDuration.
	MaxDuration time.Duration
	// Approvers are the groups one of whom must approve each grant; none
	// means grants need no approval.
	Approvers []string
	// Provider is the credential provider; "" means DefaultProvider.
	Provider string
	// CredentialOptions are the provider's options. With none and the
	// tokenrequest provider, each policy names its own ServiceAccount,
	// jitproxy-POLICY, in the grant's namespace or, for a cluster-wide
	// policy, in ServiceAccountNamespace.
	CredentialOptions map[string]string
	// ServiceAccountNamespace: see CredentialOptions; "" means
	// DefaultServiceAccountNamespace.
	ServiceAccountNamespace string
}

// Policy is one converted access policy.
type Policy struct {
	// Name is the policy's metadata.name.
	Name string
	// Source names the binding it came from: "RoleBinding demo/web".
	Source string
	// Setup says, as comment lines, what must exist for its credential to
	// be minted; empty when nothing is known.
	Setup []string
	// YAML is the policy as one YAML document, without "---".
	YAML []byte
	// Parsed is YAML as jit.ParsePolicies reads it.
	Parsed *jit.Policy
}

// Result is what Convert made: the policies, sorted by name, and warnings
// about what was left out or deserves a look, one sentence each.
type Result struct {
	Policies []Policy
	Warnings []string
}

// binding is a RoleBinding or a ClusterRoleBinding.
type binding struct {
	kind, namespace, name string
	subjects              []rbacv1.Subject
	roleRef               rbacv1.RoleRef
	labels                map[string]string
}

func (b binding) source() string {
	if b.namespace == "" {
		return b.kind + " " + b.name
	}
	return b.kind + " " + b.namespace + "/" + b.name
}

// Convert converts the bindings of r into access policies. It returns an
// error only when o lacks Target; whatever cannot be converted is a
// warning of the Result.
func Convert(r RBAC, o Options) (Result, error) {
	if o.Target == "" {
		return Result{}, errors.New("rbacconv: Options.Target is required")
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.Provider == "" {
		o.Provider = DefaultProvider
	}
	if o.ServiceAccountNamespace == "" {
		o.ServiceAccountNamespace = DefaultServiceAccountNamespace
	}
	var bs []binding
	for _, rb := range r.RoleBindings {
		if o.Namespace == "" || rb.Namespace == o.Namespace {
			bs = append(bs, binding{"RoleBinding", rb.Namespace, rb.Name, rb.Subjects, rb.RoleRef, rb.Labels})
		}
	}
	if o.Namespace == "" {
		for _, crb := range r.ClusterRoleBindings {
			bs = append(bs, binding{"ClusterRoleBinding", "", crb.Name, crb.Subjects, crb.RoleRef, crb.Labels})
		}
	}
	slices.SortFunc(bs, func(a, b binding) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})

	var res Result
	warn := func(format string, args ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, args...)) }
	roles := map[string][]rbacv1.PolicyRule{}
	for _, ro := range r.Roles {
		roles["Role "+ro.Namespace+"/"+ro.Name] = ro.Rules
	}
	aggregated := map[string]bool{}
	for _, cr := range r.ClusterRoles {
		roles["ClusterRole "+cr.Name] = cr.Rules
		aggregated[cr.Name] = cr.AggregationRule != nil && len(cr.Rules) == 0
	}

	// Name the policies, and give every name two bindings would share a
	// suffix of its own.
	names := map[string][]int{}
	for i, b := range bs {
		raw := b.name
		if b.namespace != "" {
			raw = b.namespace + "-" + b.name
		}
		n := label(raw, b.source())
		names[n] = append(names[n], i)
	}
	policyName := make([]string, len(bs))
	for n, is := range names {
		for _, i := range is {
			policyName[i] = n
			if len(is) > 1 {
				policyName[i] = withSuffix(n, bs[i].source())
			}
		}
	}

	skippedSystem := 0
	for i, b := range bs {
		if !o.IncludeSystem && system(b) {
			skippedSystem++
			continue
		}
		src := b.source()
		if b.roleRef.APIGroup != rbacv1.GroupName || (b.roleRef.Kind != "Role" && b.roleRef.Kind != "ClusterRole") ||
			(b.kind == "ClusterRoleBinding" && b.roleRef.Kind != "ClusterRole") {
			warn("%s: skipped: it refers to %s %q of group %q, not a Role or ClusterRole", src, b.roleRef.Kind, b.roleRef.Name, b.roleRef.APIGroup)
			continue
		}
		roleKey := "ClusterRole " + b.roleRef.Name
		if b.roleRef.Kind == "Role" {
			roleKey = "Role " + b.namespace + "/" + b.roleRef.Name
		}
		rules, ok := roles[roleKey]
		if !ok {
			warn("%s: skipped: its %s is not among those read", src, roleKey)
			continue
		}
		if b.roleRef.Kind == "ClusterRole" && aggregated[b.roleRef.Name] {
			warn("%s: skipped: %s is aggregated and has no rules yet (read the cluster, where the apiserver fills them in)", src, roleKey)
			continue
		}
		subjects, sw := convertSubjects(b)
		for _, w := range sw {
			warn("%s: %s", src, w)
		}
		if len(subjects.Users)+len(subjects.Groups) == 0 {
			warn("%s: skipped: it has no subject a policy can name", src)
			continue
		}
		perms, pw := convertRules(rules, b.kind == "RoleBinding")
		for _, w := range pw {
			warn("%s (%s): %s", src, roleKey, w)
		}
		if len(perms) == 0 {
			warn("%s: skipped: %s has no rule a policy can carry", src, roleKey)
			continue
		}
		p, err := render(policyName[i], b, roleKey, subjects, perms, o)
		if err != nil {
			warn("%s: skipped: its policy would not load: %v", src, err)
			continue
		}
		res.Policies = append(res.Policies, p)
	}
	if skippedSystem > 0 {
		warn("%d system bindings left out (include them with IncludeSystem, --exclude-system=false)", skippedSystem)
	}
	slices.SortFunc(res.Policies, func(a, b Policy) int { return cmp.Compare(a.Name, b.Name) })
	return res, nil
}

// system reports whether b is one of the cluster's own bindings.
func system(b binding) bool {
	return strings.HasPrefix(b.name, "system:") || strings.HasPrefix(b.roleRef.Name, "system:") ||
		slices.Contains([]string{"kube-system", "kube-public", "kube-node-lease"}, b.namespace) ||
		b.labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
}

// convertSubjects returns the users and groups of b, sorted and without
// repeats, and warnings for the subjects left out.
func convertSubjects(b binding) (jit.Subjects, []string) {
	users, groups := map[string]bool{}, map[string]bool{}
	var warns []string
	for _, s := range b.subjects {
		switch {
		case s.Name == "" || !printable(s.Name):
			warns = append(warns, fmt.Sprintf("subject %s %q left out: not a printable name", s.Kind, s.Name))
		case s.Kind == rbacv1.UserKind:
			users[s.Name] = true
		case s.Kind == rbacv1.GroupKind:
			groups[s.Name] = true
		case s.Kind == rbacv1.ServiceAccountKind:
			ns := cmp.Or(s.Namespace, b.namespace)
			if ns == "" {
				warns = append(warns, fmt.Sprintf("ServiceAccount %q left out: it has no namespace", s.Name))
				continue
			}
			users["system:serviceaccount:"+ns+":"+s.Name] = true
		default:
			warns = append(warns, fmt.Sprintf("subject %s %q left out: not a User, Group or ServiceAccount", s.Kind, s.Name))
		}
	}
	if slices.ContainsFunc(b.subjects, func(s rbacv1.Subject) bool { return s.Kind == rbacv1.ServiceAccountKind }) {
		warns = append(warns, "ServiceAccounts kept as users system:serviceaccount:NAMESPACE:NAME, which no jitproxy session can be (session users hold no \":\"): replace them with the people or groups that run those workloads")
	}
	return jit.Subjects{Users: slices.Sorted(maps.Keys(users)), Groups: slices.Sorted(maps.Keys(groups))}, warns
}

// permission is a Kubernetes permission as access policies write it.
type permission struct {
	Verbs           []string `yaml:"verbs,flow"`
	APIGroups       []string `yaml:"apiGroups,flow,omitempty"`
	Resources       []string `yaml:"resources,flow,omitempty"`
	ResourceNames   []string `yaml:"resourceNames,flow,omitempty"`
	NonResourceURLs []string `yaml:"nonResourceURLs,flow,omitempty"`
}

// escalating are the verbs that let their holder give themselves more.
var escalating = []string{"escalate", "bind", "impersonate", "*"}

// convertRules converts the rules of a role into permissions that allow
// at most what the rules allow. inNamespace is for a RoleBinding's, whose
// nonResourceURLs RBAC ignores.
func convertRules(rules []rbacv1.PolicyRule, inNamespace bool) ([]permission, []string) {
	var perms []permission
	var warns []string
	for i, r := range rules {
		bad := func(format string, args ...any) {
			warns = append(warns, fmt.Sprintf("rule %d: ", i+1)+fmt.Sprintf(format, args...))
		}
		verbs := slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "" || !printable(v) })
		if len(verbs) == 0 {
			bad("left out: it has no verbs")
			continue
		}
		if v := slices.DeleteFunc(slices.Clone(verbs), func(v string) bool { return !slices.Contains(escalating, v) }); len(v) > 0 {
			bad("kept, but verbs %s let its holder escalate privileges", strings.Join(v, ", "))
		}
		if len(r.NonResourceURLs) > 0 {
			switch {
			case inNamespace:
				bad("nonResourceURLs left out: RBAC ignores them in a RoleBinding")
			case !allNames(r.NonResourceURLs):
				bad("nonResourceURLs left out: one is not a printable name")
			default:
				perms = append(perms, permission{Verbs: verbs, NonResourceURLs: slices.Clone(r.NonResourceURLs)})
			}
		}
		if len(r.Resources) == 0 {
			if len(r.NonResourceURLs) == 0 {
				bad("left out: it has neither resources nor nonResourceURLs")
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			bad("left out: resources without apiGroups match nothing")
			continue
		}
		if len(r.ResourceNames) > 0 && !allNames(r.ResourceNames) {
			bad("left out: one of its resourceNames is not a printable name")
			continue
		}
		var resources []string
		for _, res := range r.Resources {
			if strings.HasSuffix(res, "/*") && res != "*/*" {
				bad("resource %q left out: RBAC reads it as a subresource named \"*\", which matches nothing", res)
				continue
			}
			if res == "" || !printable(res) {
				bad("resource %q left out: not a printable name", res)
				continue
			}
			resources = append(resources, res)
		}
		if len(resources) == 0 {
			continue
		}
		perms = append(perms, permission{Verbs: verbs, APIGroups: slices.Clone(r.APIGroups), Resources: resources, ResourceNames: slices.Clone(r.ResourceNames)})
	}
	return perms, warns
}

// allNames reports whether every one of vs is a name access policies
// accept: not empty, printable, without surrounding spaces.
func allNames(vs []string) bool {
	return !slices.ContainsFunc(vs, func(v string) bool {
		return v == "" || !printable(v) || strings.TrimSpace(v) != v || len(v) > jit.MaxNameLength
	})
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

var (
	notLabel = regexp.MustCompile(`[^a-z0-9]+`)
	isLabel  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// label returns raw as a DNS-1123 label: raw itself when it is one, else
// raw lower-cased, every run of other characters a dash, shortened, and
// suffixed with a hash of source so that it stays distinct.
func label(raw, source string) string {
	if isLabel.MatchString(raw) {
		return raw
	}
	s := strings.Trim(notLabel.ReplaceAllString(strings.ToLower(raw), "-"), "-")
	return withSuffix(s, source)
}

// withSuffix returns s, shortened to fit, with "-" and six hex digits of
// the hash of source appended.
func withSuffix(s, source string) string {
	sum := sha256.Sum256([]byte(source))
	const keep = 63 - 7
	if len(s) > keep {
		s = strings.TrimRight(s[:keep], "-")
	}
	if s == "" {
		s = "rbac"
	}
	return s + "-" + hex.EncodeToString(sum[:3])
}

// doc is an access policy document as written.
type doc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Description string `yaml:"description"`
		Target      string `yaml:"target"`
		Subjects    struct {
			Users  []string `yaml:"users,flow,omitempty"`
			Groups []string `yaml:"groups,flow,omitempty"`
		} `yaml:"subjects"`
		Namespaces  []string     `yaml:"namespaces,flow,omitempty"`
		ClusterWide bool         `yaml:"clusterWide,omitempty"`
		Permissions []permission `yaml:"permissions"`
		Duration    struct {
			Max string `yaml:"max"`
		} `yaml:"duration"`
		Approval struct {
			Required  int `yaml:"required"`
			Approvers *struct {
				Groups []string `yaml:"groups,flow"`
			} `yaml:"approvers,omitempty"`
		} `yaml:"approval"`
		Credential struct {
			Provider string            `yaml:"provider"`
			Options  map[string]string `yaml:"options,omitempty"`
		} `yaml:"credential"`
	} `yaml:"spec"`
}

// render writes the policy of b and parses it back.
func render(name string, b binding, roleKey string, subjects jit.Subjects, perms []permission, o Options) (Policy, error) {
	var d doc
	d.APIVersion, d.Kind = jit.PolicyAPIVersion, jit.PolicyKind
	d.Metadata.Name = name
	s := &d.Spec
	s.Description = fmt.Sprintf("Converted from %s (%s).", b.source(), roleKey)
	s.Target = o.Target
	s.Subjects.Users, s.Subjects.Groups = subjects.Users, subjects.Groups
	if b.kind == "RoleBinding" {
		s.Namespaces = []string{b.namespace}
	} else {
		s.ClusterWide = true
	}
	s.Permissions = perms
	s.Duration.Max = o.MaxDuration.String()
	if len(o.Approvers) > 0 {
		s.Approval.Required = 1
		s.Approval.Approvers = &struct {
			Groups []string `yaml:"groups,flow"`
		}{Groups: o.Approvers}
	}
	s.Credential.Provider = o.Provider
	s.Credential.Options = o.CredentialOptions
	var setup []string
	if o.Provider == DefaultProvider && len(o.CredentialOptions) == 0 {
		sa := withSuffix("jitproxy-"+name, name)
		if len("jitproxy-"+name) <= 63 {
			sa = "jitproxy-" + name
		}
		s.Credential.Options = map[string]string{"serviceAccount": sa}
		saNS := b.namespace
		if b.kind == "ClusterRoleBinding" {
			saNS = o.ServiceAccountNamespace
			s.Credential.Options["serviceAccountNamespace"] = saNS
		}
		bind := fmt.Sprintf("kubectl create rolebinding %s -n %s --%s=%s --serviceaccount=%s:%s", sa, saNS, strings.ToLower(b.roleRef.Kind), b.roleRef.Name, saNS, sa)
		if b.kind == "ClusterRoleBinding" {
			bind = fmt.Sprintf("kubectl create clusterrolebinding %s --clusterrole=%s --serviceaccount=%s:%s", sa, b.roleRef.Name, saNS, sa)
		}
		setup = []string{
			fmt.Sprintf("kubectl create serviceaccount %s -n %s", sa, saNS),
			bind,
			fmt.Sprintf("and let jitproxy create serviceaccounts/token for %s in %s", sa, saNS),
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&d); err != nil {
		return Policy{}, err
	}
	if err := enc.Close(); err != nil {
		return Policy{}, err
	}
	out := buf.Bytes()
	ps, err := jit.ParsePolicies(name, out)
	if err != nil {
		return Policy{}, err
	}
	if len(ps) != 1 {
		return Policy{}, fmt.Errorf("parsed %d policies, want 1", len(ps))
	}
	return Policy{Name: name, Source: b.source(), Setup: setup, YAML: out, Parsed: ps[0]}, nil
}
