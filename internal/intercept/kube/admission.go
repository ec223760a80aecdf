package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/strictjson"
)

// Admission: policies judge the object a write will store, computed by the
// apiserver itself rather than re-implemented here. For create, update and
// patch (every patch type) jitproxy first sends the request with
// dryRun=All, with the grant's credential, and gives policies the object
// the apiserver answers (input.object) and, when they use it, the object as
// stored before (input.old_object). The real request is then made
// conditional on what the dry run saw, so that the object judged is the
// object stored:
//
//   - a change of an existing object carries the resourceVersion the dry
//     run saw (a JSON patch gets an "add" of /metadata/resourceVersion, other
//     bodies the field itself), so the apiserver refuses it with a conflict
//     if the object changed in between;
//   - an update or apply that the dry run showed would create the object
//     carries impossibleResourceVersion, so it creates the object or, if one
//     appeared in between, fails with a conflict instead of merging into it;
//   - a create (POST) needs nothing: it fails if the object exists.
//
// A conflict is the client's usual retry. Where the resulting object cannot
// be known (the dry run fails, or its answer cannot be read) the request is
// not forwarded.

// objectSubresources are the subresources whose writes store the parent
// object and are judged like a write of it: ephemeralcontainers adds
// containers to a Pod. The other subresources write what policies do not
// judge as objects (status, scale, binding, eviction, token).
var objectSubresources = map[string]bool{"": true, "ephemeralcontainers": true}

// NeedsObject reports whether policies must see the object a stores before
// it is forwarded: create, update and patch of a resource, or of its
// ephemeralcontainers.
func (*Protocol) NeedsObject(action access.Action) bool {
	a := kubernetes(action)
	return a.ResourceRequest && objectSubresources[a.Subresource] &&
		(a.Verb == "create" || a.Verb == "update" || a.Verb == "patch")
}

// maxObjectBytes bounds an object read back from the apiserver; etcd stores
// nothing near it.
const maxObjectBytes = 16 << 20

// impossibleResourceVersion is a resourceVersion no stored object has
// (resourceVersions are etcd revisions, far below 2^64-1). The apiserver
// ignores the resourceVersion of an object it creates through update or
// apply and compares it with that of an existing one, so a write carrying
// it creates its object or fails with a conflict.
const impossibleResourceVersion = "18446744073709551615"

// admitAttempts bounds how often the stored object is read again when it
// changed between the read and the dry run.
const admitAttempts = 3

// Admit runs the write r (whose body, already read, is body) as a dry run
// through send, which adds the grant's credential, and returns the object
// it would store and, with withOld, the object stored before it. On
// success it also makes r conditional on what the dry run saw: r's body
// and Content-Type may be replaced.
//
// A non-nil response is the apiserver's own answer to give the agent
// instead of forwarding r: the dry run failed (the write would fail the
// same way; the Write is then zero), r was itself a dry run (the answer is
// all it asked for, once policies allow the Write), or the object kept
// changing while it was judged (a conflict). An error means the object
// cannot be known; its message is safe to show the agent.
func (p *Protocol) Admit(ctx context.Context, send func(*http.Request) (*http.Response, error), r *http.Request, body []byte, a access.Action, withOld bool) (access.Write, *http.Response, error) {
	withOld = withOld && (kubernetes(a).Verb == "update" || kubernetes(a).Verb == "patch")
	for range admitAttempts {
		var old map[string]any
		if withOld {
			var err error
			if old, err = p.stored(ctx, send, r, a); err != nil {
				return access.Write{}, nil, err
			}
		}
		resp, obj, err := p.dryRun(ctx, send, r, body)
		if err != nil {
			return access.Write{}, nil, err
		}
		if resp.StatusCode >= 300 {
			return access.Write{}, resp, nil
		}
		created := resp.StatusCode == http.StatusCreated
		rv := resourceVersion(obj)
		if withOld && (created != (old == nil) || !created && resourceVersion(old) != rv) {
			continue // the object changed between the read and the dry run
		}
		w := access.Write{Object: obj}
		if old != nil {
			w.OldObject = old
		}
		if isDryRun(r.URL.Query()) {
			return w, resp, nil
		}
		if r.Method != http.MethodPost {
			if created {
				rv = impossibleResourceVersion
			}
			if rv == "" {
				return access.Write{}, nil, errors.New("the dry run's answer has no resourceVersion to make the change conditional on")
			}
			if err := p.conditional(r, body, rv); err != nil {
				return access.Write{}, nil, err
			}
		}
		return w, nil, nil
	}
	return access.Write{}, conflict(a), nil
}

// dryRun sends r with dryRun=All and returns the answer, its body buffered,
// and on success the object it holds.
func (p *Protocol) dryRun(ctx context.Context, send func(*http.Request) (*http.Response, error), r *http.Request, body []byte) (*http.Response, map[string]any, error) {
	q := r.URL.Query()
	q.Set("dryRun", metav1.DryRunAll)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, errors.New("cannot build the dry run")
	}
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	return p.roundTrip(send, req, "the dry run")
}

// stored reads the object r changes, as it is stored now; nil if there is
// none (an update or apply may create it).
func (p *Protocol) stored(ctx context.Context, send func(*http.Request) (*http.Response, error), r *http.Request, a access.Action) (map[string]any, error) {
	objPath := r.URL.Path
	if kubernetes(a).Subresource != "" {
		objPath = path.Dir(objPath)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, objPath, nil)
	if err != nil {
		return nil, errors.New("cannot build the read of the stored object")
	}
	resp, obj, err := p.roundTrip(send, req, "reading the stored object")
	switch {
	case err != nil:
		return nil, err
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil
	case resp.StatusCode == http.StatusForbidden:
		return nil, errors.New("the grant's identity may not read the stored object, which policies need to judge the change")
	case resp.StatusCode >= 300:
		return nil, fmt.Errorf("reading the stored object answered %d", resp.StatusCode)
	}
	return obj, nil
}

// roundTrip sends req, asking for JSON, buffers the answer and decodes the
// object of a successful one.
func (p *Protocol) roundTrip(send func(*http.Request) (*http.Response, error), req *http.Request, what string) (*http.Response, map[string]any, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := send(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s could not reach the target", what)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxObjectBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the target's answer was cut short", what)
	}
	if len(raw) > maxObjectBytes {
		return nil, nil, fmt.Errorf("%s: the target's answer is over %d bytes", what, maxObjectBytes)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	if resp.StatusCode >= 300 {
		return resp, nil, nil
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the target's answer is not a JSON object", what)
	}
	return resp, obj, nil
}

// decodeObject decodes a JSON object, keeping numbers exact.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

func resourceVersion(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	rv, _ := md["resourceVersion"].(string)
	return rv
}

func isDryRun(q url.Values) bool {
	for _, v := range q["dryRun"] {
		if v == metav1.DryRunAll {
			return true
		}
	}
	return false
}

// conditional makes the update or patch r carry resourceVersion rv, so that
// the apiserver applies it only to the object the dry run saw. Bodies that
// are not JSON are converted to JSON first (YAML and protobuf carry the
// same object in JSON).
func (p *Protocol) conditional(r *http.Request, body []byte, rv string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	var out []byte
	var err error
	switch {
	case r.Method == http.MethodPatch && mt == "application/json-patch+json":
		out, err = appendResourceVersionOp(body, rv)
	case r.Method == http.MethodPatch && (mt == "application/merge-patch+json" || mt == "application/strategic-merge-patch+json"):
		out, err = setResourceVersion(body, rv)
	case r.Method == http.MethodPatch && mt == "application/apply-patch+yaml":
		if body, err = yaml.YAMLToJSON(body); err == nil {
			out, err = setResourceVersion(body, rv)
		}
	case r.Method == http.MethodPut && (mt == "" || mt == "application/json"):
		out, err = setResourceVersion(body, rv)
	case r.Method == http.MethodPut && mt == "application/yaml":
		if body, err = yaml.YAMLToJSON(body); err == nil {
			out, err = setResourceVersion(body, rv)
		}
		ct = "application/json"
	case r.Method == http.MethodPut && mt == protobufContentType:
		if body, err = p.protobufToJSON(body); err == nil {
			out, err = setResourceVersion(body, rv)
		}
		ct = "application/json"
	default:
		return fmt.Errorf("a %s with content type %q cannot be made conditional", r.Method, mt)
	}
	if err != nil {
		return fmt.Errorf("cannot make the request conditional on the judged object: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	r.Header.Set("Content-Type", ct)
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out)), nil }
	return nil
}

// appendResourceVersionOp appends to a JSON patch an operation that sets
// metadata.resourceVersion, leaving the client's operations byte for byte.
func appendResourceVersionOp(patch []byte, rv string) ([]byte, error) {
	var ops []json.RawMessage
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, errors.New("the JSON patch is not an array")
	}
	op, _ := json.Marshal(map[string]string{"op": "add", "path": "/metadata/resourceVersion", "value": rv})
	return json.Marshal(append(ops, op))
}

// setResourceVersion sets metadata.resourceVersion in a JSON object. A body
// that repeats a key anywhere is refused: jitproxy and the apiserver must
// not be able to read it differently.
func setResourceVersion(body []byte, rv string) ([]byte, error) {
	if rk := (*strictjson.RepeatedKeyError)(nil); errors.As(strictjson.Check(body, 0), &rk) {
		return nil, fmt.Errorf("the body repeats the key %q", rk.Key)
	}
	obj, err := decodeObject(body)
	if err != nil {
		return nil, errors.New("the body is not a JSON object")
	}
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		if obj["metadata"] != nil {
			return nil, errors.New("the body's metadata is not an object")
		}
		md = map[string]any{}
		obj["metadata"] = md
	}
	md["resourceVersion"] = rv
	return json.Marshal(obj)
}

// conflict is the apiserver's own conflict answer, for an object that kept
// changing while it was judged.
func conflict(action access.Action) *http.Response {
	a := kubernetes(action)
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  fmt.Sprintf("jitproxy: %s %q changed while it was judged; please apply your changes to the latest version and try again", a.Resource, a.Name),
		Reason:   metav1.StatusReasonConflict,
		Code:     http.StatusConflict,
	}
	b, _ := json.Marshal(st)
	return &http.Response{
		StatusCode:    http.StatusConflict,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
	}
}
