package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// fakeUpstream answers the requests Admit sends: GETs with the stored
// object, dry runs with the object they would store, and records both.
type fakeUpstream struct {
	mu       sync.Mutex
	stored   map[string]any // nil: not found
	storedRV []string       // resourceVersion per GET, in turn; last repeats
	dryRun   func(r *http.Request, body []byte) (int, any)
	seen     []string // "METHOD path?query"
}

func (f *fakeUpstream) send(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	f.seen = append(f.seen, r.Method+" "+r.URL.String())
	if r.Header.Get("Accept") != "application/json" {
		return nil, fmt.Errorf("Accept %q", r.Header.Get("Accept"))
	}
	status, obj := http.StatusNotFound, any(map[string]any{"kind": "Status", "code": 404})
	switch {
	case r.Method == http.MethodGet && f.stored != nil:
		o := clone(f.stored)
		rv := f.storedRV[0]
		if len(f.storedRV) > 1 {
			f.storedRV = f.storedRV[1:]
		}
		o["metadata"].(map[string]any)["resourceVersion"] = rv
		status, obj = http.StatusOK, o
	case r.Method != http.MethodGet:
		if r.URL.Query().Get("dryRun") != "All" {
			return nil, fmt.Errorf("a write without dryRun=All reached the upstream: %s", r.URL)
		}
		status, obj = f.dryRun(r, body)
	}
	b, _ := json.Marshal(obj)
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func deployment(rv string, privileged bool) map[string]any {
	md := map[string]any{"name": "web", "namespace": "demo"}
	if rv != "" {
		md["resourceVersion"] = rv
	}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md,
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "c", "securityContext": map[string]any{"privileged": privileged}},
		}}}},
	}
}

func TestAdmitMakesTheWriteConditional(t *testing.T) {
	const path = "/apis/apps/v1/namespaces/demo/deployments/web"
	patch := access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "patch", APIGroup: "apps", Resource: "deployments", Namespace: "demo", Name: "web"}}
	update, create := patch, patch
	uk, ck := *patch.Kubernetes, *patch.Kubernetes
	update.Kubernetes, create.Kubernetes = &uk, &ck
	uk.Verb, ck.Verb, ck.Name = "update", "create", ""
	existing := func(*http.Request, []byte) (int, any) { return http.StatusOK, deployment("42", true) }
	created := func(*http.Request, []byte) (int, any) { return http.StatusCreated, deployment("", false) }
	tests := []struct {
		name     string
		method   string
		path     string
		ctype    string
		body     string
		action   access.Action
		dryRun   func(*http.Request, []byte) (int, any)
		wantBody string
		wantType string
	}{
		{
			name: "json patch gets an add of the resourceVersion, the client's operations untouched", method: "PATCH", path: path,
			ctype: "application/json-patch+json", body: `[{"op":"add","path":"/spec/template/spec/hostPID","value":true}]`, action: patch, dryRun: existing,
			wantBody: `[{"op":"add","path":"/spec/template/spec/hostPID","value":true},{"op":"add","path":"/metadata/resourceVersion","value":"42"}]`,
			wantType: "application/json-patch+json",
		},
		{
			name: "merge patch", method: "PATCH", path: path, ctype: "application/merge-patch+json",
			body: `{"spec":{"replicas":3}}`, action: patch, dryRun: existing,
			wantBody: `{"metadata":{"resourceVersion":"42"},"spec":{"replicas":3}}`, wantType: "application/merge-patch+json",
		},
		{
			name: "strategic merge patch overrides a resourceVersion the client set", method: "PATCH", path: path, ctype: "application/strategic-merge-patch+json",
			body: `{"metadata":{"resourceVersion":"42","labels":{"a":"b"}}}`, action: patch, dryRun: existing,
			wantBody: `{"metadata":{"labels":{"a":"b"},"resourceVersion":"42"}}`, wantType: "application/strategic-merge-patch+json",
		},
		{
			name: "apply of an existing object, YAML becomes JSON", method: "PATCH", path: path + "?fieldManager=kubectl", ctype: "application/apply-patch+yaml",
			body: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n", action: patch, dryRun: existing,
			wantBody: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","resourceVersion":"42"},"spec":{"replicas":2}}`, wantType: "application/apply-patch+yaml",
		},
		{
			name: "apply that creates carries a resourceVersion no object has", method: "PATCH", path: path + "?fieldManager=kubectl", ctype: "application/apply-patch+yaml",
			body: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`, action: patch, dryRun: created,
			wantBody: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","resourceVersion":"18446744073709551615"}}`, wantType: "application/apply-patch+yaml",
		},
		{
			name: "update without a resourceVersion gets the one judged, numbers kept exact", method: "PUT", path: path, ctype: "application/json",
			body: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"big":12345678901234567890}}`, action: update, dryRun: existing,
			wantBody: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","resourceVersion":"42"},"spec":{"big":12345678901234567890}}`, wantType: "application/json",
		},
		{
			name: "create is sent as it came", method: "POST", path: "/apis/apps/v1/namespaces/demo/deployments", ctype: "application/yaml",
			body: "kind: Deployment\n", action: create, dryRun: created,
			wantBody: "kind: Deployment\n", wantType: "application/yaml",
		},
		{
			name: "ephemeral containers patch the pod", method: "PATCH", path: "/api/v1/namespaces/demo/pods/web/ephemeralcontainers", ctype: "application/strategic-merge-patch+json",
			body:     `{"spec":{"ephemeralContainers":[{"name":"debug"}]}}`,
			action:   access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers", Namespace: "demo", Name: "web"}},
			dryRun:   existing,
			wantBody: `{"metadata":{"resourceVersion":"42"},"spec":{"ephemeralContainers":[{"name":"debug"}]}}`, wantType: "application/strategic-merge-patch+json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeUpstream{dryRun: func(r *http.Request, b []byte) (int, any) {
				if got := r.Header.Get("Content-Type"); got != tt.ctype {
					t.Errorf("dry run Content-Type %q, want %q", got, tt.ctype)
				}
				if string(b) != tt.body {
					t.Errorf("dry run body %q, want the client's %q", b, tt.body)
				}
				return tt.dryRun(r, b)
			}}
			r := httptest.NewRequest(tt.method, "https://kubernetes.demo"+tt.path, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ctype)
			w, answer, err := New().Admit(context.Background(), up.send, r, []byte(tt.body), tt.action, false)
			if err != nil || answer != nil {
				t.Fatalf("Admit() = answer %v, err %v", answer, err)
			}
			if w.Object == nil || w.OldObject != nil {
				t.Errorf("Write = %+v, want the dry run's object and no old object", w)
			}
			got, _ := io.ReadAll(r.Body)
			if string(got) != tt.wantBody || r.Header.Get("Content-Type") != tt.wantType || r.ContentLength != int64(len(got)) {
				t.Errorf("forwarded %q (%s, length %d), want %q (%s)", got, r.Header.Get("Content-Type"), r.ContentLength, tt.wantBody, tt.wantType)
			}
			if len(up.seen) != 1 || !strings.Contains(up.seen[0], "dryRun=All") {
				t.Errorf("upstream saw %v, want one dry run", up.seen)
			}
		})
	}
}

func TestAdmitAnswers(t *testing.T) {
	const path = "/apis/apps/v1/namespaces/demo/deployments/web"
	patch := access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "patch", APIGroup: "apps", Resource: "deployments", Namespace: "demo", Name: "web"}}
	tests := []struct {
		name       string
		query      string
		body       string
		stored     map[string]any
		storedRV   []string
		withOld    bool
		dryRun     func(r *http.Request, b []byte) (int, any)
		wantStatus int // of the answer; 0: none
		wantObject bool
		wantOld    bool
		wantErr    string
		wantSeen   int
	}{
		{
			name: "a failing dry run is the answer", body: `{}`,
			dryRun:     func(*http.Request, []byte) (int, any) { return 422, map[string]any{"kind": "Status", "code": 422} },
			wantStatus: 422, wantSeen: 1,
		},
		{
			name: "a client's dry run is answered by ours", query: "?dryRun=All", body: `{}`,
			dryRun:     func(*http.Request, []byte) (int, any) { return 200, deployment("7", false) },
			wantStatus: 200, wantObject: true, wantSeen: 1,
		},
		{
			name: "the old object when policies read it", body: `{}`, stored: deployment("", false), storedRV: []string{"42"}, withOld: true,
			dryRun:     func(*http.Request, []byte) (int, any) { return 200, deployment("42", true) },
			wantObject: true, wantOld: true, wantSeen: 2,
		},
		{
			name: "an object that changed between the read and the dry run is read again", body: `{}`, stored: deployment("", false), storedRV: []string{"41", "42"}, withOld: true,
			dryRun:     func(*http.Request, []byte) (int, any) { return 200, deployment("42", true) },
			wantObject: true, wantOld: true, wantSeen: 4,
		},
		{
			name: "an object that keeps changing is a conflict", body: `{}`, stored: deployment("", false), storedRV: []string{"41"}, withOld: true,
			dryRun:     func(*http.Request, []byte) (int, any) { return 200, deployment("42", true) },
			wantStatus: 409, wantSeen: 6,
		},
		{
			name: "a body that repeats a key is refused", body: `{"spec":{"a":1},"spec":{"a":2}}`,
			dryRun:  func(*http.Request, []byte) (int, any) { return 200, deployment("42", false) },
			wantErr: `repeats the key "spec"`, wantSeen: 1,
		},
		{
			name: "an answer that is not an object is refused", body: `{}`,
			dryRun:  func(*http.Request, []byte) (int, any) { return 200, []any{1} },
			wantErr: "not a JSON object", wantSeen: 1,
		},
		{
			name: "an answer without a resourceVersion cannot make a change conditional", body: `{}`,
			dryRun:  func(*http.Request, []byte) (int, any) { return 200, deployment("", false) },
			wantErr: "no resourceVersion", wantSeen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeUpstream{stored: tt.stored, storedRV: tt.storedRV, dryRun: tt.dryRun}
			r := httptest.NewRequest("PATCH", "https://kubernetes.demo"+path+tt.query, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/merge-patch+json")
			w, answer, err := New().Admit(context.Background(), up.send, r, []byte(tt.body), patch, tt.withOld)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Admit() error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			status := 0
			if answer != nil {
				status = answer.StatusCode
				b, _ := io.ReadAll(answer.Body)
				if !json.Valid(b) {
					t.Errorf("answer body %q is not JSON", b)
				}
			}
			got := struct {
				Status, Seen int
				Object, Old  bool
			}{status, len(up.seen), w.Object != nil, w.OldObject != nil}
			want := struct {
				Status, Seen int
				Object, Old  bool
			}{tt.wantStatus, tt.wantSeen, tt.wantObject, tt.wantOld}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Admit() (-want +got):\n%s\nupstream saw %v", diff, up.seen)
			}
		})
	}
}

func TestNeedsObject(t *testing.T) {
	tests := []struct {
		a    access.Action
		want bool
	}{
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "create", Resource: "pods"}}, true},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "update", Resource: "deployments"}}, true},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "patch", Resource: "pods", Subresource: "ephemeralcontainers"}}, true},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "patch", Resource: "deployments", Subresource: "scale"}}, false},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "create", Resource: "pods", Subresource: "exec"}}, false},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "delete", Resource: "pods"}}, false},
		{access.Action{Kubernetes: &access.KubernetesAction{ResourceRequest: true, Verb: "get", Resource: "pods"}}, false},
		{access.Action{Path: "/logs", Kubernetes: &access.KubernetesAction{Verb: "post"}}, false},
	}
	for _, tt := range tests {
		if got := New().NeedsObject(tt.a); got != tt.want {
			t.Errorf("NeedsObject(%+v) = %v, want %v", tt.a, got, tt.want)
		}
	}
}

// FuzzConditional feeds the rewrite that makes a write conditional with
// what an untrusted agent may send. It must never panic; a body it accepts
// is JSON that carries the resourceVersion, and a JSON patch keeps the
// client's operations byte for byte.
func FuzzConditional(f *testing.F) {
	for _, seed := range []struct{ method, ctype, body string }{
		{"PATCH", "application/json-patch+json", `[{"op":"add","path":"/spec/hostPID","value":true}]`},
		{"PATCH", "application/merge-patch+json", `{"metadata":{"resourceVersion":"1"},"spec":{}}`},
		{"PATCH", "application/strategic-merge-patch+json", `{"metadata":null}`},
		{"PATCH", "application/apply-patch+yaml", "metadata:\n  name: x\n"},
		{"PUT", "application/json", `{"a":1,"a":2}`},
		{"PUT", "application/yaml", "metadata: 3\n"},
		{"PUT", "application/vnd.kubernetes.protobuf", "k8s\x00"},
	} {
		f.Add(seed.method, seed.ctype, []byte(seed.body))
	}
	p := New()
	f.Fuzz(func(t *testing.T, method, ctype string, body []byte) {
		r, err := http.NewRequest(method, "https://kubernetes.demo/api/v1/namespaces/demo/pods/web", bytes.NewReader(body))
		if err != nil {
			return
		}
		r.Header.Set("Content-Type", ctype)
		if err := p.conditional(r, body, "42"); err != nil {
			return
		}
		out, _ := io.ReadAll(r.Body)
		if ctype == "application/json-patch+json" && method == "PATCH" {
			var ops []json.RawMessage
			if err := json.Unmarshal(out, &ops); err != nil || len(ops) == 0 {
				t.Fatalf("rewritten JSON patch %q is not a patch: %v", out, err)
			}
			if !bytes.Contains(ops[len(ops)-1], []byte(`"/metadata/resourceVersion"`)) {
				t.Fatalf("rewritten JSON patch %q does not end with the resourceVersion", out)
			}
			return
		}
		obj, err := decodeObject(out)
		if err != nil {
			t.Fatalf("rewritten body %q is not a JSON object: %v", out, err)
		}
		if got := resourceVersion(obj); got != "42" {
			t.Fatalf("rewritten body %q carries resourceVersion %q", out, got)
		}
	})
}
