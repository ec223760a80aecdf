package vault

import (
	"context"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

// Vault's answers, as its AWS secrets engine gives them.
const (
	assumedRoleAnswer = `{"lease_id":"aws/sts/deploy/sts1","lease_duration":1799,"renewable":false,"data":{
		"access_key":"ASIAVAULTSTS","secret_key":"sts-secret","session_token":"sts-session-token",
		"arn":"arn:aws:sts::123456789012:assumed-role/reader/g-1.alice"}}`
	federationAnswer = `{"lease_id":"aws/sts/deploy/fed1","lease_duration":1799,"renewable":false,"data":{
		"access_key":"ASIAVAULTFED","secret_key":"fed-secret","session_token":"fed-session-token"}}`
	legacyKeyAnswer = `{"lease_id":"aws/creds/deploy/old1","lease_duration":1799,"renewable":false,"data":{
		"access_key":"ASIAVAULTOLD","secret_key":"old-secret","security_token":"old-session-token"}}`
	noLeaseAnswer = `{"data":{"access_key":"ASIAVAULTNL","secret_key":"nl-secret","session_token":"nl-session-token","ttl":899}}`
	iamUserAnswer = `{"lease_id":"aws/creds/deploy/iam1","lease_duration":2764800,"renewable":true,"data":{
		"access_key":"AKIAVAULTIAM","secret_key":"iam-secret","session_token":null}}`
	iamUserNoLeaseAnswer = `{"data":{"access_key":"AKIAVAULTIAM","secret_key":"iam-secret"}}`
	noSecretAnswer       = `{"lease_id":"aws/creds/deploy/bad1","lease_duration":2764800,"data":{"access_key":"AKIAVAULTIAM"}}`
	noLifetimeAnswer     = `{"data":{"access_key":"ASIAX","secret_key":"s","session_token":"t"}}`
)

func newAWSProvider(t *testing.T, f *fakeVault) (*AWSProvider, *clock) {
	t.Helper()
	c, login := newClient(t, f, false)
	clk := newClock()
	p, err := NewAWS(AWSConfig{Client: c, Login: login, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

// start is the time on a new clock.
var start = newClock().t

var alice = access.Caller{Session: "s-1", Agent: "claude-code", User: "alice"}

func TestAWSMint(t *testing.T) {
	tests := []struct {
		name      string
		opts      map[string]string
		remaining time.Duration
		answers   map[string]string
		wantCall  string
		wantBody  map[string]any
		want      broker.Credential
	}{
		{
			name: "assumed_role from sts/", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/sts/deploy": assumedRoleAnswer},
			wantCall: "PUT /v1/aws/sts/deploy", wantBody: map[string]any{"ttl": "1800s", "role_session_name": "g-1.alice"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTSTS", SecretAccessKey: "sts-secret", SessionToken: "sts-session-token", ExpiresAt: start.Add(1799 * time.Second), Subject: "arn:aws:sts::123456789012:assumed-role/reader/g-1.alice"},
		},
		{
			name: "assumed_role of one of the Vault role's ARNs", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole, "roleArn": "arn:aws:iam::123456789012:role/reader"}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/sts/deploy": assumedRoleAnswer},
			wantCall: "PUT /v1/aws/sts/deploy", wantBody: map[string]any{"ttl": "1800s", "role_session_name": "g-1.alice", "role_arn": "arn:aws:iam::123456789012:role/reader"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTSTS", SecretAccessKey: "sts-secret", SessionToken: "sts-session-token", ExpiresAt: start.Add(1799 * time.Second), Subject: "arn:aws:sts::123456789012:assumed-role/reader/g-1.alice"},
		},
		{
			name: "a short grant asks STS's least", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole}, remaining: time.Minute,
			answers:  map[string]string{"/v1/aws/sts/deploy": assumedRoleAnswer},
			wantCall: "PUT /v1/aws/sts/deploy", wantBody: map[string]any{"ttl": "900s", "role_session_name": "g-1.alice"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTSTS", SecretAccessKey: "sts-secret", SessionToken: "sts-session-token", ExpiresAt: start.Add(1799 * time.Second), Subject: "arn:aws:sts::123456789012:assumed-role/reader/g-1.alice"},
		},
		{
			name: "a long grant is capped at MaxTTL", opts: map[string]string{"role": "deploy", "credentialType": FederationToken}, remaining: 5 * time.Hour,
			answers:  map[string]string{"/v1/aws/sts/deploy": federationAnswer},
			wantCall: "PUT /v1/aws/sts/deploy", wantBody: map[string]any{"ttl": "3600s"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTFED", SecretAccessKey: "fed-secret", SessionToken: "fed-session-token", ExpiresAt: start.Add(1799 * time.Second), Subject: "vault:aws/roles/deploy"},
		},
		{
			name: "iam_user from creds/, with its lease", opts: map[string]string{"role": "deploy", "credentialType": IAMUser}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/creds/deploy": iamUserAnswer},
			wantCall: "PUT /v1/aws/creds/deploy", wantBody: nil,
			want: broker.Credential{AccessKeyID: "AKIAVAULTIAM", SecretAccessKey: "iam-secret", ExpiresAt: start.Add(2764800 * time.Second), Subject: "vault:aws/roles/deploy", LeaseID: "aws/creds/deploy/iam1"},
		},
		{
			name: "no type: STS keys, by their older name", opts: map[string]string{"role": "deploy"}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/creds/deploy": legacyKeyAnswer},
			wantCall: "PUT /v1/aws/creds/deploy", wantBody: map[string]any{"ttl": "1800s", "role_session_name": "g-1.alice"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTOLD", SecretAccessKey: "old-secret", SessionToken: "old-session-token", ExpiresAt: start.Add(1799 * time.Second), Subject: "vault:aws/roles/deploy"},
		},
		{
			name: "no type: IAM user keys", opts: map[string]string{"role": "deploy"}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/creds/deploy": iamUserAnswer},
			wantCall: "PUT /v1/aws/creds/deploy", wantBody: map[string]any{"ttl": "1800s", "role_session_name": "g-1.alice"},
			want: broker.Credential{AccessKeyID: "AKIAVAULTIAM", SecretAccessKey: "iam-secret", ExpiresAt: start.Add(2764800 * time.Second), Subject: "vault:aws/roles/deploy", LeaseID: "aws/creds/deploy/iam1"},
		},
		{
			name: "a Vault role without leases", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole}, remaining: 30 * time.Minute,
			answers:  map[string]string{"/v1/aws/sts/deploy": noLeaseAnswer},
			wantCall: "PUT /v1/aws/sts/deploy", wantBody: map[string]any{"ttl": "1800s", "role_session_name": "g-1.alice"},
			want: broker.Credential{AccessKeyID: "ASIAVAULTNL", SecretAccessKey: "nl-secret", SessionToken: "nl-session-token", ExpiresAt: start.Add(899 * time.Second), Subject: "vault:aws/roles/deploy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeVault{answers: tt.answers}
			p, clk := newAWSProvider(t, f)
			req := broker.Request{GrantID: "g-1", GrantExpiresAt: clk.t.Add(tt.remaining), Target: "aws-prod", Provider: AWSName, Options: tt.opts, Caller: alice}
			c, err := p.Mint(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.want, c); diff != "" {
				t.Errorf("credential (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff([]string{"GET /v1/auth/token/lookup-self", tt.wantCall}, f.log()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tt.wantBody, f.bodies[1]); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSMintFailsClosed: an answer that cannot be used is an error, and
// the lease Vault gave with it is revoked.
func TestAWSMintFailsClosed(t *testing.T) {
	tests := []struct {
		name      string
		opts      map[string]string
		answers   map[string]string
		deny      bool
		wantErr   string
		wantCalls []string
	}{
		{
			name: "iam_user asked, STS keys given", opts: map[string]string{"role": "deploy", "credentialType": IAMUser},
			answers: map[string]string{"/v1/aws/creds/deploy": assumedRoleAnswer}, wantErr: "the Vault role is of an STS type",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/creds/deploy", "PUT /v1/sys/leases/revoke"},
		},
		{
			name: "assumed_role asked, IAM user keys given", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole},
			answers: map[string]string{"/v1/aws/sts/deploy": iamUserAnswer}, wantErr: "the Vault role is iam_user",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/sts/deploy", "PUT /v1/sys/leases/revoke"},
		},
		{
			name: "no secret key", opts: map[string]string{"role": "deploy"},
			answers: map[string]string{"/v1/aws/creds/deploy": noSecretAnswer}, wantErr: "answer without access_key or secret_key",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/creds/deploy", "PUT /v1/sys/leases/revoke"},
		},
		{
			name: "IAM user keys without a lease", opts: map[string]string{"role": "deploy"},
			answers: map[string]string{"/v1/aws/creds/deploy": iamUserNoLeaseAnswer}, wantErr: "could not be revoked at grant end",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/creds/deploy"},
		},
		{
			name: "no lifetime", opts: map[string]string{"role": "deploy"},
			answers: map[string]string{"/v1/aws/creds/deploy": noLifetimeAnswer}, wantErr: "answer without a lifetime",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/creds/deploy"},
		},
		{
			name: "empty answer", opts: map[string]string{"role": "deploy"},
			answers: map[string]string{"/v1/aws/creds/deploy": ""}, wantErr: "empty answer",
			wantCalls: []string{"GET /v1/auth/token/lookup-self", "PUT /v1/aws/creds/deploy"},
		},
		{
			name: "Vault refuses", opts: map[string]string{"role": "deploy"}, deny: true, wantErr: "permission denied",
			wantCalls: []string{"GET /v1/auth/token/lookup-self"},
		},
		{name: "no role", opts: map[string]string{"credentialType": IAMUser}, wantErr: "names no Vault role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeVault{answers: tt.answers, deny: tt.deny}
			p, clk := newAWSProvider(t, f)
			req := broker.Request{GrantID: "g-1", GrantExpiresAt: clk.t.Add(time.Hour), Options: tt.opts, Caller: alice}
			c, err := p.Mint(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Mint() error = %v, want %q", err, tt.wantErr)
			}
			if diff := gocmp.Diff(broker.Credential{}, c); diff != "" {
				t.Errorf("a failed mint returned a credential (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tt.wantCalls, f.log()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSRelease: IAM user keys are revoked through their lease, with a
// fresh login if Vault forgot jitproxy's token; STS keys have nothing to
// revoke.
func TestAWSRelease(t *testing.T) {
	f := &fakeVault{answers: map[string]string{"/v1/aws/creds/deploy": iamUserAnswer, "/v1/aws/sts/deploy": assumedRoleAnswer}}
	c, login := newClient(t, f, true)
	clk := newClock()
	p, err := NewAWS(AWSConfig{Client: c, Login: login, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mint := func(ctype string) broker.Credential {
		t.Helper()
		req := broker.Request{GrantID: "g-1", GrantExpiresAt: clk.t.Add(time.Hour), Options: map[string]string{"role": "deploy", "credentialType": ctype}, Caller: alice}
		c, err := p.Mint(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	iam, sts := mint(IAMUser), mint(AssumedRole)
	f.mu.Lock()
	f.forgotten = map[string]bool{"s.login-token": true}
	f.loginToken = "s.second-login-token"
	f.mu.Unlock()
	if err := p.Release(ctx, iam); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, sts); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PUT /v1/auth/kubernetes/login", "PUT /v1/aws/creds/deploy", "PUT /v1/aws/sts/deploy",
		"PUT /v1/sys/leases/revoke", "PUT /v1/auth/kubernetes/login", "PUT /v1/sys/leases/revoke",
	}
	if diff := gocmp.Diff(want, f.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if got := f.bodies[5]["lease_id"]; got != "aws/creds/deploy/iam1" {
		t.Errorf("revoked lease %v, want aws/creds/deploy/iam1", got)
	}
}

func TestAWSValidateOptions(t *testing.T) {
	p, _ := newAWSProvider(t, &fakeVault{})
	tests := []struct {
		name    string
		opts    map[string]string
		wantErr string
	}{
		{name: "role only", opts: map[string]string{"role": "deploy"}},
		{name: "every type", opts: map[string]string{"role": "deploy", "credentialType": FederationToken}},
		{name: "assumed_role with an ARN", opts: map[string]string{"role": "deploy", "credentialType": AssumedRole, "roleArn": "arn:aws:iam::123456789012:role/reader"}},
		{name: "an ARN, no type", opts: map[string]string{"role": "deploy", "roleArn": "arn:aws:iam::123456789012:role/reader"}},
		{name: "no role", opts: map[string]string{"credentialType": IAMUser}, wantErr: "option role is required"},
		{name: "unknown type", opts: map[string]string{"role": "deploy", "credentialType": "session_token"}, wantErr: `option credentialType "session_token": want assumed_role, federation_token or iam_user`},
		{name: "ARN for another type", opts: map[string]string{"role": "deploy", "credentialType": IAMUser, "roleArn": "arn:aws:iam::123456789012:role/reader"}, wantErr: "option roleArn is for credentialType assumed_role, not iam_user"},
		{name: "not a role ARN", opts: map[string]string{"role": "deploy", "roleArn": "arn:aws:iam::123456789012:user/bob"}, wantErr: "want the ARN of an IAM role"},
		{name: "unknown option", opts: map[string]string{"role": "deploy", "policyDocument": "{}"}, wantErr: `unknown option "policyDocument"`},
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

func TestAWSSessionName(t *testing.T) {
	tests := []struct {
		grant, user, want string
	}{
		{grant: "g-1", user: "alice@example.com", want: "g-1.alice@example.com"},
		{grant: "g-1", user: "", want: "g-1"},
		{grant: "g-1", user: "Élise Dupont", want: "g-1._lise_Dupont"},
		{grant: "g-1", user: strings.Repeat("a", 70), want: "g-1." + strings.Repeat("a", 60)},
	}
	for _, tt := range tests {
		if got := awsSessionName(tt.grant, tt.user); got != tt.want {
			t.Errorf("awsSessionName(%q, %q) = %q, want %q", tt.grant, tt.user, got, tt.want)
		}
	}
}
