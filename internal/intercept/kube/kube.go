// Package kube is the Kubernetes protocol of jitproxy's pipeline: it
// classifies requests exactly as kube-apiserver does (with the apiserver's
// own RequestInfoFactory), decodes object bodies for admission policies,
// asks the apiserver (dry run) for the object a write will store, forwards
// only the headers the apiserver needs (an allow-list, so no credential an
// agent sends gets through), injects the minted bearer token, and answers
// errors as Status objects that kubectl prints.
package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

// Protocol implements intercept.Protocol for kube-apiserver. The zero value
// is not usable; call New.
type Protocol struct {
	infos    *request.RequestInfoFactory
	protobuf runtime.Decoder // built-in types only, as client-go sends them
}

// New returns the Kubernetes protocol.
func New() *Protocol {
	return &Protocol{
		infos: &request.RequestInfoFactory{
			APIPrefixes:          sets.NewString("api", "apis"),
			GrouplessAPIPrefixes: sets.NewString("api"),
		},
		protobuf: protobuf.NewSerializer(scheme.Scheme, scheme.Scheme),
	}
}

// Kind returns access.KindKubernetes.
func (*Protocol) Kind() string { return access.KindKubernetes }

// Classify returns the request's RequestInfo as an Action. Paths that are
// not in canonical form (dot segments, empty segments, encoded slashes) are
// refused, so that jitproxy and the apiserver cannot read one path two ways,
// and so is a query string that carries a credential.
// Classification never needs the body.
func (p *Protocol) Classify(r *http.Request, _ func() ([]byte, error)) (access.Action, error) {
	if err := checkRequest(r); err != nil {
		return access.Action{}, err
	}
	info, err := p.infos.NewRequestInfo(r)
	if err != nil {
		return access.Action{}, err
	}
	k := &access.KubernetesAction{Verb: info.Verb, ResourceRequest: info.IsResourceRequest}
	if info.IsResourceRequest {
		k.APIGroup, k.APIVersion = info.APIGroup, info.APIVersion
		k.Resource, k.Subresource = info.Resource, info.Subresource
		k.Namespace, k.Name = info.Namespace, info.Name
	}
	return access.Action{Method: r.Method, Path: info.Path, Kubernetes: k}, nil
}

// kubernetes returns the Kubernetes part of a, never nil.
func kubernetes(a access.Action) *access.KubernetesAction {
	if a.Kubernetes == nil {
		return &access.KubernetesAction{}
	}
	return a.Kubernetes
}

func checkRequest(r *http.Request) error {
	if k := credentialInQuery(r.URL.Query()); k != "" {
		return fmt.Errorf("credentials in the query string are refused (parameter %q): jitproxy supplies the credential", k)
	}
	return checkPath(r)
}

func checkPath(r *http.Request) error {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		return errors.New("the path must be absolute")
	}
	if strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
		return errors.New("encoded slashes are not allowed in the path")
	}
	trimmed := strings.TrimSuffix(p, "/")
	if p != "/" && path.Clean(p) != trimmed {
		return errors.New("the path must not contain empty, '.' or '..' segments")
	}
	return nil
}

// NeedsBody is true for create, update and patch: their bodies are objects
// (or patches) that admission policies check.
func (*Protocol) NeedsBody(action access.Action) bool {
	a := kubernetes(action)
	return a.ResourceRequest && (a.Verb == "create" || a.Verb == "update" || a.Verb == "patch")
}

// protobufContentType is what client-go's typed clients send for built-in
// types (kubectl create configmap, kubectl run).
const protobufContentType = "application/vnd.kubernetes.protobuf"

// DecodeBody decodes JSON bodies and JSON patches, server-side-apply YAML,
// and protobuf objects of the built-in types, all to the same JSON shape.
// Other encodings (CBOR) are refused: a policy cannot check what it cannot
// read.
func (p *Protocol) DecodeBody(a access.Action, contentType string, raw []byte) (any, error) {
	if !p.NeedsBody(a) || len(raw) == 0 {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return nil, fmt.Errorf("content type %q", contentType)
	}
	switch mt {
	case "", "application/json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json":
	case "application/apply-patch+yaml", "application/yaml":
		if raw, err = yaml.YAMLToJSON(raw); err != nil {
			return nil, fmt.Errorf("body is not valid YAML")
		}
	case protobufContentType:
		if raw, err = p.protobufToJSON(raw); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("content type %q cannot be inspected; send JSON", mt)
	}
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("body is not valid JSON")
	}
	return body, nil
}

// protobufToJSON decodes a protobuf object of a type client-go knows (only
// built-in types are ever sent as protobuf) and re-encodes it as JSON, with
// its apiVersion and kind.
func (p *Protocol) protobufToJSON(raw []byte) ([]byte, error) {
	obj, gvk, err := p.protobuf.Decode(raw, nil, nil)
	if err != nil {
		return nil, errors.New("protobuf body is not a Kubernetes object of a built-in type")
	}
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	return json.Marshal(obj)
}

// Describe names an action the way kubectl users think of it.
func (*Protocol) Describe(action access.Action) string {
	a := kubernetes(action)
	if !a.ResourceRequest {
		return fmt.Sprintf("%s %s", a.Verb, action.Path)
	}
	res := a.Resource
	if a.APIGroup != "" {
		res += "." + a.APIGroup
	}
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	s := a.Verb + " " + res
	if a.Name != "" {
		s += fmt.Sprintf(" %q", a.Name)
	}
	if a.Namespace != "" {
		return s + fmt.Sprintf(" in namespace %q", a.Namespace)
	}
	return s + " (cluster-wide)"
}

// Authorize sets the minted bearer token.
func (*Protocol) Authorize(out *http.Request, _ access.Action, c broker.Credential) error {
	if c.Token.IsZero() {
		return errors.New("the credential is not a bearer token")
	}
	out.Header.Set("Authorization", "Bearer "+c.Token.Reveal())
	return nil
}

// WriteError writes a metav1.Status, which kubectl prints as
// "Error from server (Reason): message".
func (*Protocol) WriteError(w http.ResponseWriter, _ *http.Request, status int, message string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  message,
		Reason:   reason(status),
		Code:     int32(status),
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(st)
}

func reason(status int) metav1.StatusReason {
	switch status {
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusBadRequest, http.StatusMisdirectedRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusUnsupportedMediaType:
		return metav1.StatusReasonUnsupportedMediaType
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	default:
		return metav1.StatusReasonInternalError
	}
}
