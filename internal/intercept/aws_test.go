package intercept

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	awsproto "github.com/jitproxy/jitproxy/internal/intercept/aws"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// The agent's placeholder keys, as `session create --aws-config` writes them.
const (
	placeholderKeyID  = "AKIAJITPROXYAGENTKEY"
	placeholderSecret = "jitproxy-placeholder-secret-access-key"
	placeholderToken  = "agent-session-token-placeholder"
)

// awsUpstream plays AWS behind the proxy: it checks every request's SigV4
// signature with the minted credential and records what arrived.
type awsUpstream struct {
	mu   sync.Mutex
	seen []*http.Request
	body [][]byte
	errs []error
}

func (u *awsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.seen = append(u.seen, r)
	u.body = append(u.body, body)
	err := verifySignature(r, body)
	u.errs = append(u.errs, err)
	u.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<Error><Code>SignatureDoesNotMatch</Code><Message>`+err.Error()+`</Message></Error>`)
		return
	}
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		io.WriteString(w, `{}`)
	case strings.Contains(string(body), "Action=GetCallerIdentity"):
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/x/y</Arn><UserId>U</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<ListBucketResult><Name>reports</Name><KeyCount>1</KeyCount><Contents><Key>q3.csv</Key><Size>3</Size></Contents></ListBucketResult>`)
	case r.Method == http.MethodGet:
		io.WriteString(w, "abc")
	}
}

// verifySignature recomputes the request's SigV4 signature over the headers
// it says it signed, with the minted credential, as AWS does.
func verifySignature(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	cred, rest, ok := strings.Cut(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 Credential="), ", SignedHeaders=")
	if !ok {
		return errors.New("no SigV4 Authorization")
	}
	signed, _, _ := strings.Cut(rest, ", Signature=")
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] != mintedAccessKeyID {
		return errors.New("not signed with the minted key")
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	check, _ := http.NewRequest(r.Method, "https://"+r.Host+r.URL.RequestURI(), nil)
	check.ContentLength = r.ContentLength
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			check.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	check.Header.Del("X-Amz-Security-Token") // the signer sets it from the credential
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	creds := aws.Credentials{AccessKeyID: mintedAccessKeyID, SecretAccessKey: mintedSecretAccessKey, SessionToken: mintedSessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, check, hash, scope[3], scope[2], when, func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = scope[3] == "s3"
	}); err != nil {
		return err
	}
	if check.Header.Get("Authorization") != auth {
		return errors.New("signature does not match")
	}
	return nil
}

func awsHarness(t *testing.T, up *awsUpstream) *harness {
	return newHarness(t, harnessOptions{
		handler:  up,
		protocol: awsproto.New(awsproto.Config{}),
		config: func(c *Config) {
			c.Targets[0].Name = "aws"
			c.Targets[0].Hosts = []string{"*.amazonaws.com", "*.*.amazonaws.com", "*.*.*.amazonaws.com"}
			c.Targets[0].Discovery = nil
		},
	})
}

// awsClientConfig is the SDK's configuration of an agent behind the proxy:
// placeholder keys, the proxy, and trust in jitproxy's CA.
func awsClientConfig(h *harness) aws.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.ca.CertPEM)
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(placeholderKeyID, placeholderSecret, placeholderToken),
		HTTPClient: &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyURL(h.proxyURL),
			TLSClientConfig: &tls.Config{RootCAs: pool},
		}, Timeout: 10 * time.Second},
		RetryMaxAttempts: 1,
	}
}

func awsGrant(perms ...access.AWSPermission) *jit.Grant {
	g := &jit.Grant{ID: "g-aws", Policy: "reports-reader", Target: "aws", User: "alice", State: jit.StateActive,
		ExpiresAt: time.Now().Add(time.Hour), Credential: jit.CredentialSpec{Provider: "sts"}}
	for _, p := range perms {
		g.Permissions = append(g.Permissions, access.Permission{AWS: &p})
	}
	return g
}

// TestAWSThroughTheProxy: the AWS SDK, signing with placeholder keys,
// reaches AWS through jitproxy with requests signed anew with the minted
// credential and nothing of the agent's credential; denials come back in
// each protocol's error format, which the SDK reads.
func TestAWSThroughTheProxy(t *testing.T) {
	up := &awsUpstream{}
	h := awsHarness(t, up)
	cfg := awsClientConfig(h)
	ctx := context.Background()
	s3c := s3.NewFromConfig(cfg) // virtual-hosted style, as the SDK defaults to
	stsc := sts.NewFromConfig(cfg)
	ddb := dynamodb.NewFromConfig(cfg)

	// No grant: each protocol's denial, with the hint.
	h.sessions.policies = []*jit.Policy{{Name: "reports-reader", Target: "aws", Kind: access.KindAWS, ClusterWide: true,
		Permissions: awsGrant(access.AWSPermission{Actions: []string{"s3:*"}, Resources: []string{"*"}}).Permissions}}
	_, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("reports")})
	wantDenied(t, "S3", err, "jitproxy denied s3:ListBucket on arn:aws:s3:::reports", "jitproxy grant request reports-reader")
	_, err = stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	wantDenied(t, "STS (query)", err, "jitproxy denied sts:GetCallerIdentity", "No access policy")
	_, err = ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
	wantDenied(t, "DynamoDB (JSON)", err, "jitproxy denied dynamodb:GetItem", "No access policy")
	_, err = lambda.NewFromConfig(cfg).GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("report-builder")})
	wantDenied(t, "Lambda (REST-JSON)", err, "jitproxy denied lambda:GetFunction")
	_, err = route53.NewFromConfig(cfg).ListHostedZones(ctx, &route53.ListHostedZonesInput{})
	wantDenied(t, "Route 53 (REST-XML)", err, "jitproxy denied route53:ListHostedZones")
	if len(up.seen) != 0 {
		t.Fatalf("%d denied requests reached the upstream", len(up.seen))
	}

	h.sessions.setGrants(awsGrant(
		access.AWSPermission{Actions: []string{"s3:ListBucket"}, Resources: []string{"arn:aws:s3:::reports"}},
		access.AWSPermission{Actions: []string{"s3:GetObject", "s3:PutObject"}, Resources: []string{"arn:aws:s3:::reports/*"}},
		access.AWSPermission{Actions: []string{"sts:GetCallerIdentity"}, Resources: []string{"*"}},
	))
	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("reports")})
	if err != nil || len(list.Contents) != 1 {
		t.Fatalf("ListObjectsV2 = %v, %v", list, err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("reports"), Key: aws.String("dir/new file.txt"), Body: bytes.NewReader([]byte("hello"))}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	// An unseekable body goes as an aws-chunked stream with a trailing
	// checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
	stream := struct{ io.Reader }{strings.NewReader("streamed")}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("reports"), Key: aws.String("streamed"), Body: stream, ContentLength: aws.Int64(8), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatalf("PutObject of a stream: %v", err)
	}
	// A key that begins with the bucket's name stays the key it was judged as.
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("reports"), Key: aws.String("reports/nested"), Body: bytes.NewReader([]byte("n"))}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if _, err := stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	_, err = s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("other"), Key: aws.String("x"), Body: bytes.NewReader([]byte("x"))})
	wantDenied(t, "PutObject elsewhere", err, "jitproxy denied s3:PutObject on arn:aws:s3:::other/x")

	// A presigned URL (made with the placeholder key) is refused, not forwarded.
	resp, err := h.agent().Get("https://reports.s3.amazonaws.com/q3.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" +
		placeholderKeyID + "%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=00")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "presigned") || !strings.Contains(string(body), "<Error>") {
		t.Errorf("presigned URL = %d %s, want 400 in S3's format, saying why", resp.StatusCode, body)
	}

	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.seen) != 5 {
		t.Fatalf("upstream got %d requests, want 5", len(up.seen))
	}
	wantPaths := []string{"/reports", "/reports/dir/new file.txt", "/reports/streamed", "/reports/reports/nested", "/"}
	hashes := map[string]string{}
	for _, r := range up.seen {
		hashes[r.URL.Path] = r.Header.Get("X-Amz-Content-Sha256")
	}
	wantHashes := map[string]string{
		"/reports":                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // the SDK's own SHA-256
		"/reports/dir/new file.txt": "UNSIGNED-PAYLOAD",
		"/reports/streamed":         "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
		"/reports/reports/nested":   "UNSIGNED-PAYLOAD",
		"/":                         "", // STS: jitproxy hashes the form itself
	}
	if diff := cmp.Diff(wantHashes, hashes); diff != "" {
		t.Errorf("payload hashes (-want +got):\n%s", diff)
	}
	if r := up.seen[2]; r.Header.Get("Content-Encoding") != "aws-chunked" || !bytes.Contains(up.body[2], []byte("x-amz-checksum-")) {
		t.Errorf("the stream arrived as %q with body %q, want an aws-chunked body with a trailing checksum", r.Header.Get("Content-Encoding"), up.body[2])
	}
	for i, r := range up.seen {
		if up.errs[i] != nil {
			t.Errorf("request %d (%s %s): %v", i, r.Method, r.URL.Path, up.errs[i])
		}
		if r.URL.Path != wantPaths[i] {
			t.Errorf("request %d path = %q, want %q (path style for the fixed upstream)", i, r.URL.Path, wantPaths[i])
		}
		if got := r.Header.Get("X-Amz-Security-Token"); got != mintedSessionToken {
			t.Errorf("request %d session token = %q, want the minted one", i, got)
		}
		// Canary: nothing of the agent's credential reaches AWS.
		var all strings.Builder
		r.Header.Write(&all)
		all.WriteString(r.URL.String())
		all.Write(up.body[i])
		for _, canary := range []string{placeholderKeyID, placeholderSecret, placeholderToken, testSecret, testSessionID} {
			if strings.Contains(all.String(), canary) {
				t.Errorf("request %d carried the agent's %q", i, canary)
			}
		}
	}
	if !bytes.Equal(up.body[1], []byte("hello")) && !bytes.Contains(up.body[1], []byte("hello")) {
		t.Errorf("PutObject body = %q", up.body[1])
	}
	// Canary: the minted secrets reach the agent in no answer and no audit event.
	for _, e := range h.audit.Events() {
		b, _ := jsonString(e)
		for _, canary := range []string{mintedSecretAccessKey, mintedSessionToken, mintedAccessKeyID, placeholderSecret} {
			if strings.Contains(b, canary) {
				t.Errorf("audit event holds %q: %s", canary, b)
			}
		}
	}
}

func wantDenied(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("%s: error %v is not an AWS API error", what, err)
	}
	if apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("%s: code %q, want AccessDenied (%v)", what, apiErr.ErrorCode(), err)
	}
	for _, w := range wants {
		if !strings.Contains(apiErr.ErrorMessage(), w) {
			t.Errorf("%s: message %q does not say %q", what, apiErr.ErrorMessage(), w)
		}
	}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
