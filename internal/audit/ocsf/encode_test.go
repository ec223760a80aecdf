package ocsf

import (
	"bytes"
	stdcmp "cmp"
	"context"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	t0      = time.Date(2025, 6, 3, 14, 7, 9, 123456789, time.UTC)
	expires = t0.Add(2 * time.Hour)
)

func caller() *access.Caller {
	return &access.Caller{Session: "s-7f3a", Agent: "claude-code", User: "alice@example.com",
		Groups: []string{"sre", "oncall"}, AuthMethod: "proxy-basic", SourceAddr: "10.1.2.3:51234"}
}

func grant() *audit.Grant {
	return &audit.Grant{ID: "g-42", Policy: "payments-debug", Version: "3", Namespace: "payments", ExpiresAt: expires}
}

func lifecycleGrant(state string) *audit.Grant {
	return &audit.Grant{ID: "g-42", Policy: "payments-debug", Version: "3", State: state, User: "alice@example.com",
		Session: "s-7f3a", Target: "prod", Namespace: "payments", Reason: "INC-1234: pods crash-looping", ExpiresAt: expires}
}

func endedGrant(state, why string) *audit.Grant {
	g := lifecycleGrant(state)
	g.EndReason = why
	return g
}

func suspendedGrant(why string) *audit.Grant {
	g := lifecycleGrant("ACTIVE")
	g.Suspended = why
	return g
}

func kube(method, path, verb, group, version, resource, sub, ns, name string) *access.Action {
	return &access.Action{Kind: access.KindKubernetes, Target: "prod", Method: method, Path: path,
		Kubernetes: &access.KubernetesAction{Verb: verb, ResourceRequest: resource != "", APIGroup: group, APIVersion: version,
			Resource: resource, Subresource: sub, Namespace: ns, Name: name}}
}

func aws(method, path, service, action, region, acct string, arns ...string) *access.Action {
	return &access.Action{Kind: access.KindAWS, Target: "prod-aws", Method: method, Path: path,
		AWS: &access.AWSAction{Service: service, Action: action, Region: region, Account: acct, Resources: arns}}
}

var (
	allowed = &audit.Decision{Allowed: true, Reasons: []string{"grant g-42 (payments-debug) allows it"}}
	denied  = &audit.Decision{Reasons: []string{"no active grant allows delete pods in payments"}, Policies: []string{"payments-admin"}}
	awsDeny = &audit.Decision{Reasons: []string{"no active grant allows dynamodb:PutItem on arn:aws:dynamodb:eu-west-1:123456789012:table/orders"}, Policies: []string{"orders-writer"}}
	runner  = &audit.Actor{Name: "ci-runner", Groups: []string{"runners"}}
	agent   = &audit.Actor{Name: "alice@example.com", Groups: []string{"sre", "oncall"}, Session: "s-7f3a", Agent: "claude-code"}
	bob     = &audit.Actor{Name: "bob@example.com", Groups: []string{"payments-approvers"}}
	system  = &audit.Actor{Name: "jitproxy"}
)

// event completes e as audit.Recorder would.
func event(id string, e audit.Event) audit.Event {
	e.Version, e.ID, e.Time = audit.SchemaVersion, id, t0
	return e
}

type testCase struct {
	name  string
	event audit.Event
	class int
}

// cases are events of every type jitproxy emits, in the shapes it emits
// them: Kubernetes and AWS requests allowed, denied and failed, refused
// CONNECTs, pre-forward decisions, and every lifecycle event.
func cases() []testCase {
	getPod := kube("GET", "/api/v1/namespaces/payments/pods/api-0", "get", "", "v1", "pods", "", "payments", "api-0")
	deletePod := kube("DELETE", "/api/v1/namespaces/payments/pods/api-0", "delete", "", "v1", "pods", "", "payments", "api-0")
	s3Get := aws("GET", "/reports/q3.csv", "s3", "s3:GetObject", "eu-west-1", "", "arn:aws:s3:::acme-reports/reports/q3.csv")
	putItem := aws("POST", "/", "dynamodb", "dynamodb:PutItem", "eu-west-1", "123456789012", "arn:aws:dynamodb:eu-west-1:123456789012:table/orders")
	ok := &audit.Outcome{Status: 200, Bytes: 1834}
	return []testCase{
		{"request/kubernetes-get-allowed", event("e01", audit.Event{Type: audit.TypeRequest, RequestID: "r-01", Caller: caller(),
			Action: getPod, Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 12.6}), classAPIActivity},
		{"request/kubernetes-delete-denied", event("e02", audit.Event{Type: audit.TypeRequest, RequestID: "r-02", Caller: caller(),
			Action: deletePod, Decision: denied, Outcome: &audit.Outcome{Status: 403, Bytes: 187}, DurationMS: 1.2}), classAPIActivity},
		{"request/kubernetes-list-collection", event("e03", audit.Event{Type: audit.TypeRequest, RequestID: "r-03", Caller: caller(),
			Action:   kube("GET", "/apis/apps/v1/namespaces/payments/deployments", "list", "apps", "v1", "deployments", "", "payments", ""),
			Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 30}), classAPIActivity},
		{"request/kubernetes-exec", event("e04", audit.Event{Type: audit.TypeRequest, RequestID: "r-04", Caller: caller(),
			Action:   kube("POST", "/api/v1/namespaces/payments/pods/api-0/exec", "create", "", "v1", "pods", "exec", "payments", "api-0"),
			Decision: allowed, Grant: grant(), Outcome: &audit.Outcome{Status: 101}, DurationMS: 65432.1}), classAPIActivity},
		{"request/kubernetes-nonresource", event("e05", audit.Event{Type: audit.TypeRequest, RequestID: "r-05", Caller: caller(),
			Action: kube("GET", "/version", "get", "", "", "", "", "", ""), Decision: &audit.Decision{Allowed: true}, Outcome: ok, DurationMS: 0.4}), classAPIActivity},
		{"request/kubernetes-credential-failed", event("e06", audit.Event{Type: audit.TypeRequest, RequestID: "r-06", Caller: caller(),
			Action: getPod, Decision: allowed, Grant: grant(), DurationMS: 5000,
			Outcome: &audit.Outcome{Status: 502, Error: "could not obtain a credential for grant g-42; the request was not forwarded"}}), classAPIActivity},
		{"request/session-ended-before-decision", event("e07", audit.Event{Type: audit.TypeRequest, RequestID: "r-07", Caller: caller(),
			Action:  &access.Action{Kind: access.KindKubernetes, Target: "prod", Method: "GET", Path: "/api/v1/pods"},
			Outcome: &audit.Outcome{Status: 401, Error: "your jitproxy session has ended"}, DurationMS: 0.2}), classAPIActivity},
		{"request/aws-s3-get-allowed", event("e08", audit.Event{Type: audit.TypeRequest, RequestID: "r-08", Caller: caller(),
			Action: s3Get, Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 80}), classAPIActivity},
		// A body too large for body_length, an integer_t: in unmapped.bytes.
		{"request/aws-s3-get-5gib", event("e08b", audit.Event{Type: audit.TypeRequest, RequestID: "r-08b", Caller: caller(),
			Action: s3Get, Decision: allowed, Grant: grant(), Outcome: &audit.Outcome{Status: 200, Bytes: 5 << 30}, DurationMS: 48000}), classAPIActivity},
		{"request/aws-dynamodb-put-denied", event("e09", audit.Event{Type: audit.TypeRequest, RequestID: "r-09", Caller: caller(),
			Action: putItem, Decision: awsDeny, Outcome: &audit.Outcome{Status: 403}, DurationMS: 2}), classAPIActivity},
		{"request/aws-sts-other-activity", event("e10", audit.Event{Type: audit.TypeRequest, RequestID: "r-10", Caller: caller(),
			Action: aws("POST", "/", "sts", "sts:GetCallerIdentity", "us-east-1", ""), Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 40}), classAPIActivity},
		{"request/aws-lambda-invoke", event("e11", audit.Event{Type: audit.TypeRequest, RequestID: "r-11", Caller: caller(),
			Action:   aws("POST", "/2015-03-31/functions/report/invocations", "lambda", "lambda:InvokeFunction", "eu-west-1", "123456789012", "arn:aws:lambda:eu-west-1:123456789012:function:report"),
			Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 900}), classAPIActivity},
		{"request/aws-iam-global", event("e12", audit.Event{Type: audit.TypeRequest, RequestID: "r-12", Caller: caller(),
			Action: aws("POST", "/", "iam", "iam:ListRoles", "", ""), Decision: allowed, Grant: grant(), Outcome: ok, DurationMS: 50}), classAPIActivity},
		{"request/connect-not-a-target", event("e13", audit.Event{Type: audit.TypeRequest, RequestID: "r-13", Caller: caller(),
			Action:   &access.Action{Method: "CONNECT", Path: "example.com:443"},
			Decision: &audit.Decision{Reasons: []string{"host is not a jitproxy target"}}, Outcome: &audit.Outcome{Status: 403}, DurationMS: 0.1}), classAPIActivity},
		{"request/connect-unauthenticated", event("e14", audit.Event{Type: audit.TypeRequest, RequestID: "r-14",
			Action:   &access.Action{Method: "CONNECT", Path: "10.0.0.1:6443"},
			Decision: &audit.Decision{Reasons: []string{"no valid session credential"}}, Outcome: &audit.Outcome{Status: 407}, DurationMS: 0.1}), classAuthentication},
		{"request/connect-session-store-down", event("e15", audit.Event{Type: audit.TypeRequest, RequestID: "r-15",
			Action:   &access.Action{Method: "CONNECT", Path: "kube.example.com:443"},
			Decision: &audit.Decision{Reasons: []string{"session store unavailable"}}, Outcome: &audit.Outcome{Status: 503}, DurationMS: 3}), classAuthentication},
		{"request.decided/kubernetes-allowed", event("e16", audit.Event{Type: audit.TypeRequestDecided, RequestID: "r-16", Caller: caller(),
			Action: getPod, Decision: allowed, Grant: grant(), DurationMS: 0.8}), classAPIActivity},
		{"request.decided/aws-denied", event("e17", audit.Event{Type: audit.TypeRequestDecided, RequestID: "r-17", Caller: caller(),
			Action: putItem, Decision: awsDeny}), classAPIActivity},
		{"session.created/serviceaccount", event("e18b", audit.Event{Type: audit.TypeSessionCreated, Actor: &audit.Actor{Name: "ci-runner", Groups: []string{"jitproxy:runners"},
			AuthMethod: "serviceaccount", Identity: "serviceaccount:prod:ci/jitproxy-runner"},
			Session: &audit.Session{ID: "s-7f3b", Agent: "claude-code", User: "alice@example.com", ExpiresAt: t0.Add(8 * time.Hour)}}), classAuthentication},
		{"session.created", event("e18", audit.Event{Type: audit.TypeSessionCreated, Actor: runner,
			Session: &audit.Session{ID: "s-7f3a", Agent: "claude-code", User: "alice@example.com", Groups: []string{"sre", "oncall"}, ExpiresAt: t0.Add(8 * time.Hour)}}), classAuthentication},
		{"session.ended", event("e19", audit.Event{Type: audit.TypeSessionEnded, Actor: runner,
			Session: &audit.Session{ID: "s-7f3a", Agent: "claude-code", User: "alice@example.com", Groups: []string{"sre", "oncall"}, ExpiresAt: t0.Add(8 * time.Hour)}}), classAuthentication},
		{"grant.requested", event("e20", audit.Event{Type: audit.TypeGrantRequested, Actor: agent, Grant: lifecycleGrant("PENDING")}), classEntityManagement},
		{"grant.approved", event("e21", audit.Event{Type: audit.TypeGrantApproved, Actor: bob, Grant: lifecycleGrant("PENDING")}), classEntityManagement},
		{"grant.approved/oidc", event("e21b", audit.Event{Type: audit.TypeGrantApproved, Actor: &audit.Actor{Name: "bob", Groups: []string{"payments-approvers"},
			AuthMethod: "oidc", Identity: "oidc:corp:bob@example.com"}, Grant: lifecycleGrant("PENDING")}), classEntityManagement},
		{"grant.denied", event("e22", audit.Event{Type: audit.TypeGrantDenied, Actor: bob, Grant: lifecycleGrant("DENIED")}), classEntityManagement},
		{"grant.activated", event("e23", audit.Event{Type: audit.TypeGrantActivated, Actor: system, Grant: lifecycleGrant("ACTIVE")}), classUserAccess},
		{"grant.revoked", event("e24", audit.Event{Type: audit.TypeGrantRevoked, Actor: bob, Grant: lifecycleGrant("REVOKED")}), classUserAccess},
		{"grant.expired", event("e25", audit.Event{Type: audit.TypeGrantExpired, Actor: system, Grant: lifecycleGrant("EXPIRED")}), classUserAccess},
		{"grant.revoked/defensive", event("e25b", audit.Event{Type: audit.TypeGrantRevoked, Actor: system, Grant: endedGrant("REVOKED", `access policy "payments-debug" was removed`)}), classUserAccess},
		{"grant.suspended", event("e25c", audit.Event{Type: audit.TypeGrantSuspended, Actor: system, Grant: suspendedGrant(`access policy "payments-debug" was removed`)}), classUserAccess},
		{"grant.resumed", event("e25d", audit.Event{Type: audit.TypeGrantResumed, Actor: system, Grant: lifecycleGrant("ACTIVE")}), classUserAccess},
		{"credential.minted/kubernetes", event("e26", audit.Event{Type: audit.TypeCredentialMinted, Actor: system,
			Grant:      &audit.Grant{ID: "g-42", Target: "prod", Namespace: "payments", ExpiresAt: expires},
			Credential: &audit.Credential{Provider: "vault-kubernetes", Target: "prod", Subject: "system:serviceaccount:payments:jit-g-42", ExpiresAt: t0.Add(time.Hour)}}), classEntityManagement},
		{"credential.minted/aws", event("e27", audit.Event{Type: audit.TypeCredentialMinted, Actor: system,
			Grant:      &audit.Grant{ID: "g-43", Target: "prod-aws", ExpiresAt: expires},
			Credential: &audit.Credential{Provider: "sts", Target: "prod-aws", Subject: "arn:aws:sts::123456789012:assumed-role/jit-reader/g-43", ExpiresAt: t0.Add(time.Hour)}}), classEntityManagement},
		{"credential.released", event("e28", audit.Event{Type: audit.TypeCredentialReleased, Actor: system,
			Grant:      &audit.Grant{ID: "g-42", Target: "prod"},
			Credential: &audit.Credential{Provider: "vault-kubernetes", Target: "prod", Subject: "system:serviceaccount:payments:jit-g-42", ExpiresAt: t0.Add(time.Hour)}}), classEntityManagement},
		{"admin.request/grant-request", event("e30", audit.Event{Type: audit.TypeAdminRequest, Actor: agent,
			Admin:   &audit.AdminCall{Operation: "POST /v1/grants", Path: "/v1/grants", SourceAddr: "127.0.0.1:5555"},
			Outcome: &audit.Outcome{Status: 201}}), classAPIActivity},
		{"admin.request/grant-approve", event("e31", audit.Event{Type: audit.TypeAdminRequest, Actor: bob,
			Admin:   &audit.AdminCall{Operation: "POST /v1/grants/{id}/approve", Path: "/v1/grants/g-42/approve", SourceAddr: "10.20.0.7:40112"},
			Outcome: &audit.Outcome{Status: 200}}), classAPIActivity},
		{"admin.request/grant-approve-forbidden", event("e32", audit.Event{Type: audit.TypeAdminRequest, Actor: agent,
			Admin:   &audit.AdminCall{Operation: "POST /v1/grants/{id}/approve", Path: "/v1/grants/g-42/approve", SourceAddr: "127.0.0.1:5555"},
			Outcome: &audit.Outcome{Status: 403, Error: "forbidden: agents cannot approve or deny grants"}}), classAPIActivity},
		{"admin.request/session-end", event("e33", audit.Event{Type: audit.TypeAdminRequest, Actor: runner,
			Admin:   &audit.AdminCall{Operation: "DELETE /v1/sessions/{id}", Path: "/v1/sessions/s-7f3a", SourceAddr: "[fd00::12]:61000"},
			Outcome: &audit.Outcome{Status: 204}}), classAPIActivity},
		{"admin.request/unauthenticated", event("e34", audit.Event{Type: audit.TypeAdminRequest,
			Admin:   &audit.AdminCall{Operation: "GET /v1/policies", Path: "/v1/policies", SourceAddr: "127.0.0.1:5555"},
			Outcome: &audit.Outcome{Status: 401, Error: "unauthenticated: unknown token"}}), classAuthentication},
		{"policy.loaded", event("e35", audit.Event{Type: audit.TypePolicyLoaded, Actor: system, Policies: &audit.PolicySet{
			Access: []audit.PolicyVersion{
				{Name: "orders-writer", Version: "9c1d0e7a4b22", Target: "prod-aws"},
				{Name: "payments-debug", Version: "3f2a9b0c1d2e", Target: "prod"},
			},
			AuthzDigest: "5d41402abc4b2a76b9719d911017c592e8f0c3b4a1d2e3f405162738495a6b7c",
			AuthzSource: "embedded", AccessSource: "/etc/jitproxy/access", Trigger: audit.TriggerStartup,
		}}), classEntityManagement},
		{"policy.loaded/reload", event("e36", audit.Event{Type: audit.TypePolicyLoaded, Actor: system, Policies: &audit.PolicySet{
			Access: []audit.PolicyVersion{
				{Name: "orders-writer", Version: "9c1d0e7a4b22", Target: "prod-aws"},
				{Name: "payments-debug", Version: "77aa01b2c3d4", Target: "prod"},
			},
			AuthzDigest: "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c",
			AuthzSource: "/etc/jitproxy/authz", AccessSource: "/etc/jitproxy/access", Trigger: audit.TriggerSignal,
		}}), classEntityManagement},
		{"policy.rejected/rego", event("e37", audit.Event{Type: audit.TypePolicyRejected, Actor: system, Policies: &audit.PolicySet{
			Access:      []audit.PolicyVersion{{Name: "payments-debug", Version: "3f2a9b0c1d2e", Target: "prod"}},
			AuthzDigest: "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
			AuthzSource: "/etc/jitproxy/authz", AccessSource: "/etc/jitproxy/access", Trigger: audit.TriggerFileChange,
		}, Outcome: &audit.Outcome{Error: "authz: compile policies: kubernetes.rego:12: rego_parse_error: unexpected } token"}}), classEntityManagement},
		{"policy.rejected/access-unparsed", event("e38", audit.Event{Type: audit.TypePolicyRejected, Actor: system, Policies: &audit.PolicySet{
			AuthzDigest: "5d41402abc4b2a76b9719d911017c592e8f0c3b4a1d2e3f405162738495a6b7c",
			AuthzSource: "embedded", AccessSource: "/etc/jitproxy/access", Trigger: audit.TriggerSignal,
		}, Outcome: &audit.Outcome{Error: `pod-reader.yaml: document 1: access policy "pod-reader": spec.duration.max must be a positive duration such as 1h`}}), classEntityManagement},
		{"lock.created", event("e39", audit.Event{Type: audit.TypeLockCreated, Actor: bob,
			Lock: &audit.Lock{ID: "l-4kq2", User: "dev", Reason: "the agent is deleting things", ExpiresAt: expires}}), classEntityManagement},
		{"lock.removed", event("e40", audit.Event{Type: audit.TypeLockRemoved, Actor: system,
			Lock: &audit.Lock{ID: "l-4kq2", Policy: "pod-reader", Reason: "expired"}}), classEntityManagement},
		{"unknown-type", event("e29", audit.Event{Type: "policy.reloaded", Actor: system}), classBase},
	}
}

var chain = audit.Chain{Seq: 7, Prev: strings.Repeat("ab", 32)}

func encode(t *testing.T, e audit.Event) []byte {
	t.Helper()
	b, err := Encode(e, chain)
	if err != nil {
		t.Fatalf("Encode(%s) = %v", e.Type, err)
	}
	return b
}

// emittedTypes are the event types jitproxy emits: the Type constants of
// package audit, read from its source, so that a type added there is
// tested here.
func emittedTypes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "event.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Type") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					types = append(types, s)
				}
			}
		}
	}
	if len(types) < 14 {
		t.Fatalf("found %d event types in ../event.go, want at least 14: %v", len(types), types)
	}
	slices.Sort(types)
	return slices.Compact(types)
}

func TestEveryEmittedTypeIsMappedAndTested(t *testing.T) {
	tested := map[string]bool{}
	for _, c := range cases() {
		tested[c.event.Type] = true
	}
	for _, typ := range emittedTypes(t) {
		if got := mapEvent(audit.Event{Type: typ, Caller: caller()}).ClassUID; got == classBase {
			t.Errorf("event type %q is not mapped to an OCSF class: add it to mapEvent and the package documentation", typ)
		}
		if !tested[typ] {
			t.Errorf("event type %q has no test case", typ)
		}
	}
}

func TestEncodeConformsToOCSF(t *testing.T) {
	s := loadSchema(t)
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			b := encode(t, c.event)
			errs, warns := s.validate(b)
			for _, e := range errs {
				t.Error(e)
			}
			// Recommended attributes jitproxy has no data for are many
			// (endpoint interfaces, MFA, HTTP headers): counted, not listed.
			t.Logf("%d warnings", len(warns))
			var got struct {
				ClassUID int `json:"class_uid"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.ClassUID != c.class {
				t.Errorf("class_uid = %d, want %d", got.ClassUID, c.class)
			}
		})
	}
}

func TestEncodeGolden(t *testing.T) {
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := json.Indent(&out, encode(t, c.event), "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			path := filepath.Join("testdata", strings.ReplaceAll(c.name, "/", "_")+".json")
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("encoding differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestEncodeChain checks the chain fields: sequence in metadata, the
// previous hash and the hash placeholder as the last members of unmapped,
// the last member of the record, so that audit.Chainer seals and opens the
// record.
func TestEncodeChain(t *testing.T) {
	chainer := audit.NewChainer([]byte("key"))
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			b := encode(t, c.event)
			if again := encode(t, c.event); !bytes.Equal(b, again) {
				t.Fatalf("two encodings differ:\n%s\n%s", b, again)
			}
			wantTail := `,"unmapped":{`
			if i := bytes.LastIndex(b, []byte(wantTail)); i < 0 || bytes.Count(b[i:], []byte(`"unmapped"`)) != 1 {
				t.Fatalf("unmapped is not the last member: %s", b)
			}
			if !bytes.HasSuffix(b, []byte(`"prev_hash":"`+chain.Prev+`","hash":""}}`)) {
				t.Fatalf("record does not end with prev_hash and the hash placeholder: %s", b)
			}
			if !bytes.Contains(b, []byte(`"sequence":7,`)) {
				t.Errorf("no metadata.sequence 7 in %s", b)
			}
			sealed, sum, err := chainer.Seal(chain.Prev, b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(sealed, []byte(`"hash":"`+sum+`"}}`)) {
				t.Fatalf("the hash was not filled in at the end: %s", sealed)
			}
			if got, err := chainer.Open(chain.Prev, sealed); err != nil || got != sum {
				t.Errorf("Open = %q, %v; want %q", got, err, sum)
			}
		})
	}
}

// TestChainThroughRecorder: every kind of record, recorded with Append
// as a sink's encoder, reaches the sink with a chain audit.Verify (jitproxy
// audit verify) accepts, "&" in category names and all.
func TestChainThroughRecorder(t *testing.T) {
	sink := &lineSink{}
	r, err := audit.New(audit.Config{Sinks: []audit.SinkConfig{{Name: "ocsf", Sink: sink, SpoolDir: t.TempDir(), Encoder: Append, ChainKey: []byte("0123456789abcdef")}}})
	if err != nil {
		t.Fatal(err)
	}
	cs := cases()
	for _, c := range cs {
		if err := r.Record(t.Context(), c.event); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(bytes.NewReader(sink.lines.Bytes()), []byte("0123456789abcdef"))
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	if res.Records != len(cs) || !bytes.Contains(sink.lines.Bytes(), []byte(`"Identity & Access Management"`)) {
		t.Errorf("verified %d records, want %d, with category names as written:\n%s", res.Records, len(cs), sink.lines.Bytes())
	}
}

// lineSink keeps what it is given as JSON lines.
type lineSink struct {
	mu    sync.Mutex
	lines bytes.Buffer
}

func (s *lineSink) Deliver(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range batch {
		s.lines.Write(r.Data)
		s.lines.WriteByte('\n')
	}
	return nil
}

func (*lineSink) Close() error { return nil }

// TestValidatorFindsBrokenEvents breaks a conforming record in one way at
// a time: the validator must report each.
func TestValidatorFindsBrokenEvents(t *testing.T) {
	s := loadSchema(t)
	good := encode(t, cases()[0].event)
	if errs, _ := s.validate(good); len(errs) > 0 {
		t.Fatalf("the record to break does not conform: %v", errs)
	}
	type obj = map[string]any
	tests := []struct {
		name  string
		edit  func(r obj)
		error string
	}{
		{"class required attribute missing", func(r obj) { delete(r, "src_endpoint") }, "src_endpoint: required attribute missing"},
		{"object required attribute missing", func(r obj) { delete(r["api"].(obj), "operation") }, "api.operation: required attribute missing"},
		{"nested object required attribute missing", func(r obj) { delete(r["api"].(obj)["request"].(obj), "uid") }, "api.request.uid: required attribute missing"},
		{"metadata product missing", func(r obj) { delete(r["metadata"].(obj), "product") }, "metadata.product: required attribute missing"},
		{"unknown top-level attribute", func(r obj) { r["grant_id"] = "g-42" }, "grant_id: not an attribute of class api_activity"},
		{"unknown object attribute", func(r obj) { r["actor"].(obj)["agent"] = "claude-code" }, "actor.agent: not an attribute of object actor"},
		{"profile attribute without the profile", func(r obj) { delete(r["metadata"].(obj), "profiles") }, "authorizations: attribute of profile security_control"},
		{"unknown profile", func(r obj) { r["metadata"].(obj)["profiles"] = []any{"security_control", "jitproxy"} }, "unknown profile jitproxy"},
		{"wrong type: string for timestamp", func(r obj) { r["time"] = "2025-06-03T14:07:09Z" }, "time: 2025-06-03T14:07:09Z, want timestamp_t"},
		{"wrong type: number for string", func(r obj) { r["api"].(obj)["operation"] = json.Number("2") }, "api.operation: json.Number, want string_t"},
		{"wrong type: object for array", func(r obj) { r["resources"] = r["resources"].([]any)[0] }, "resources: map[string]interface {}, want an array of resource_details"},
		{"wrong type: string for object", func(r obj) { r["api"] = "get" }, "api: string, want object api"},
		{"wrong type: string for boolean", func(r obj) { r["authorizations"].([]any)[0].(obj)["policy"].(obj)["is_applied"] = "yes" }, "is_applied: string, want boolean_t"},
		{"enum value undefined", func(r obj) { r["activity_id"] = json.Number("7") }, "activity_id: 7 is not a value of its enum"},
		{"enum value undefined in an object", func(r obj) { r["actor"].(obj)["user"].(obj)["type_id"] = json.Number("5") }, "actor.user.type_id: 5 is not a value of its enum"},
		{"string enum value undefined", func(r obj) { r["http_request"].(obj)["http_method"] = "get" }, "http_request.http_method: get is not a value of its enum"},
		{"enum sibling wrong", func(r obj) { r["severity"] = "High" }, `severity: "High", want "Informational"`},
		{"type_uid not class_uid*100+activity_id", func(r obj) { r["type_uid"] = json.Number("600301") }, "type_uid 600301, want class_uid*100+activity_id = 600302"},
		{"unknown class", func(r obj) { r["class_uid"] = json.Number("6099") }, "class_uid 6099: no such class"},
		{"category of another class", func(r obj) { r["category_uid"] = json.Number("3") }, "category_uid: 3 is not a value of its enum"},
		{"ip not an ip", func(r obj) { r["src_endpoint"].(obj)["ip"] = "10.1.2" }, "src_endpoint.ip: \"10.1.2\" does not match the pattern of ip_t"},
		{"port out of range", func(r obj) { r["src_endpoint"].(obj)["port"] = json.Number("70000") }, "src_endpoint.port: 70000 outside the range"},
		{"at_least_one constraint", func(r obj) { r["actor"] = obj{} }, "actor: object actor needs at least one of"},
		{"deprecated attribute", func(r obj) { r["actor"].(obj)["user"].(obj)["credential_uid"] = "k-1" }, "actor.user.credential_uid: deprecated attribute"},
		{"schema version", func(r obj) { r["metadata"].(obj)["version"] = "1.7.0" }, "metadata.version 1.7.0, want 1.8.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(bytes.NewReader(good))
			dec.UseNumber()
			var r obj
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			tt.edit(r)
			broken, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			errs, _ := s.validate(broken)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.error) }) {
				t.Errorf("errors %q, want one containing %q", errs, tt.error)
			}
		})
	}
}

func TestAWSActivity(t *testing.T) {
	tests := []struct {
		op   string
		want int
	}{
		{"GetObject", apiRead},
		{"ListBuckets", apiRead},
		{"BatchGetItem", apiRead},
		{"PutObject", apiUpdate},
		{"CreateBucket", apiCreate},
		{"BatchWriteItem", apiCreate},
		{"DeleteObject", apiDelete},
		{"TerminateInstances", apiDelete},
		{"AssumeRole", activityOther},
		{"InvokeFunction", activityOther},
		{"Getaway", activityOther},
		{"Batch", activityOther},
		{"", activityOther},
	}
	for _, tt := range tests {
		if got := awsActivity(tt.op); got != tt.want {
			t.Errorf("awsActivity(%q) = %d, want %d", tt.op, got, tt.want)
		}
	}
}

func TestAdminActivity(t *testing.T) {
	tests := []struct {
		operation string
		want      int
	}{
		{"POST /v1/sessions", apiCreate},
		{"DELETE /v1/sessions/{id}", apiDelete},
		{"GET /v1/policies", apiRead},
		{"POST /v1/grants", apiCreate},
		{"GET /v1/grants/{id}", apiRead},
		{"POST /v1/grants/{id}/approve", apiUpdate},
		{"POST /v1/grants/{id}/revoke", apiUpdate},
		{"POST /v1/grants/{id}", apiCreate},
		{"/v1/grants", activityOther},
		{"", activityOther},
	}
	for _, tt := range tests {
		if got := adminActivity(splitOperation(tt.operation)); got != tt.want {
			t.Errorf("adminActivity(%q) = %d, want %d", tt.operation, got, tt.want)
		}
	}
}

func TestPathResources(t *testing.T) {
	tests := []struct {
		name, pattern, path string
		want                []resource
	}{
		{"grant action", "/v1/grants/{id}/approve", "/v1/grants/g-42/approve", []resource{{UID: "g-42", Type: "grants", RoleID: 1, Role: "Target"}}},
		{"session", "/v1/sessions/{id}", "/v1/sessions/s-7f3a", []resource{{UID: "s-7f3a", Type: "sessions", RoleID: 1, Role: "Target"}}},
		{"collection", "/v1/grants", "/v1/grants", nil},
		{"empty ID", "/v1/sessions/{id}", "/v1/sessions/", nil},
		{"path of another route", "/v1/grants/{id}/approve", "/v1/grants/g-42", nil},
		{"wildcard first", "/{id}", "/g-42", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, pathResources(tt.pattern, tt.path)); diff != "" {
			t.Errorf("%s: pathResources(%q, %q) (-want +got):\n%s", tt.name, tt.pattern, tt.path, diff)
		}
	}
}

// FuzzEncode encodes requests whose fields come from the agent (method,
// path, host, ARNs, reasons quoting them) and the source address of its
// connection (never empty: net/http sets it), and admin API calls with
// the path and source address of the caller, and rejected policy sets
// with the error and names read from policy files: the record is valid JSON,
// conforms to OCSF and ends with the hash placeholder.
func FuzzEncode(f *testing.F) {
	f.Add("GET", "/api/v1/pods", "10.1.2.3:51234", "arn:aws:s3:::b/k", "get", "s3:GetObject", "example.com:443", `"hash":""`, 200)
	f.Add("PROPFIND", "", "[fe80::1%eth0]:80", "arn:aws", "", "Batch", "[::1]:6443", "}", 0)
	s := loadSchema(f)
	f.Fuzz(func(t *testing.T, method, path, source, arn, verb, action, host, reason string, status int) {
		c := caller()
		c.SourceAddr = stdcmp.Or(source, "10.1.2.3:51234")
		events := []audit.Event{
			event("k", audit.Event{Type: audit.TypeRequest, RequestID: "r", Caller: c, Decision: &audit.Decision{Reasons: []string{reason}},
				Action: kube(method, path, verb, "", "v1", "pods", "", "ns", "n"), Outcome: &audit.Outcome{Status: status, Error: reason}}),
			event("a", audit.Event{Type: audit.TypeRequestDecided, RequestID: "r", Caller: c, Decision: allowed, Grant: grant(),
				Action: aws(method, path, "s3", action, "eu-west-1", "", arn)}),
			event("c", audit.Event{Type: audit.TypeRequest, RequestID: "r", Action: &access.Action{Method: "CONNECT", Path: host},
				Decision: &audit.Decision{Reasons: []string{reason}}, Outcome: &audit.Outcome{Status: status}}),
			event("m", audit.Event{Type: audit.TypeAdminRequest, Actor: bob, Outcome: &audit.Outcome{Status: status, Error: reason},
				Admin: &audit.AdminCall{Operation: "POST /v1/grants/{id}/approve", Path: path, SourceAddr: c.SourceAddr}}),
			event("u", audit.Event{Type: audit.TypeAdminRequest, Outcome: &audit.Outcome{Status: status, Error: reason},
				Admin: &audit.AdminCall{Operation: "GET /v1/grants/{id}", Path: path, SourceAddr: c.SourceAddr}}),
			// A rejected policy file's error quotes the file's name and text.
			event("p", audit.Event{Type: audit.TypePolicyRejected, Actor: system, Outcome: &audit.Outcome{Error: reason},
				Policies: &audit.PolicySet{Access: []audit.PolicyVersion{{Name: path, Version: verb, Target: host}}, AuthzSource: path, Trigger: action}}),
		}
		for _, e := range events {
			b, err := Encode(e, chain)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(b) || !bytes.HasSuffix(b, []byte(`"hash":""}}`)) {
				t.Fatalf("not JSON ending with the hash placeholder: %s", b)
			}
			if errs, _ := s.validate(b); len(errs) > 0 {
				t.Fatalf("%s\ndoes not conform: %q", b, errs)
			}
		}
	})
}

// BenchmarkAppend measures encoding a request's last event in OCSF, into
// a buffer used again as a stream does.
func BenchmarkAppend(b *testing.B) {
	e := cases()[0].event
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], e, chain); err != nil {
			b.Fatal(err)
		}
	}
}
