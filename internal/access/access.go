// Package access holds the value types shared by the request pipeline, the
// policy engine, the grant store and the audit stream: who makes a request
// (Caller), what the request does (Action) and what a grant allows
// (Permission). It imports nothing of the project's, so every package may
// import it.
package access

// Target kinds. An Action's Kind is one of these.
const (
	KindKubernetes = "kubernetes"
	KindAWS        = "aws"
)

// Caller identifies who makes a proxied request: an agent session, acting on
// behalf of a user. A Caller is built only after the session credential was
// verified, so its fields can be trusted.
type Caller struct {
	// Session is the ID of the agent session.
	Session string `json:"session"`
	// Agent names the agent that runs in the session (for example "claude-code").
	Agent string `json:"agent"`
	// User is the human the agent acts for; grants are held by users.
	User string `json:"user"`
	// Groups are the user's groups, as asserted by the runner that created the session.
	Groups []string `json:"groups,omitempty"`
	// AuthMethod says how the caller authenticated to the proxy ("proxy-basic").
	AuthMethod string `json:"auth_method,omitempty"`
	// SourceAddr is the network address the request came from.
	SourceAddr string `json:"source_address,omitempty"`
}

// Action is what one request does, as classified by its target's
// protocol: fields common to every kind of target, and the part of its own
// kind (exactly one of Kubernetes and AWS is set once classified). Policies
// see it as input.action, with the JSON names below.
type Action struct {
	// Kind is the target kind, for example KindKubernetes.
	Kind string `json:"kind"`
	// Target is the configured name of the target (a cluster, an account).
	Target string `json:"target"`
	// Method is the HTTP method of the request.
	Method string `json:"method"`
	// Path is the URL path of the request, without the query.
	Path string `json:"path"`
	// Kubernetes is set for requests to Kubernetes targets.
	Kubernetes *KubernetesAction `json:"kubernetes,omitempty"`
	// AWS is set for requests to AWS targets.
	AWS *AWSAction `json:"aws,omitempty"`
}

// Namespace is the Kubernetes namespace of a, or "" when it has none.
func (a Action) Namespace() string {
	if a.Kubernetes == nil {
		return ""
	}
	return a.Kubernetes.Namespace
}

// KubernetesAction is what one Kubernetes API request does. Its fields
// follow kube-apiserver's RequestInfo; fields that do not apply are empty
// (and present in policy input and audit events, as "").
type KubernetesAction struct {
	// Verb is the Kubernetes verb (get, list, watch, create, update, patch,
	// delete, deletecollection) or, for non-resource requests, the lower-case
	// HTTP method.
	Verb string `json:"verb"`
	// ResourceRequest is false for non-resource URLs such as /version.
	ResourceRequest bool `json:"resource_request"`
	// APIGroup is the API group; "" is the core group.
	APIGroup string `json:"api_group"`
	// APIVersion is the version of the API group.
	APIVersion string `json:"api_version"`
	// Resource is the resource type, for example "pods".
	Resource string `json:"resource"`
	// Subresource is for example "log", "exec" or "status".
	Subresource string `json:"subresource"`
	// Namespace is empty for cluster-scoped requests.
	Namespace string `json:"namespace"`
	// Name is the object name; empty for list, watch of a collection and create.
	Name string `json:"name"`
}

// Permission is one rule of what a grant allows: exactly one of its parts
// is set, of the kind of the grant's target. Access policies write the
// part's fields directly in the rule (verbs, apiGroups, ... for Kubernetes;
// actions, resources, regions for AWS), and so does the JSON encoding; the
// kind is told by the fields present. Policies see it as
// {"kubernetes": {...}} or {"aws": {...}}.
type Permission struct {
	Kubernetes *KubernetesPermission `json:"kubernetes,omitempty"`
	AWS        *AWSPermission        `json:"aws,omitempty"`
}

// KubernetesPermission is a permission on a Kubernetes target, in the
// shape of an RBAC PolicyRule. It matches a resource request when its
// Verbs, APIGroups and Resources (and ResourceNames, if any) match, and a
// non-resource request when its Verbs and NonResourceURLs match. "*"
// matches anything in the list it is in; a NonResourceURLs entry ending in
// "*" matches by prefix.
type KubernetesPermission struct {
	Verbs           []string `json:"verbs" yaml:"verbs"`
	APIGroups       []string `json:"apiGroups,omitempty" yaml:"apiGroups"`
	Resources       []string `json:"resources,omitempty" yaml:"resources"`
	ResourceNames   []string `json:"resourceNames,omitempty" yaml:"resourceNames"`
	NonResourceURLs []string `json:"nonResourceURLs,omitempty" yaml:"nonResourceURLs"`
}

// Write is what a request that creates or changes a stored object will
// store, as the target itself computed it before the request was forwarded
// (for Kubernetes, by a dry run). Policies see it as input.object and
// input.old_object. The zero Write means the request stores nothing that
// policies judge.
type Write struct {
	// Object is the object as it will be stored, decoded from JSON (maps,
	// slices, strings, json.Number, bools, nil).
	Object any
	// OldObject is the object as stored before the request, when the
	// request changes an existing object and it was asked for; else nil.
	OldObject any
}

// Answer is jitproxy's answer to a caller that asks whether it may take an
// action (kubectl auth can-i), decided as if it sent the request now. The
// zero Answer is "no", with no reason given.
type Answer struct {
	// Allowed: the request would be allowed now.
	Allowed bool
	// Forbidden: a policy forbids it, whatever grant the caller held.
	Forbidden bool
	// Reason says why, for people: the grants that allow it, the rules
	// that forbid it, or the access policies a grant could be requested
	// under.
	Reason string
}

// AWSAction is what one AWS API request does, in IAM's terms.
type AWSAction struct {
	// Service is the service's IAM prefix and SigV4 signing name, for
	// example "s3", "sts", "dynamodb".
	Service string `json:"service"`
	// Action is the IAM action name, for example "s3:GetObject"; the part
	// after the colon is the API operation (or, for S3, the IAM action the
	// operation needs).
	Action string `json:"action"`
	// Region is the AWS region the request is signed for, for example
	// "us-east-1"; "" only for services without regions.
	Region string `json:"region"`
	// Account is the AWS account the request's resources belong to, when
	// the request names it (an SQS queue URL, an ARN); "" when unknown.
	Account string `json:"account"`
	// Resources are the ARNs of the resources the request names (a bucket,
	// an object, a table, a queue); empty when it names none or they
	// cannot be known from the request.
	Resources []string `json:"resources"`
}

// AWSPermission is one rule of what a grant allows on an AWS target, in
// the shape of an IAM policy statement with effect Allow. It matches an
// AWSAction when one of Actions matches its Action, every one of its
// Resources matches one of Resources (an action that names no resource
// needs "*"), and its Region is in Regions (any region when Regions is
// empty). Actions and Resources match as IAM does: "*" matches any run of
// characters and "?" any one; action names ignore case.
type AWSPermission struct {
	Actions   []string `json:"actions" yaml:"actions"`
	Resources []string `json:"resources" yaml:"resources"`
	Regions   []string `json:"regions,omitempty" yaml:"regions"`
}
