package profile

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Source is what an export needs to know of the learning grant besides its
// profile: where it applied, who held it, who approved grants of its
// policy and how its credential was made.
type Source struct {
	Grant     string
	Policy    string
	Target    string
	Namespace string // "" for a cluster-wide grant
	User      string
	Duration  time.Duration
	// Approval is copied to an exported access policy: learning narrows
	// what is granted, not who must agree.
	ApprovalsRequired int
	ApproverUsers     []string
	ApproverGroups    []string
	Provider          string
	Options           map[string]string
}

// Options tunes how an export generalises. The zero Options keeps every
// name seen (up to DefaultMaxNames per rule) and uses no wildcard.
type Options struct {
	// Name names the exported access policy, Role or ClusterRole; default
	// "learned-" and the grant ID.
	Name string
	// MaxNames is how many names of one resource and verb are kept as
	// resourceNames; more seen, and the rule allows any name. Default
	// DefaultMaxNames; negative: never keep names.
	MaxNames int
	// Wildcards generalises further: rules allow any name, and a
	// resource read with one of get, list and watch may be read with all
	// three.
	Wildcards bool
	// ServiceAccount, if set, makes an exported access policy's
	// credential a TokenRequest for this ServiceAccount (bind it to the
	// exported Role); otherwise the credential is the learning grant's.
	ServiceAccount string
}

// DefaultMaxNames is Options.MaxNames when zero.
const DefaultMaxNames = 5

// Formats are the export formats, for Export.
var Formats = []string{"access-policy", "role", "iam", "rego-test"}

// Export writes p in format (one of Formats). Output is deterministic: the
// same profile and options give the same bytes. A profile with no use of
// the kind the format needs is an error.
func Export(format string, src Source, p *Profile, o Options) ([]byte, error) {
	if o.Name == "" {
		o.Name = "learned-" + src.Grant
	}
	if o.MaxNames == 0 {
		o.MaxNames = DefaultMaxNames
	}
	switch format {
	case "access-policy":
		return accessPolicy(src, p, o)
	case "role":
		return role(p, o)
	case "iam":
		return iamPolicy(p)
	case "rego-test":
		return regoTest(src, p, o)
	}
	return nil, fmt.Errorf("unknown export format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

var errNoKubernetes = errors.New("the profile has no Kubernetes resource use")

// KubernetesRules returns the least RBAC rules that allow every
// Kubernetes use of p, sorted, and whether any use was cluster-scoped (a
// resource without namespace, or a non-resource URL).
func KubernetesRules(p *Profile, o Options) (rules []access.KubernetesPermission, clusterScoped bool) {
	type rv struct{ group, resource, verb string }
	names := map[rv]map[string]bool{}
	unnamed := map[rv]bool{}
	nonResource := map[string]map[string]bool{} // path → verbs
	for _, u := range p.Uses {
		if u.Kind != access.KindKubernetes {
			continue
		}
		if u.Path != "" {
			clusterScoped = true
			if nonResource[u.Path] == nil {
				nonResource[u.Path] = map[string]bool{}
			}
			nonResource[u.Path][u.Verb] = true
			continue
		}
		if u.Namespace == "" {
			clusterScoped = true
		}
		res := u.Resource
		if u.Subresource != "" {
			res += "/" + u.Subresource
		}
		verbs := []string{u.Verb}
		if o.Wildcards && slices.Contains(readVerbs, u.Verb) {
			verbs = readVerbs
		}
		for _, v := range verbs {
			k := rv{u.APIGroup, res, v}
			if u.Name == "" || o.Wildcards || v != u.Verb {
				unnamed[k] = true
				continue
			}
			if names[k] == nil {
				names[k] = map[string]bool{}
			}
			names[k][u.Name] = true
		}
	}
	// One rule per group, resource and set of names, with its verbs; then
	// resources with the same group, verbs and names share a rule.
	type grn struct{ group, resource, names string }
	verbs := map[grn][]string{}
	for k := range union(names, unnamed) {
		ns := ""
		if !unnamed[k] && len(names[k]) <= o.MaxNames {
			ns = strings.Join(slices.Sorted(maps.Keys(names[k])), ",")
		}
		g := grn{k.group, k.resource, ns}
		verbs[g] = append(verbs[g], k.verb)
	}
	type gvn struct{ group, verbs, names string }
	resources := map[gvn][]string{}
	for g, vs := range verbs {
		slices.Sort(vs)
		k := gvn{g.group, strings.Join(vs, ","), g.names}
		resources[k] = append(resources[k], g.resource)
	}
	for k, rs := range resources {
		slices.Sort(rs)
		r := access.KubernetesPermission{Verbs: strings.Split(k.verbs, ","), APIGroups: []string{k.group}, Resources: rs}
		if k.names != "" {
			r.ResourceNames = strings.Split(k.names, ",")
		}
		rules = append(rules, r)
	}
	for _, path := range slices.Sorted(maps.Keys(nonResource)) {
		rules = append(rules, access.KubernetesPermission{Verbs: slices.Sorted(maps.Keys(nonResource[path])), NonResourceURLs: []string{path}})
	}
	slices.SortFunc(rules, compareRules)
	return rules, clusterScoped
}

var readVerbs = []string{"get", "list", "watch"}

func union[K comparable, A, B any](a map[K]A, b map[K]B) map[K]bool {
	out := make(map[K]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func compareRules(a, b access.KubernetesPermission) int {
	return cmp.Or(
		slices.Compare(a.NonResourceURLs, b.NonResourceURLs),
		slices.Compare(a.APIGroups, b.APIGroups),
		slices.Compare(a.Resources, b.Resources),
		slices.Compare(a.ResourceNames, b.ResourceNames),
		slices.Compare(a.Verbs, b.Verbs),
	)
}

// namespaces returns the namespaces of p's Kubernetes uses, sorted.
func namespaces(p *Profile) []string {
	seen := map[string]bool{}
	for _, u := range p.Uses {
		if u.Kind == access.KindKubernetes && u.Namespace != "" {
			seen[u.Namespace] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// AWSStatements returns the least IAM statements that allow every AWS use
// of p: one per set of resources, with its actions, sorted; and the
// regions used.
func AWSStatements(p *Profile) (stmts []access.AWSPermission, regions []string) {
	actions := map[string]map[string]bool{} // resources joined → actions
	rs := map[string]bool{}
	for _, u := range p.Uses {
		if u.Kind != access.KindAWS {
			continue
		}
		res := u.Resources
		if len(res) == 0 {
			res = []string{"*"}
		}
		for _, r := range res {
			if actions[r] == nil {
				actions[r] = map[string]bool{}
			}
			actions[r][u.Action] = true
		}
		if u.Region != "" {
			rs[u.Region] = true
		}
	}
	// Resources with the same actions share a statement.
	byActions := map[string][]string{}
	for r, as := range actions {
		k := strings.Join(slices.Sorted(maps.Keys(as)), ",")
		byActions[k] = append(byActions[k], r)
	}
	for as, res := range byActions {
		slices.Sort(res)
		stmts = append(stmts, access.AWSPermission{Actions: strings.Split(as, ","), Resources: res})
	}
	slices.SortFunc(stmts, func(a, b access.AWSPermission) int {
		return cmp.Or(slices.Compare(a.Resources, b.Resources), slices.Compare(a.Actions, b.Actions))
	})
	return stmts, slices.Sorted(maps.Keys(rs))
}

// kind returns the kind of p's uses: Kubernetes if any, else AWS, else "".
func kind(p *Profile) string {
	k := ""
	for _, u := range p.Uses {
		if u.Kind == access.KindKubernetes {
			return u.Kind
		}
		k = u.Kind
	}
	return k
}

func marshalYAML(header string, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	enc.Close()
	return b.Bytes(), nil
}

type policyDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Description string        `yaml:"description"`
		Target      string        `yaml:"target"`
		Subjects    subjectsDoc   `yaml:"subjects"`
		Namespaces  []string      `yaml:"namespaces,omitempty,flow"`
		ClusterWide bool          `yaml:"clusterWide,omitempty"`
		Permissions []ruleDoc     `yaml:"permissions"`
		Duration    durationDoc   `yaml:"duration"`
		Approval    approvalDoc   `yaml:"approval"`
		Credential  credentialDoc `yaml:"credential"`
	} `yaml:"spec"`
}

type subjectsDoc struct {
	Users  []string `yaml:"users,omitempty,flow"`
	Groups []string `yaml:"groups,omitempty,flow"`
}

type ruleDoc struct {
	Verbs           []string `yaml:"verbs,omitempty,flow"`
	APIGroups       []string `yaml:"apiGroups,omitempty,flow"`
	Resources       []string `yaml:"resources,omitempty,flow"`
	ResourceNames   []string `yaml:"resourceNames,omitempty,flow"`
	NonResourceURLs []string `yaml:"nonResourceURLs,omitempty,flow"`
	Actions         []string `yaml:"actions,omitempty,flow"`
	Regions         []string `yaml:"regions,omitempty,flow"`
}

type durationDoc struct {
	Default string `yaml:"default"`
	Max     string `yaml:"max"`
}

type approvalDoc struct {
	Required  int         `yaml:"required"`
	Approvers subjectsDoc `yaml:"approvers,omitempty"`
}

type credentialDoc struct {
	Provider string            `yaml:"provider"`
	Options  map[string]string `yaml:"options,omitempty"`
}

func accessPolicy(src Source, p *Profile, o Options) ([]byte, error) {
	var d policyDoc
	d.APIVersion, d.Kind, d.Metadata.Name = "jitproxy.dev/v1alpha1", "AccessPolicy", o.Name
	s := &d.Spec
	s.Description = fmt.Sprintf("Learned from grant %s under access policy %s: what it used, %d distinct actions.", src.Grant, src.Policy, len(p.Uses))
	s.Target = src.Target
	s.Subjects = subjectsDoc{Users: []string{src.User}}
	switch kind(p) {
	case access.KindKubernetes:
		rules, _ := KubernetesRules(p, o)
		for _, r := range rules {
			s.Permissions = append(s.Permissions, ruleDoc{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames, NonResourceURLs: r.NonResourceURLs})
		}
		if src.Namespace == "" {
			s.ClusterWide = true
		} else {
			s.Namespaces = []string{src.Namespace}
		}
	case access.KindAWS:
		stmts, regions := AWSStatements(p)
		for _, st := range stmts {
			s.Permissions = append(s.Permissions, ruleDoc{Actions: st.Actions, Resources: st.Resources, Regions: regions})
		}
	default:
		return nil, errors.New("the profile records no use")
	}
	d.Spec.Duration = durationDoc{Default: src.Duration.String(), Max: src.Duration.String()}
	s.Approval = approvalDoc{Required: src.ApprovalsRequired, Approvers: subjectsDoc{Users: src.ApproverUsers, Groups: src.ApproverGroups}}
	s.Credential = credentialDoc{Provider: src.Provider, Options: src.Options}
	if o.ServiceAccount != "" {
		s.Credential = credentialDoc{Provider: "tokenrequest", Options: map[string]string{"serviceAccount": o.ServiceAccount}}
	}
	return marshalYAML("# Generated by jitproxy profile export from learning grant "+src.Grant+".\n", &d)
}

type roleDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace,omitempty"`
	} `yaml:"metadata"`
	Rules []roleRule `yaml:"rules"`
}

// roleRule is an RBAC PolicyRule, its fields in kubectl's order.
type roleRule struct {
	APIGroups       []string `yaml:"apiGroups,omitempty,flow"`
	Resources       []string `yaml:"resources,omitempty,flow"`
	ResourceNames   []string `yaml:"resourceNames,omitempty,flow"`
	NonResourceURLs []string `yaml:"nonResourceURLs,omitempty,flow"`
	Verbs           []string `yaml:"verbs,flow"`
}

func role(p *Profile, o Options) ([]byte, error) {
	rules, cluster := KubernetesRules(p, o)
	if len(rules) == 0 {
		return nil, errNoKubernetes
	}
	nss := namespaces(p)
	var d roleDoc
	d.APIVersion, d.Kind, d.Metadata.Name = "rbac.authorization.k8s.io/v1", "Role", o.Name
	if cluster || len(nss) != 1 {
		d.Kind = "ClusterRole"
	} else {
		d.Metadata.Namespace = nss[0]
	}
	for _, r := range rules {
		d.Rules = append(d.Rules, roleRule{APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames, NonResourceURLs: r.NonResourceURLs, Verbs: r.Verbs})
	}
	return marshalYAML("# Generated by jitproxy profile export from learning grant "+p.Grant+".\n", &d)
}

func iamPolicy(p *Profile) ([]byte, error) {
	stmts, regions := AWSStatements(p)
	if len(stmts) == 0 {
		return nil, errors.New("the profile has no AWS use")
	}
	type statement struct {
		Effect    string         `json:"Effect"`
		Action    []string       `json:"Action"`
		Resource  []string       `json:"Resource"`
		Condition map[string]any `json:"Condition,omitempty"`
	}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{Version: "2012-10-17"}
	for _, st := range stmts {
		s := statement{Effect: "Allow", Action: st.Actions, Resource: st.Resources}
		if len(regions) > 0 {
			s.Condition = map[string]any{"StringEquals": map[string][]string{"aws:RequestedRegion": regions}}
		}
		doc.Statement = append(doc.Statement, s)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
