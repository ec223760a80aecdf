package kube

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

func TestClassify(t *testing.T) {
	res := func(verb, group, version, resource, sub, ns, name string) access.Action {
		return access.Action{Kubernetes: &access.KubernetesAction{Verb: verb, ResourceRequest: true, APIGroup: group, APIVersion: version, Resource: resource, Subresource: sub, Namespace: ns, Name: name}}
	}
	nonres := func(verb string) access.Action {
		return access.Action{Kubernetes: &access.KubernetesAction{Verb: verb}}
	}
	tests := []struct {
		name   string
		method string
		target string
		want   access.Action
	}{
		{name: "list core namespaced", method: "GET", target: "/api/v1/namespaces/demo/pods", want: res("list", "", "v1", "pods", "", "demo", "")},
		{name: "get core namespaced", method: "GET", target: "/api/v1/namespaces/demo/pods/web", want: res("get", "", "v1", "pods", "", "demo", "web")},
		{name: "head is get", method: "HEAD", target: "/api/v1/namespaces/demo/pods/web", want: res("get", "", "v1", "pods", "", "demo", "web")},
		{name: "subresource", method: "GET", target: "/api/v1/namespaces/demo/pods/web/log", want: res("get", "", "v1", "pods", "log", "demo", "web")},
		{name: "exec", method: "POST", target: "/api/v1/namespaces/demo/pods/web/exec?command=sh", want: res("create", "", "v1", "pods", "exec", "demo", "web")},
		{name: "group", method: "GET", target: "/apis/apps/v1/namespaces/demo/deployments/web", want: res("get", "apps", "v1", "deployments", "", "demo", "web")},
		{name: "scale subresource", method: "PUT", target: "/apis/apps/v1/namespaces/demo/deployments/web/scale", want: res("update", "apps", "v1", "deployments", "scale", "demo", "web")},
		{name: "cluster-scoped list", method: "GET", target: "/api/v1/nodes", want: res("list", "", "v1", "nodes", "", "", "")},
		{name: "cluster-scoped get", method: "GET", target: "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", want: res("get", "rbac.authorization.k8s.io", "v1", "clusterroles", "", "", "admin")},
		{name: "all namespaces", method: "GET", target: "/api/v1/pods", want: res("list", "", "v1", "pods", "", "", "")},
		{name: "namespace object", method: "GET", target: "/api/v1/namespaces/demo", want: res("get", "", "v1", "namespaces", "", "demo", "demo")},
		{name: "namespace status", method: "PUT", target: "/api/v1/namespaces/demo/status", want: res("update", "", "v1", "namespaces", "status", "demo", "demo")},
		{name: "namespace finalize", method: "PUT", target: "/api/v1/namespaces/demo/finalize", want: res("update", "", "v1", "namespaces", "finalize", "demo", "demo")},
		{name: "list namespaces", method: "GET", target: "/api/v1/namespaces", want: res("list", "", "v1", "namespaces", "", "", "")},
		{name: "watch param", method: "GET", target: "/api/v1/namespaces/demo/pods?watch=true", want: res("watch", "", "v1", "pods", "", "demo", "")},
		{name: "watch param 1", method: "GET", target: "/api/v1/namespaces/demo/pods?watch=1", want: res("watch", "", "v1", "pods", "", "demo", "")},
		{name: "watch false", method: "GET", target: "/api/v1/namespaces/demo/pods?watch=false", want: res("list", "", "v1", "pods", "", "demo", "")},
		{name: "watch path", method: "GET", target: "/api/v1/watch/namespaces/demo/pods", want: res("watch", "", "v1", "pods", "", "demo", "")},
		{name: "watch path named", method: "GET", target: "/api/v1/watch/namespaces/demo/pods/web", want: res("watch", "", "v1", "pods", "", "demo", "web")},
		{name: "watch by field selector", method: "GET", target: "/api/v1/namespaces/demo/pods?watch=1&fieldSelector=metadata.name%3Dweb", want: res("watch", "", "v1", "pods", "", "demo", "web")},
		{name: "list by field selector", method: "GET", target: "/api/v1/namespaces/demo/pods?fieldSelector=metadata.name%3Dweb", want: res("list", "", "v1", "pods", "", "demo", "web")},
		{name: "create", method: "POST", target: "/api/v1/namespaces/demo/pods", want: res("create", "", "v1", "pods", "", "demo", "")},
		{name: "patch", method: "PATCH", target: "/api/v1/namespaces/demo/pods/web", want: res("patch", "", "v1", "pods", "", "demo", "web")},
		{name: "delete", method: "DELETE", target: "/api/v1/namespaces/demo/pods/web", want: res("delete", "", "v1", "pods", "", "demo", "web")},
		{name: "deletecollection", method: "DELETE", target: "/api/v1/namespaces/demo/pods?labelSelector=app%3Dweb", want: res("deletecollection", "", "v1", "pods", "", "demo", "")},
		{name: "proxy verb", method: "GET", target: "/api/v1/proxy/namespaces/demo/services/web/some/path", want: res("proxy", "", "v1", "services", "", "demo", "web")},
		{name: "unknown method", method: "OPTIONS", target: "/api/v1/namespaces/demo/pods", want: res("", "", "v1", "pods", "", "demo", "")},
		{name: "version", method: "GET", target: "/version", want: nonres("get")},
		{name: "healthz", method: "GET", target: "/healthz", want: nonres("get")},
		{name: "openapi", method: "GET", target: "/openapi/v3/apis/apps/v1", want: nonres("get")},
		{name: "api discovery", method: "GET", target: "/api", want: nonres("get")},
		{name: "group version discovery", method: "GET", target: "/apis/apps/v1", want: nonres("get")},
		{name: "core version discovery", method: "GET", target: "/api/v1", want: nonres("get")},
		{name: "post to non-resource", method: "POST", target: "/logs/x", want: nonres("post")},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://kubernetes.demo"+tt.target, nil)
			got, err := p.Classify(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Method = tt.method
			tt.want.Path = r.URL.Path
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Classify(%s %s) (-want +got):\n%s", tt.method, tt.target, diff)
			}
		})
	}
}

func TestClassifyRefusesAmbiguousPaths(t *testing.T) {
	for _, target := range []string{
		"/api/v1/namespaces/demo/../kube-system/pods",
		"/api/v1/namespaces/demo/./pods",
		"/api//v1/namespaces/demo/pods",
		"/api/v1/namespaces/demo%2Fpods/x",
		"/api/v1/watch",
	} {
		r := httptest.NewRequest("GET", "https://kubernetes.demo/", nil)
		r.URL, _ = url.Parse("https://kubernetes.demo" + target)
		if _, err := New().Classify(r, nil); err == nil {
			t.Errorf("Classify(%s) = nil error, want a refusal", target)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"/api/v1/namespaces/demo/pods?watch=1", "/apis/apps/v1/deployments", "/version", "/api/v1/watch/x", "/api/v1/namespaces/a/b/c/d/e", "/%2e%2e/api"} {
		f.Add("GET", s)
	}
	p := New()
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" {
			return
		}
		r := &http.Request{Method: method, URL: u, Header: http.Header{}}
		action, err := p.Classify(r, nil)
		if err != nil {
			return
		}
		a := action.Kubernetes
		if a.ResourceRequest && (a.APIVersion == "" || a.Resource == "") {
			t.Fatalf("resource request without version or resource: %+v", a)
		}
		if !a.ResourceRequest && (a.Namespace != "" || a.Resource != "" || a.Name != "") {
			t.Fatalf("non-resource request with resource fields: %+v", a)
		}
		for _, seg := range strings.Split(action.Path, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("accepted a dot segment: %q", action.Path)
			}
		}
	})
}

func TestOutboundHeader(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "credentials and identity headers are dropped",
			in: http.Header{
				"Authorization":               {"Bearer agent-token"},
				"Cookie":                      {"session=x"},
				"Impersonate-User":            {"admin"},
				"Impersonate-Group":           {"system:masters"},
				"Impersonate-Uid":             {"1"},
				"Impersonate-Extra-Scopes":    {"all"},
				"X-Remote-User":               {"admin"},
				"X-Remote-Group":              {"system:masters"},
				"X-Remote-Extra-Scopes":       {"all"},
				"X-Forwarded-User":            {"admin"},
				"X-Forwarded-Access-Token":    {"tok"},
				"X-Auth-Request-User":         {"admin"},
				"X-Auth-Request-Access-Token": {"tok"},
				"Proxy-Authorization":         {"Basic eA=="},
				"X-Something-New":             {"x"},
				"Accept":                      {"application/json"},
				"Content-Type":                {"application/json-patch+json"},
				"User-Agent":                  {"kubectl/v1.32"},
				"Kubectl-Command":             {"kubectl get"},
				"Traceparent":                 {"00-abc-def-01"},
			},
			want: http.Header{
				"Accept":          {"application/json"},
				"Content-Type":    {"application/json-patch+json"},
				"User-Agent":      {"kubectl/v1.32"},
				"Kubectl-Command": {"kubectl get"},
				"Traceparent":     {"00-abc-def-01"},
			},
		},
		{
			name: "websocket bearer subprotocol in any case is dropped",
			in: http.Header{
				"Connection":             {"Upgrade"},
				"Upgrade":                {"websocket"},
				"Sec-Websocket-Key":      {"k"},
				"Sec-Websocket-Version":  {"13"},
				"Sec-Websocket-Protocol": {"base64url.bearer.authorization.k8s.io.YWdlbnQ, v5.channel.k8s.io", "BASE64URL.Bearer.Authorization.K8S.IO.YWdlbnQ,channel.k8s.io", "x-custom"},
			},
			want: http.Header{
				"Connection":             {"Upgrade"},
				"Upgrade":                {"websocket"},
				"Sec-Websocket-Key":      {"k"},
				"Sec-Websocket-Version":  {"13"},
				"Sec-Websocket-Protocol": {"v5.channel.k8s.io, channel.k8s.io"},
			},
		},
		{
			name: "SPDY stream versions are filtered",
			in: http.Header{
				"Connection":                {"Upgrade"},
				"Upgrade":                   {"SPDY/3.1"},
				"X-Stream-Protocol-Version": {"v4.channel.k8s.io", "base64url.bearer.authorization.k8s.io.x", "portforward.k8s.io"},
			},
			want: http.Header{
				"Connection":                {"Upgrade"},
				"Upgrade":                   {"SPDY/3.1"},
				"X-Stream-Protocol-Version": {"v4.channel.k8s.io", "portforward.k8s.io"},
			},
		},
		{
			name: "only the bearer subprotocol: the header goes",
			in:   http.Header{"Sec-Websocket-Protocol": {"base64url.bearer.authorization.k8s.io.YWdlbnQ"}},
			want: http.Header{},
		},
		{
			name: "upgrades other than websocket and SPDY are dropped",
			in:   http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}, "Accept": {"*/*"}},
			want: http.Header{"Accept": {"*/*"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, New().OutboundHeader(tt.in)); diff != "" {
				t.Errorf("OutboundHeader (-want +got):\n%s", diff)
			}
		})
	}
	out := httptest.NewRequest("GET", "https://x/", nil)
	if err := New().Authorize(out, access.Action{}, broker.Credential{Token: secret.Value("minted")}); err != nil {
		t.Fatal(err)
	}
	if got := out.Header.Get("Authorization"); got != "Bearer minted" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestClassifyRefusesCredentialsInTheQuery(t *testing.T) {
	for _, q := range []string{"access_token=x", "Access_Token=x", "token=x", "watch=1&id_token=x", "X-Amz-Signature=x", "api_key=x"} {
		r := httptest.NewRequest("GET", "https://kubernetes.demo/api/v1/namespaces/demo/pods?"+q, nil)
		_, err := New().Classify(r, nil)
		if err == nil || !strings.Contains(err.Error(), "credentials in the query string are refused") {
			t.Errorf("Classify(?%s) = %v, want a refusal", q, err)
		}
	}
}

// protobufPod encodes a privileged pod the way kubectl's typed clients do.
func protobufPod(t testing.TB) string {
	t.Helper()
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "priv", Namespace: "demo"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "priv", Image: "pause", SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
		}}},
	}
	var b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(pod, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }

func TestDecodeBody(t *testing.T) {
	create := access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "create", Resource: "pods"}}
	tests := []struct {
		name    string
		action  access.Action
		ctype   string
		raw     string
		want    any
		wantErr string
	}{
		{name: "json", action: create, ctype: "application/json", raw: `{"kind":"Pod"}`, want: map[string]any{"kind": "Pod"}},
		{name: "json with charset", action: create, ctype: "application/json; charset=utf-8", raw: `{"a":1}`, want: map[string]any{"a": 1.0}},
		{name: "apply yaml", action: create, ctype: "application/apply-patch+yaml", raw: "kind: Pod\nspec: {hostNetwork: true}\n", want: map[string]any{"kind": "Pod", "spec": map[string]any{"hostNetwork": true}}},
		{name: "json patch", action: create, ctype: "application/json-patch+json", raw: `[{"op":"add"}]`, want: []any{map[string]any{"op": "add"}}},
		{name: "get has no body", action: access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "get"}}, raw: `{"x":1}`, want: nil},
		{name: "empty", action: create, ctype: "application/json", raw: "", want: nil},
		{name: "protobuf pod", action: create, ctype: "application/vnd.kubernetes.protobuf", raw: protobufPod(t), want: map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "priv", "namespace": "demo"},
			"spec": map[string]any{"containers": []any{map[string]any{
				"name": "priv", "image": "pause", "resources": map[string]any{},
				"securityContext": map[string]any{"privileged": true},
			}}},
			"status": map[string]any{},
		}},
		{name: "protobuf garbage", action: create, ctype: "application/vnd.kubernetes.protobuf", raw: "k8s\x00", wantErr: "not a Kubernetes object"},
		{name: "cbor refused", action: create, ctype: "application/cbor", raw: "\xa0", wantErr: "send JSON"},
		{name: "bad json", action: create, ctype: "application/json", raw: "{", wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New().DecodeBody(tt.action, tt.ctype, []byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeBody() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeBody() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteErrorIsAStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	New().WriteError(rec, nil, http.StatusForbidden, "jitproxy denied list pods")
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	want := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   "Failure", Message: "jitproxy denied list pods", Reason: metav1.StatusReasonForbidden, Code: 403,
	}
	if diff := cmp.Diff(want, st); diff != "" || rec.Code != 403 {
		t.Errorf("status %d, body (-want +got):\n%s", rec.Code, diff)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		a    access.Action
		want string
	}{
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "list", Resource: "pods", Namespace: "demo"}}, `list pods in namespace "demo"`},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "get", Resource: "deployments", APIGroup: "apps", Subresource: "scale", Name: "web", Namespace: "demo"}}, `get deployments.apps/scale "web" in namespace "demo"`},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "list", Resource: "nodes"}}, `list nodes (cluster-wide)`},
		{access.Action{Path: "/version", Kubernetes: &access.KubernetesAction{Verb: "get"}}, `get /version`},
	}
	for _, tt := range tests {
		if got := New().Describe(tt.a); got != tt.want {
			t.Errorf("Describe() = %q, want %q", got, tt.want)
		}
	}
}

// FuzzDecodeBody feeds DecodeBody what an untrusted agent may send: any
// content type, any bytes. It must never panic, and a body it accepts is
// plain JSON data that policies can read.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []struct{ ctype, raw string }{
		{"application/json", `{"kind":"Pod","spec":{"hostPID":true}}`},
		{"application/json-patch+json", `[{"op":"add","path":"/spec/hostPID","value":true}]`},
		{"application/merge-patch+json", `{"spec":null}`},
		{"application/strategic-merge-patch+json", `{"spec":{"$patch":"replace"}}`},
		{"application/apply-patch+yaml", "kind: Pod\nspec: {hostNetwork: true}\n"},
		{"application/yaml", "a: &x [*x]\n"},
		{"application/vnd.kubernetes.protobuf", "k8s\x00\n\x02v1\x12\x03Pod"},
		{"application/cbor", "\xa0"},
		{"text/plain; charset=\"", "x"},
	} {
		f.Add(seed.ctype, []byte(seed.raw))
	}
	f.Add("application/vnd.kubernetes.protobuf", []byte(protobufPod(f)))
	p := New()
	create := access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "create", Resource: "pods"}}
	f.Fuzz(func(t *testing.T, ctype string, raw []byte) {
		body, err := p.DecodeBody(create, ctype, raw)
		if err != nil || body == nil {
			return
		}
		if _, err := json.Marshal(body); err != nil {
			t.Fatalf("accepted a body policies cannot read: %v", err)
		}
	})
}
