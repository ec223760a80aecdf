package sts

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

const (
	testRole       = "arn:aws:iam::123456789012:role/reader"
	assumedRoleARN = "arn:aws:sts::123456789012:assumed-role/reader/g-abc.alice"
	answerKeyID    = "ASIAEXAMPLEMINTED01"
	answerSecret   = "minted-secret-access-key"
	answerToken    = "minted-session-token"
)

var answerExpires = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// fakeSTS plays STS: it records the form of each call and the identity it
// was signed with, and answers an AssumeRoleResponse, or status and body
// when set.
type fakeSTS struct {
	status int
	body   string

	mu    sync.Mutex
	forms []url.Values
	auth  []string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if f.status != 0 {
		w.WriteHeader(f.status)
		w.Write([]byte(f.body))
		return
	}
	w.Write([]byte(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>` + assumedRoleARN + `</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:g-abc.alice</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>` + answerKeyID + `</AccessKeyId>
      <SecretAccessKey>` + answerSecret + `</SecretAccessKey>
      <SessionToken>` + answerToken + `</SessionToken>
      <Expiration>` + answerExpires.Format(time.RFC3339) + `</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`))
}

func (f *fakeSTS) calls() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

var now = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// jitproxyIdentity is jitproxy's own AWS identity in the tests.
var jitproxyIdentity = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDJITPROXY", SecretAccessKey: "jitproxy-own-secret", Source: "test"}, nil
})

func newProvider(t *testing.T, f *fakeSTS) *Provider {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p, err := New(Config{
		AWS:          aws.Config{Credentials: jitproxyIdentity, Region: "eu-central-1"},
		BaseEndpoint: srv.URL,
		Now:          func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var readReports = []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::reports/*"}, Regions: []string{"eu-central-1"}}}

const readReportsPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::reports/*"],"Condition":{"StringEquals":{"aws:RequestedRegion":["eu-central-1"]}}}]}`

// form returns what the SDK sends for an AssumeRole call, with fields
// replaced or, set to "", removed.
func form(change map[string]string) map[string]string {
	f := map[string]string{
		"Action": "AssumeRole", "Version": "2011-06-15",
		"RoleArn": testRole, "RoleSessionName": "g-abc.alice", "DurationSeconds": "1800",
		"Policy": readReportsPolicy, "SourceIdentity": "alice",
		"Tags.member.1.Key": TagUser, "Tags.member.1.Value": "alice",
		"Tags.member.2.Key": TagAgent, "Tags.member.2.Value": "claude-code",
		"Tags.member.3.Key": TagGrant, "Tags.member.3.Value": "g-abc",
	}
	for k, v := range change {
		if v == "" {
			delete(f, k)
			continue
		}
		f[k] = v
	}
	return f
}

func flatten(v url.Values) map[string]string {
	out := map[string]string{}
	for k, vs := range v {
		out[k] = strings.Join(vs, ",")
	}
	return out
}

var alice = access.Caller{Session: "s-1", Agent: "claude-code", User: "alice"}

// withRole returns opts with roleArn testRole added, unless opts sets it.
func withRole(opts map[string]string) map[string]string {
	out := map[string]string{"roleArn": testRole}
	maps.Copy(out, opts)
	return out
}

func TestMint(t *testing.T) {
	noTags := map[string]string{
		"Tags.member.1.Key": "", "Tags.member.1.Value": "", "Tags.member.2.Key": "", "Tags.member.2.Value": "",
		"Tags.member.3.Key": "", "Tags.member.3.Value": "",
	}
	tests := []struct {
		name      string
		remaining time.Duration
		opts      map[string]string
		caller    access.Caller
		want      map[string]string
	}{
		{name: "defaults", caller: alice, remaining: 30 * time.Minute, want: form(nil)},
		{name: "a short grant asks STS's least", caller: alice, remaining: 5 * time.Minute, want: form(map[string]string{"DurationSeconds": "900"})},
		{name: "rounded up to the second", caller: alice, remaining: 30*time.Minute + 400*time.Millisecond, want: form(map[string]string{"DurationSeconds": "1801"})},
		{name: "a long grant is capped at the default 1h", caller: alice, remaining: 3 * time.Hour, want: form(map[string]string{"DurationSeconds": "3600"})},
		{name: "maxDuration as a duration", caller: alice, remaining: 3 * time.Hour, opts: map[string]string{"maxDuration": "2h"}, want: form(map[string]string{"DurationSeconds": "7200"})},
		{name: "maxDuration in seconds", caller: alice, remaining: 3 * time.Hour, opts: map[string]string{"maxDuration": "5400"}, want: form(map[string]string{"DurationSeconds": "5400"})},
		{name: "no source identity", caller: alice, remaining: 30 * time.Minute, opts: map[string]string{"sourceIdentity": "false"}, want: form(map[string]string{"SourceIdentity": ""})},
		{name: "no session tags", caller: alice, remaining: 30 * time.Minute, opts: map[string]string{"sessionTags": "false"}, want: form(noTags)},
		{
			name: "names fitted to STS's rules", remaining: 30 * time.Minute,
			caller: access.Caller{User: "Élise Dupont", Agent: "claude<code>"},
			want: form(map[string]string{
				"RoleSessionName": "g-abc._lise_Dupont.9a256d84", "SourceIdentity": "_lise_Dupont.697933e7",
				"Tags.member.1.Value": "Élise Dupont", "Tags.member.2.Value": "claude_code_.0206a74f",
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSTS{}
			p := newProvider(t, f)
			req := broker.Request{
				GrantID: "g-abc", GrantExpiresAt: now.Add(tt.remaining), Target: "aws-prod", Provider: Name,
				Options: withRole(tt.opts), Caller: tt.caller,
			}
			c, err := p.mint(context.Background(), req, readReports)
			if err != nil {
				t.Fatal(err)
			}
			want := broker.Credential{AccessKeyID: answerKeyID, SecretAccessKey: answerSecret, SessionToken: answerToken, ExpiresAt: answerExpires, Subject: assumedRoleARN}
			if diff := gocmp.Diff(want, c); diff != "" {
				t.Errorf("credential (-want +got):\n%s", diff)
			}
			calls := f.calls()
			if len(calls) != 1 {
				t.Fatalf("%d calls to STS, want 1", len(calls))
			}
			if diff := gocmp.Diff(tt.want, flatten(calls[0])); diff != "" {
				t.Errorf("AssumeRole form (-want +got):\n%s", diff)
			}
			if auth := f.auth[0]; !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDJITPROXY/") || !strings.Contains(auth, "/eu-central-1/sts/aws4_request,") {
				t.Errorf("Authorization %q: want the call signed by jitproxy's own identity for STS in eu-central-1", auth)
			}
		})
	}
}

func TestMintFailsClosed(t *testing.T) {
	denied := `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/jitproxy is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`
	noToken := `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey><Expiration>2026-11-26T10:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`
	huge := []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::b/" + strings.Repeat("x", MaxPolicyLength)}}}
	tests := []struct {
		name      string
		status    int // of STS's answer
		body      string
		opts      map[string]string
		caller    access.Caller
		perms     []access.AWSPermission
		wantErr   string
		wantCalls int
	}{
		{name: "STS refuses", status: 403, body: denied, caller: alice, perms: readReports, wantErr: "AccessDenied", wantCalls: 1},
		{name: "answer without a session token", status: 200, body: noToken, caller: alice, perms: readReports, wantErr: "answer without complete credentials", wantCalls: 1},
		{name: "no AWS permissions", caller: alice, perms: nil, wantErr: "the grant has no AWS permissions"},
		{name: "policy too large", caller: alice, perms: huge, wantErr: "session policy too large for STS"},
		{name: "no role", opts: map[string]string{"roleArn": ""}, caller: alice, perms: readReports, wantErr: "option roleArn"},
		{name: "not a role", opts: map[string]string{"roleArn": "arn:aws:iam::123456789012:user/bob"}, caller: alice, perms: readReports, wantErr: "want the ARN of an IAM role"},
		{name: "bad maxDuration", opts: map[string]string{"maxDuration": "13h"}, caller: alice, perms: readReports, wantErr: "want 15m0s to 12h0m0s"},
		{name: "source identity without a user", caller: access.Caller{Agent: "claude-code"}, perms: readReports, wantErr: "names no user for the SourceIdentity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSTS{status: tt.status, body: tt.body}
			p := newProvider(t, f)
			req := broker.Request{GrantID: "g-abc", GrantExpiresAt: now.Add(time.Hour), Options: withRole(tt.opts), Caller: tt.caller}
			c, err := p.mint(context.Background(), req, tt.perms)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("mint() error = %v, want %q", err, tt.wantErr)
			}
			if diff := gocmp.Diff(broker.Credential{}, c); diff != "" {
				t.Errorf("a failed mint returned a credential (-want +got):\n%s", diff)
			}
			if n := len(f.calls()); n != tt.wantCalls {
				t.Errorf("%d calls to STS, want %d", n, tt.wantCalls)
			}
		})
	}
}

// TestMintTakesPermissionsFromRequest pins the merge seam: until
// access.Permission has an AWS part, Mint finds no AWS permission in the
// request and refuses (fails closed) without calling STS. When the
// reshape lands, awsPermissions reads them and this test asks for a
// credential narrowed to them instead.
func TestMintTakesPermissionsFromRequest(t *testing.T) {
	f := &fakeSTS{}
	p := newProvider(t, f)
	req := broker.Request{GrantID: "g-abc", GrantExpiresAt: now.Add(time.Hour), Options: map[string]string{"roleArn": testRole}, Caller: access.Caller{User: "alice"}}
	if _, err := p.Mint(context.Background(), req); err == nil || !strings.Contains(err.Error(), "the grant has no AWS permissions") {
		t.Errorf("Mint() error = %v, want no AWS permissions", err)
	}
	if n := len(f.calls()); n != 0 {
		t.Errorf("%d calls to STS, want none", n)
	}
	// The AWS parts of the grant's permissions make the session policy.
	req.Permissions = []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}}}}
	for _, perm := range readReports {
		req.Permissions = append(req.Permissions, access.Permission{AWS: &perm})
	}
	if _, err := p.Mint(context.Background(), req); err != nil {
		t.Fatalf("Mint() = %v", err)
	}
	want, err := SessionPolicy(readReports)
	if err != nil {
		t.Fatal(err)
	}
	if calls := f.calls(); len(calls) != 1 || calls[0].Get("Policy") != want {
		t.Errorf("STS calls = %v, want one with the session policy %s", calls, want)
	}
}

// TestNeverThroughAProxy: a client whose transport names a proxy is used
// without it, so that jitproxy's calls to STS never loop through a proxy
// (possibly jitproxy itself).
func TestNeverThroughAProxy(t *testing.T) {
	f := &fakeSTS{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var proxied sync.Map
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String(), true)
		http.Error(w, "proxied", http.StatusBadGateway)
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)
	given := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	p, err := New(Config{AWS: aws.Config{Credentials: jitproxyIdentity}, BaseEndpoint: srv.URL, HTTPClient: given, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	req := broker.Request{GrantID: "g-abc", GrantExpiresAt: now.Add(time.Hour), Options: map[string]string{"roleArn": testRole}, Caller: access.Caller{User: "alice"}}
	if _, err := p.mint(context.Background(), req, readReports); err != nil {
		t.Fatalf("mint() = %v", err)
	}
	proxied.Range(func(k, _ any) bool {
		t.Errorf("the call to %v went through the proxy", k)
		return true
	})
	if given.Transport.(*http.Transport).Proxy == nil {
		t.Error("New changed the caller's transport")
	}
	if DirectHTTPClient().Transport.(*http.Transport).Proxy != nil {
		t.Error("DirectHTTPClient has a proxy")
	}
}

type roundTripper struct{}

func (roundTripper) RoundTrip(*http.Request) (*http.Response, error) { return nil, errors.New("no") }

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "no credentials", cfg: Config{}, wantErr: "Config.AWS.Credentials is required"},
		{name: "transport whose proxy cannot be turned off", cfg: Config{AWS: aws.Config{Credentials: jitproxyIdentity}, HTTPClient: &http.Client{Transport: roundTripper{}}}, wantErr: "want an *http.Transport"},
		{name: "default client", cfg: Config{AWS: aws.Config{Credentials: jitproxyIdentity}}},
		{name: "client with the default transport", cfg: Config{AWS: aws.Config{Credentials: jitproxyIdentity}, HTTPClient: &http.Client{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	p := newProvider(t, &fakeSTS{})
	tests := []struct {
		name    string
		opts    map[string]string
		wantErr string
	}{
		{name: "role only", opts: map[string]string{"roleArn": testRole}},
		{name: "role with a path", opts: map[string]string{"roleArn": "arn:aws:iam::123456789012:role/jit/reader"}},
		{name: "other partition", opts: map[string]string{"roleArn": "arn:aws-cn:iam::123456789012:role/reader"}},
		{name: "MinIO role, no account", opts: map[string]string{"roleArn": "arn:minio:iam:::role/reader"}},
		{name: "every option", opts: map[string]string{"roleArn": testRole, "maxDuration": "12h", "sourceIdentity": "false", "sessionTags": "true"}},
		{name: "no role", opts: nil, wantErr: "option roleArn is required"},
		{name: "not an ARN", opts: map[string]string{"roleArn": "reader"}, wantErr: "arn: invalid prefix"},
		{name: "a user", opts: map[string]string{"roleArn": "arn:aws:iam::123456789012:user/reader"}, wantErr: "want the ARN of an IAM role"},
		{name: "another service", opts: map[string]string{"roleArn": "arn:aws:sts::123456789012:role/reader"}, wantErr: "want the ARN of an IAM role"},
		{name: "no role name", opts: map[string]string{"roleArn": "arn:aws:iam::123456789012:role/"}, wantErr: "want the ARN of an IAM role"},
		{name: "bad account", opts: map[string]string{"roleArn": "arn:aws:iam::1234:role/reader"}, wantErr: `account "1234": want twelve digits`},
		{name: "maxDuration too short", opts: map[string]string{"roleArn": testRole, "maxDuration": "600"}, wantErr: "want 15m0s to 12h0m0s"},
		{name: "maxDuration not a duration", opts: map[string]string{"roleArn": testRole, "maxDuration": "an hour"}, wantErr: "want whole seconds or a duration"},
		{name: "sessionTags not a bool", opts: map[string]string{"roleArn": testRole, "sessionTags": "no thanks"}, wantErr: "want true or false"},
		{name: "unknown option", opts: map[string]string{"roleArn": testRole, "role": "x"}, wantErr: `unknown option "role"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.ValidateOptions(tt.opts)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ValidateOptions(%v) = %v, want %q", tt.opts, err, tt.wantErr)
			}
		})
	}
}
