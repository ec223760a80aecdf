package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Self reviews. kubectl auth can-i asks the apiserver whether its caller may
// do something with a SelfSubjectAccessReview, and kubectl auth can-i
// --list what its caller may do in a namespace with a
// SelfSubjectRulesReview. Behind jitproxy the apiserver would answer for
// the credential jitproxy minted, not for the agent, and only once the
// agent held a grant to ask; so jitproxy answers them itself, from the
// caller's grants and the policies, and never forwards them.

const authorizationGroup = "authorization.k8s.io"

// IsSelfReview reports whether a creates a SelfSubjectAccessReview or a
// SelfSubjectRulesReview, of any version.
func (*Protocol) IsSelfReview(a access.Action) bool {
	k := kubernetes(a)
	return k.ResourceRequest && k.Verb == "create" && k.APIGroup == authorizationGroup &&
		(k.Resource == "selfsubjectaccessreviews" || k.Resource == "selfsubjectrulesreviews") &&
		k.Subresource == "" && k.Name == "" && k.Namespace == ""
}

// SelfReview answers the self review a, whose body is body (sent as
// contentType), by writing the review back with its status, as the
// apiserver does (201 Created):
//
//   - a SelfSubjectAccessReview's question becomes an Action, which can
//     decides as if the caller sent it now, without a body: the status is
//     allowed, or denied when a policy forbids it, with the Answer's reason
//     (kubectl auth can-i prints "no - REASON");
//   - a SelfSubjectRulesReview lists the Kubernetes permissions that rules
//     returns for its namespace. The list is marked incomplete: the
//     policies decide (a forbid rule may deny what a permission lists, and
//     discovery needs no grant), and can-i asks them.
//
// Only authorization.k8s.io/v1 is answered. An error means the review is
// malformed or of another version; its message is safe to show the agent,
// and nothing was written.
func (p *Protocol) SelfReview(w http.ResponseWriter, a access.Action, contentType string, body []byte, can func(access.Action) (access.Answer, error), rules func(namespace string) []access.KubernetesPermission) error {
	k := kubernetes(a)
	if k.APIVersion != "v1" {
		return fmt.Errorf("only %s/v1 self reviews are answered, not %s", authorizationGroup, k.APIVersion)
	}
	if k.Resource == "selfsubjectrulesreviews" {
		var review authorizationv1.SelfSubjectRulesReview
		if err := p.decodeReview(contentType, body, &review); err != nil {
			return err
		}
		review.TypeMeta = reviewType("SelfSubjectRulesReview")
		review.Status = rulesStatus(rules(review.Spec.Namespace))
		return writeReview(w, &review)
	}
	var review authorizationv1.SelfSubjectAccessReview
	if err := p.decodeReview(contentType, body, &review); err != nil {
		return err
	}
	question, err := reviewAction(review.Spec)
	if err != nil {
		return err
	}
	answer, err := can(question)
	if err != nil {
		return err
	}
	review.TypeMeta = reviewType("SelfSubjectAccessReview")
	review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: answer.Allowed, Denied: answer.Forbidden, Reason: answer.Reason}
	return writeReview(w, &review)
}

// decodeReview decodes a review sent as JSON (kubectl) or as protobuf
// (client-go's typed clients for built-in types) into into.
func (p *Protocol) decodeReview(contentType string, body []byte, into runtime.Object) error {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return fmt.Errorf("content type %q", contentType)
	}
	switch mt {
	case "", "application/json":
		if err := json.Unmarshal(body, into); err != nil {
			return errors.New("the review is not valid JSON")
		}
	case protobufContentType:
		// An object of another kind is decoded into a new object of its
		// own, not into into.
		if obj, _, err := p.protobuf.Decode(body, nil, into); err != nil || obj != into {
			return errors.New("the review is not a protobuf object of its kind")
		}
	default:
		return fmt.Errorf("content type %q cannot be read; send JSON", mt)
	}
	return nil
}

// reviewAction is the Action a SelfSubjectAccessReview asks about, as
// Classify would make it for the request that does it, with the method
// its verb would use. A resource question's Path is the request's path
// when the version is given, else empty; policies judge resource
// requests by their Kubernetes attributes, not their path.
func reviewAction(spec authorizationv1.SelfSubjectAccessReviewSpec) (access.Action, error) {
	ra, nra := spec.ResourceAttributes, spec.NonResourceAttributes
	switch {
	case (ra == nil) == (nra == nil):
		return access.Action{}, errors.New("a SelfSubjectAccessReview needs exactly one of resourceAttributes and nonResourceAttributes")
	case nra != nil:
		if nra.Verb == "" || !path.IsAbs(nra.Path) {
			return access.Action{}, errors.New("nonResourceAttributes needs a verb and an absolute path")
		}
		return access.Action{Method: verbMethod(nra.Verb), Path: nra.Path, Kubernetes: &access.KubernetesAction{Verb: nra.Verb}}, nil
	}
	if ra.Verb == "" || ra.Resource == "" {
		return access.Action{}, errors.New("resourceAttributes needs a verb and a resource")
	}
	k := &access.KubernetesAction{
		Verb: ra.Verb, ResourceRequest: true, APIGroup: ra.Group, APIVersion: ra.Version,
		Resource: ra.Resource, Subresource: ra.Subresource, Namespace: ra.Namespace, Name: ra.Name,
	}
	return access.Action{Method: verbMethod(ra.Verb), Path: resourcePath(k), Kubernetes: k}, nil
}

// verbMethod is the HTTP method of a request with the Kubernetes verb, ""
// for a verb no request has ("*", "use", "bind", "escalate").
func verbMethod(verb string) string {
	switch verb {
	case "get", "list", "watch":
		return http.MethodGet
	case "create":
		return http.MethodPost
	case "update":
		return http.MethodPut
	case "patch":
		return http.MethodPatch
	case "delete", "deletecollection":
		return http.MethodDelete
	}
	return ""
}

// resourcePath is the path of a request for k, or "" without a version
// or with a wildcard.
func resourcePath(k *access.KubernetesAction) string {
	if k.APIVersion == "" || k.APIVersion == "*" || k.APIGroup == "*" || k.Resource == "*" || k.Namespace == "*" {
		return ""
	}
	p := "/api/" + k.APIVersion
	if k.APIGroup != "" {
		p = "/apis/" + k.APIGroup + "/" + k.APIVersion
	}
	if k.Namespace != "" {
		p += "/namespaces/" + k.Namespace
	}
	p += "/" + k.Resource
	if k.Name != "" {
		p += "/" + k.Name
		if k.Subresource != "" {
			p += "/" + k.Subresource
		}
	}
	return p
}

// rulesStatus lists perms as RBAC rules, marked incomplete.
func rulesStatus(perms []access.KubernetesPermission) authorizationv1.SubjectRulesReviewStatus {
	st := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules:    []authorizationv1.ResourceRule{},
		NonResourceRules: []authorizationv1.NonResourceRule{},
		Incomplete:       true,
		EvaluationError:  "jitproxy lists the permissions of your active grants; its policies may still forbid some of what they list, and allow discovery without a grant: ask with kubectl auth can-i VERB RESOURCE for a decision",
	}
	for _, perm := range perms {
		if len(perm.Resources) > 0 {
			st.ResourceRules = append(st.ResourceRules, authorizationv1.ResourceRule{
				Verbs: perm.Verbs, APIGroups: perm.APIGroups, Resources: perm.Resources, ResourceNames: perm.ResourceNames,
			})
		}
		if len(perm.NonResourceURLs) > 0 {
			st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: perm.Verbs, NonResourceURLs: perm.NonResourceURLs})
		}
	}
	return st
}

// writeReview answers with review, its kind and version set, as the
// apiserver does: 201 Created.
func writeReview(w http.ResponseWriter, review any) error {
	b, err := json.Marshal(review)
	if err != nil {
		return fmt.Errorf("encode the review: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusCreated)
	w.Write(b)
	return nil
}

// reviewType is the TypeMeta of an authorization.k8s.io/v1 review of kind.
func reviewType(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{Kind: kind, APIVersion: authorizationGroup + "/v1"}
}
