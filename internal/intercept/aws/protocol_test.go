package aws

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

func TestOutboundHeader(t *testing.T) {
	in := http.Header{
		"Authorization":                {"AWS4-HMAC-SHA256 Credential=AKIAJITPROXYAGENTKEY/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"},
		"X-Amz-Security-Token":         {"agent-token"},
		"X-Amz-Date":                   {"20260101T000000Z"},
		"X-Amz-Content-Sha256":         {"UNSIGNED-PAYLOAD"},
		"X-Amz-Meta-Owner":             {"alice"},
		"X-Amz-Checksum-Crc32":         {"AAAAAA=="},
		"Content-Type":                 {"text/plain"},
		"Range":                        {"bytes=0-9"},
		"Cookie":                       {"session=1"},
		"Proxy-Authorization":          {"Basic eDp5"},
		"X-Forwarded-For":              {"10.0.0.1"},
		"x-amz-credential":             {"AKIA/..."},
		"X-Amzn-Trace-Id":              {"Root=1"},
		"Amz-Sdk-Invocation-Id":        {"abc"},
		"X-Amz-Server-Side-Encryption": {"aws:kms"},
	}
	got := New(Config{}).OutboundHeader(in)
	var names []string
	for k := range got {
		names = append(names, k)
	}
	slices.Sort(names)
	want := []string{"Amz-Sdk-Invocation-Id", "Content-Type", "Range", "X-Amz-Checksum-Crc32", "X-Amz-Content-Sha256", "X-Amz-Meta-Owner", "X-Amz-Server-Side-Encryption"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("OutboundHeader kept (-want +got):\n%s", diff)
	}
}

func TestAuthorize(t *testing.T) {
	cred := broker.Credential{AccessKeyID: "ASIAMINTED", SecretAccessKey: secret.Value("minted-secret"), SessionToken: secret.Value("minted-token")}
	s3Get := access.Action{Method: "GET", Path: "/b/k", AWS: &access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "eu-west-1"}}
	tests := []struct {
		name     string
		hash     string
		body     string
		cred     broker.Credential
		action   access.Action
		wantHash string // the payload hash signed; "" with wantErr
		wantErr  string
	}{
		{name: "unsigned payload", hash: "UNSIGNED-PAYLOAD", cred: cred, action: s3Get, wantHash: "UNSIGNED-PAYLOAD"},
		{name: "streaming with trailer", hash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", cred: cred, action: s3Get, wantHash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
		{name: "the agent's SHA-256", hash: strings.Repeat("ab", 32), cred: cred, action: s3Get, wantHash: strings.Repeat("ab", 32)},
		// No header: jitproxy hashes the body (TestAWSThroughTheProxy checks
		// the signature) and leaves it readable.
		{name: "no hash: jitproxy hashes the body", body: "Action=GetCallerIdentity&Version=2011-06-15", cred: cred, action: s3Get},
		{name: "signed chunks", hash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", cred: cred, action: s3Get, wantErr: "signed chunks"},
		{name: "a hash of nothing known", hash: "MD5-PLEASE", cred: cred, action: s3Get, wantErr: "neither a SHA-256"},
		{name: "a bearer token", hash: "UNSIGNED-PAYLOAD", cred: broker.Credential{Token: secret.Value("t")}, action: s3Get, wantErr: "not an AWS key"},
		{name: "no AWS action", hash: "UNSIGNED-PAYLOAD", cred: cred, action: access.Action{}, wantErr: "not classified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "https://127.0.0.1:9000/b/k", strings.NewReader(tt.body))
			if tt.body == "" {
				r.Body, r.ContentLength = http.NoBody, 0
			}
			if tt.hash != "" {
				r.Header.Set("X-Amz-Content-Sha256", tt.hash)
			}
			err := New(Config{}).Authorize(r, tt.action, tt.cred)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authorize() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			auth := r.Header.Get("Authorization")
			if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=ASIAMINTED/") || !strings.Contains(auth, "/eu-west-1/s3/aws4_request") {
				t.Errorf("Authorization = %q", auth)
			}
			if got := r.Header.Get("X-Amz-Security-Token"); got != "minted-token" {
				t.Errorf("X-Amz-Security-Token = %q", got)
			}
			if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != tt.wantHash {
				t.Errorf("X-Amz-Content-Sha256 = %q, want %q", h, tt.wantHash)
			}
			if tt.body != "" {
				b, _ := io.ReadAll(r.Body)
				if string(b) != tt.body {
					t.Errorf("body after signing = %q", b)
				}
			}
		})
	}
}

// TestWriteError: each protocol family gets its own error document.
func TestWriteError(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		host   string
		check  func(t *testing.T, body []byte)
	}{
		{name: "S3", host: "reports.s3.amazonaws.com", check: func(t *testing.T, b []byte) {
			var e struct {
				XMLName xml.Name `xml:"Error"`
				Code    string
				Message string
			}
			if err := xml.Unmarshal(b, &e); err != nil || e.Code != "AccessDenied" || e.Message != "no" {
				t.Errorf("S3 error %s: %+v %v", b, e, err)
			}
		}},
		{name: "query", host: "sts.amazonaws.com", check: func(t *testing.T, b []byte) {
			var e struct {
				XMLName xml.Name `xml:"ErrorResponse"`
				Error   struct{ Type, Code, Message string }
			}
			if err := xml.Unmarshal(b, &e); err != nil || e.Error.Code != "AccessDenied" || e.Error.Type != "Sender" {
				t.Errorf("query error %s: %+v %v", b, e, err)
			}
		}},
		{name: "JSON", host: "dynamodb.us-east-1.amazonaws.com", header: http.Header{"X-Amz-Target": {"DynamoDB_20120810.GetItem"}}, check: func(t *testing.T, b []byte) {
			var e map[string]string
			if err := json.Unmarshal(b, &e); err != nil || e["__type"] != "AccessDenied" || e["message"] != "no" {
				t.Errorf("JSON error %s: %v", b, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://"+tt.host+"/", nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			New(Config{}).WriteError(w, r, http.StatusForbidden, "no")
			if w.Code != http.StatusForbidden {
				t.Errorf("status %d", w.Code)
			}
			tt.check(t, w.Body.Bytes())
		})
	}
}
