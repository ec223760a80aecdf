package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
)

// awsProvider mints AWS session credentials, and fails to revoke them so
// that the broker logs the failure.
type awsProvider struct {
	now func() time.Time
}

const (
	testKeyID        = "ASIAEXAMPLEKEYID0001"
	testSecretKey    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testSessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
)

func (p *awsProvider) Mint(context.Context, Request) (Credential, error) {
	return Credential{
		AccessKeyID:     testKeyID,
		SecretAccessKey: testSecretKey,
		SessionToken:    testSessionToken,
		ExpiresAt:       p.now().Add(time.Hour),
		Subject:         "arn:aws:sts::123456789012:assumed-role/reader/alice.g-1",
		LeaseID:         "aws/creds/reader/abc",
	}, nil
}

func (p *awsProvider) ValidateOptions(map[string]string) error { return nil }

func (p *awsProvider) Release(context.Context, Credential) error {
	return errors.New("vault is down")
}

// TestAWSCredentialSharedBetweenReplicas: an AWS credential minted on one
// replica is used by another from Redis, whole, and no secret of it
// reaches a log line or an audit event.
func TestAWSCredentialSharedBetweenReplicas(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	var logs bytes.Buffer
	var audits []*fixture
	replica := func() *fixture {
		f := newReplica(t, mr, clk, "", func(c *Config) {
			c.Providers = map[string]Provider{ProviderKey("aws-prod", "sts"): &awsProvider{now: clk.Now}}
			c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		})
		audits = append(audits, f)
		return f
	}
	a, b := replica(), replica()
	ctx := context.Background()
	req := Request{GrantID: "g-1", GrantExpiresAt: clk.Now().Add(30 * time.Minute), Target: "aws-prod", Provider: "sts"}
	minted, err := a.b.Credential(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := Credential{
		AccessKeyID: testKeyID, SecretAccessKey: testSecretKey, SessionToken: testSessionToken,
		ExpiresAt: clk.Now().Add(time.Hour), Subject: "arn:aws:sts::123456789012:assumed-role/reader/alice.g-1", LeaseID: "aws/creds/reader/abc",
	}
	if diff := cmp.Diff(want, minted); diff != "" {
		t.Errorf("minted (-want +got):\n%s", diff)
	}
	shared, err := b.b.Credential(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, shared); diff != "" {
		t.Errorf("credential the other replica read from Redis (-want +got):\n%s", diff)
	}
	wantEntry := sharedEntry{
		AccessKeyID: testKeyID, SecretAccessKey: testSecretKey, SessionToken: testSessionToken,
		ExpiresAt: want.ExpiresAt, Subject: want.Subject, LeaseID: want.LeaseID,
	}
	if diff := cmp.Diff(wantEntry, sharedIn(t, mr, "jitproxy:cred:g-1:aws-prod")); diff != "" {
		t.Errorf("entry in Redis (-want +got):\n%s", diff)
	}

	b.b.Release(ctx, "g-1") // the provider fails to revoke: logged
	if !strings.Contains(logs.String(), "revoke credential") {
		t.Errorf("logs %q: want the failed revocation logged", logs.String())
	}
	var events []byte
	for _, f := range audits {
		for _, e := range f.audit.Events() {
			raw, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, raw...)
		}
	}
	for _, s := range []string{testKeyID, testSecretKey, testSessionToken} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a log line holds the secret %q:\n%s", s, logs.String())
		}
		if bytes.Contains(events, []byte(s)) {
			t.Errorf("an audit event holds the secret %q:\n%s", s, events)
		}
	}
}

// TestSharedEntryJSON: a bearer token's entry is written as it was before
// the AWS fields existed, so replicas of either version read each other's
// entries; an AWS entry carries its three secrets.
func TestSharedEntryJSON(t *testing.T) {
	expires := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		cred Credential
		json string
	}{
		{
			name: "bearer token, as before",
			cred: Credential{Token: "sa-token", ExpiresAt: expires, Subject: "system:serviceaccount:demo:reader", LeaseID: "kubernetes/creds/r/abc"},
			json: `{"token":"sa-token","expires_at":"2026-11-26T10:00:00Z","subject":"system:serviceaccount:demo:reader","lease_id":"kubernetes/creds/r/abc"}`,
		},
		{
			name: "bearer token without a lease",
			cred: Credential{Token: "sa-token", ExpiresAt: expires, Subject: "system:serviceaccount:demo:reader"},
			json: `{"token":"sa-token","expires_at":"2026-11-26T10:00:00Z","subject":"system:serviceaccount:demo:reader"}`,
		},
		{
			name: "AWS session credentials",
			cred: Credential{AccessKeyID: "ASIAX", SecretAccessKey: "sk", SessionToken: "st", ExpiresAt: expires, Subject: "arn:aws:sts::1:assumed-role/r/s"},
			json: `{"token":"","access_key_id":"ASIAX","secret_access_key":"sk","session_token":"st","expires_at":"2026-11-26T10:00:00Z","subject":"arn:aws:sts::1:assumed-role/r/s"}`,
		},
		{
			name: "IAM user keys",
			cred: Credential{AccessKeyID: "AKIAX", SecretAccessKey: "sk", ExpiresAt: expires, Subject: "vault-aws", LeaseID: "aws/creds/r/abc"},
			json: `{"token":"","access_key_id":"AKIAX","secret_access_key":"sk","expires_at":"2026-11-26T10:00:00Z","subject":"vault-aws","lease_id":"aws/creds/r/abc"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(newSharedEntry(tt.cred))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.json, string(raw)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
			var e sharedEntry
			if err := json.Unmarshal([]byte(tt.json), &e); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.cred, e.credential()); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCredentialPrintsNoSecret: however a Credential is printed or
// encoded, its secrets stay out.
func TestCredentialPrintsNoSecret(t *testing.T) {
	c := Credential{Token: "bearer-secret", AccessKeyID: testKeyID, SecretAccessKey: testSecretKey, SessionToken: testSessionToken, Subject: "s"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("credential", "cred", c)
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	printed := []string{logs.String(), string(raw), fmtAll(c)}
	for _, out := range printed {
		for _, s := range []string{"bearer-secret", testKeyID, testSecretKey, testSessionToken} {
			if strings.Contains(out, s) {
				t.Errorf("%q holds the secret %q", out, s)
			}
		}
	}
}

func fmtAll(c Credential) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		b.WriteString(fmt.Sprintf(verb, c))
	}
	return b.String()
}
