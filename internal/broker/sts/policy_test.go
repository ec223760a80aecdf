package sts

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestSessionPolicy compares the document sent to STS with a golden file,
// kept indented for reading: the document must be exactly that file,
// compacted.
func TestSessionPolicy(t *testing.T) {
	tests := []struct {
		name  string
		file  string // under testdata/policy
		perms []access.AWSPermission
	}{
		{
			name:  "one permission",
			file:  "one.json",
			perms: []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::reports/*"}}},
		},
		{
			name: "regions become a condition, sorted and without repeats",
			file: "regions.json",
			perms: []access.AWSPermission{{
				Actions:   []string{"ec2:DescribeInstances"},
				Resources: []string{"*"},
				Regions:   []string{"eu-west-1", "us-east-1", "eu-west-1"},
			}},
		},
		{
			name: "statements in the grant's order, their lists sorted",
			file: "order.json",
			perms: []access.AWSPermission{
				{Actions: []string{"s3:PutObject", "s3:GetObject", "s3:GetObject"}, Resources: []string{"arn:aws:s3:::b/y/*", "arn:aws:s3:::b/x/*"}},
				{Actions: []string{"s3:ListBucket"}, Resources: []string{"arn:aws:s3:::b"}, Regions: []string{"eu-central-1"}},
				{Actions: []string{"dynamodb:GetItem", "dynamodb:Query"}, Resources: []string{"arn:aws:dynamodb:eu-central-1:123456789012:table/orders"}},
			},
		},
		{
			name:  "characters JSON and HTML escape",
			file:  "escapes.json",
			perms: []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{`arn:aws:s3:::b/<a&b>/"q"\*`}}},
		},
		{
			name:  "non-ASCII characters are escaped",
			file:  "non-ascii.json",
			perms: []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::b/données/📊/*"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SessionPolicy(tt.perms)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "policy", tt.file)
			if *update {
				var indented bytes.Buffer
				if err := json.Indent(&indented, []byte(got), "", "  "); err != nil {
					t.Fatal(err)
				}
				indented.WriteByte('\n')
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, indented.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, raw); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.String(), got); diff != "" {
				t.Errorf("SessionPolicy() differs from %s (-want +got):\n%s", golden, diff)
			}
			again, _ := SessionPolicy(tt.perms)
			if again != got {
				t.Error("SessionPolicy() gave two documents for the same permissions")
			}
		})
	}
}

func TestSessionPolicyErrors(t *testing.T) {
	tests := []struct {
		name    string
		perms   []access.AWSPermission
		wantErr string
	}{
		{name: "no permissions", perms: nil, wantErr: "the grant has no AWS permissions"},
		{name: "no action", perms: []access.AWSPermission{{Resources: []string{"*"}}}, wantErr: "AWS permission 0 has no action"},
		{name: "no resource", perms: []access.AWSPermission{{Actions: []string{"s3:GetObject"}}, {Actions: []string{"s3:ListBucket"}}}, wantErr: "AWS permission 0 has no resource (an action on no particular resource needs \"*\")\nAWS permission 1 has no resource"},
		{name: "empty action", perms: []access.AWSPermission{{Actions: []string{""}, Resources: []string{"*"}}}, wantErr: "AWS permission 0 has an empty action, resource or region"},
		{name: "empty region", perms: []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"*"}, Regions: []string{""}}}, wantErr: "AWS permission 0 has an empty action, resource or region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SessionPolicy(tt.perms)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SessionPolicy() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestSessionPolicyLimit: a document of MaxPolicyLength characters is
// sent; one character more is refused, not replaced by a broader one.
func TestSessionPolicyLimit(t *testing.T) {
	perms := func(pad int) []access.AWSPermission {
		return []access.AWSPermission{{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::b/" + strings.Repeat("x", pad)}}}
	}
	base, err := SessionPolicy(perms(0))
	if err != nil {
		t.Fatal(err)
	}
	fits := MaxPolicyLength - len(base)
	tests := []struct {
		name    string
		pad     int
		wantLen int
		wantErr error
	}{
		{name: "at the limit", pad: fits, wantLen: MaxPolicyLength},
		{name: "one over", pad: fits + 1, wantErr: ErrPolicyTooLarge},
		{name: "far over", pad: 10 * MaxPolicyLength, wantErr: ErrPolicyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SessionPolicy(perms(tt.pad))
			if !errors.Is(err, tt.wantErr) || len(got) != tt.wantLen {
				t.Errorf("SessionPolicy() = %d characters, error %v; want %d, %v", len(got), err, tt.wantLen, tt.wantErr)
			}
		})
	}
}

// FuzzSessionPolicy: whatever the permissions, the document is either
// refused or ASCII, within the limit, and allows exactly them.
func FuzzSessionPolicy(f *testing.F) {
	f.Add("s3:GetObject", "arn:aws:s3:::b/*", "eu-west-1")
	f.Add("*", "*", "")
	f.Add("s3:Get\"Object", "arn:aws:s3:::b/é/\u2028", "us-east-1")
	f.Fuzz(func(t *testing.T, action, resource, region string) {
		p := access.AWSPermission{Actions: []string{action, action}, Resources: []string{resource}}
		if region != "" {
			p.Regions = []string{region}
		}
		doc, err := SessionPolicy([]access.AWSPermission{p, p})
		if err != nil {
			return
		}
		if len(doc) > MaxPolicyLength {
			t.Fatalf("%d characters", len(doc))
		}
		for i := range len(doc) {
			if doc[i] >= 0x80 {
				t.Fatalf("non-ASCII byte %#x at %d", doc[i], i)
			}
		}
		var got policyDocument
		if err := json.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatal(err)
		}
		st := statement{Effect: "Allow", Action: []string{toValidUTF8(action)}, Resource: []string{toValidUTF8(resource)}}
		if region != "" {
			st.Condition = map[string]map[string][]string{"StringEquals": {"aws:RequestedRegion": {toValidUTF8(region)}}}
		}
		want := policyDocument{Version: "2012-10-17", Statement: []statement{st, st}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("document read back (-want +got):\n%s", diff)
		}
	})
}

// toValidUTF8 is what encoding/json makes of a string: each byte that is
// not part of valid UTF-8 becomes U+FFFD.
func toValidUTF8(s string) string { return string([]rune(s)) }
