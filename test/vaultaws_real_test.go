package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/jitproxy/jitproxy/test/servers"
)

// vaultAWSAccessPolicy lets developers read the reports bucket at once,
// with keys from the Vault role reports: a format of the policy's name and
// its credential options.
const vaultAWSAccessPolicy = `apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: %s}
spec:
  description: List and read objects of the reports bucket, with keys from Vault.
  target: aws
  subjects: {groups: [developers]}
  permissions:
    - actions: [s3:ListBucket]
      resources: ["arn:aws:s3:::reports"]
    - actions: [s3:GetObject]
      resources: ["arn:aws:s3:::reports/*"]
  duration: {default: 30m, max: 1h}
  credential:
    provider: vault-aws
    options: %s
`

// vaultAWSRolePolicy is the Vault role's policy_document: what Vault asks
// STS to narrow the assumed role's session to, the same permissions as
// the access policy's.
const vaultAWSRolePolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::reports"]},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::reports/*"]}
  ]
}`

// TestVaultAWSRealMinIO walks the AWS story with keys from Vault's AWS
// secrets engine (provider vault-aws, credential type assumed_role): the
// real jitproxy binary, a real Vault, and MinIO as S3 and STS behind
// stsShim. The agent (the AWS SDK for Go through HTTPS_PROXY) is denied
// with the hint, granted, lists and reads; a write is denied by jitproxy;
// the minted keys used directly are refused writes by MinIO itself (the
// Vault role's policy_document, sent by Vault as the session policy);
// revoke, denied; and the keys appear in no output.
func TestVaultAWSRealMinIO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startAWSWorld(ctx, t)
	vault, err := servers.StartVault(ctx, w.dir)
	if err != nil {
		t.Fatal(err)
	}
	w.track(vault.Process)
	shim := newSTSShim(t, w.minio)
	configureVaultAWS(ctx, t, vault, w.minio, shim.URL)

	// reports-vault names the credential type, and jitproxy asks
	// aws/sts/reports; reports-vault-creds does not, and jitproxy asks
	// aws/creds/reports, which serves the role's type.
	w.write("access/reports-vault.yaml", fmt.Sprintf(vaultAWSAccessPolicy, "reports-vault", "{role: reports, credentialType: assumed_role}"))
	w.write("access/reports-vault-creds.yaml", fmt.Sprintf(vaultAWSAccessPolicy, "reports-vault-creds", "{role: reports}"))
	cfg := w.config(fmt.Sprintf(`
vault:
  address: %s
  auth: {method: token, token_file: %s}
targets:
  - name: aws
    kind: aws
    upstream: %s
    ca_file: %s
    vault_mount: aws
    aws:
      region: us-east-1
      sts: {disabled: true}
`, vault.Addr, w.write("vault-token", vault.RootToken), w.minio.URL, w.minio.CAFile))
	p := startJitproxy(t, cfg, w.stateDir(), w.out)
	ses := w.session(p)
	sdk := agentS3(t, ses.proxyURL, ses.caFile)
	list := func() (*s3.ListObjectsV2Output, error) {
		return sdk.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("reports")})
	}

	// Denied, in S3's error format, with what to do about it.
	_, err = list()
	wantAPIError(t, "list before the grant", err, "AccessDenied", "jitproxy denied s3:ListBucket on arn:aws:s3:::reports", "jitproxy grant request reports-vault")

	id := grantID(t, p.mustCLI("grant", "request", "reports-vault", "--as", "dev", "--reason", "quarterly report"))
	got, err := list()
	if err != nil {
		t.Fatalf("list with the grant: %v", err)
	}
	var keys []string
	for _, o := range got.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if len(keys) != 1 || keys[0] != "q3.csv" {
		t.Errorf("list with the grant = %q, want [q3.csv]", keys)
	}
	obj, err := sdk.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String("q3.csv")})
	if err != nil {
		t.Fatalf("get with the grant: %v", err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	w.out.add("agent s3 object", string(body))
	if !strings.Contains(string(body), "q3,42") {
		t.Errorf("get with the grant = %q", body)
	}

	// A write is not in the grant: jitproxy denies it.
	_, err = sdk.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("reports"), Key: aws.String("new.txt"), Body: strings.NewReader("x")})
	wantAPIError(t, "put with a read grant", err, "AccessDenied", "jitproxy denied s3:PutObject on arn:aws:s3:::reports/new.txt")

	// The keys Vault minted, used directly, can do no more than the Vault
	// role's policy_document.
	minted := mintedAWSKeys(t, w.redis.Addr)
	if len(minted) != 1 {
		t.Fatalf("found %d minted AWS credentials in Redis, want 1", len(minted))
	}
	checkVaultAWSKeys(ctx, t, w.minio, minted[0])
	if n := shim.callerIdentities.Load(); n == 0 {
		t.Error("Vault never called GetCallerIdentity with MinIO's root keys: the shim played no part")
	}

	p.mustCLI("grant", "revoke", id, "--as", "dev", "--reason", "done")
	_, err = list()
	wantAPIError(t, "list after revoke", err, "AccessDenied", "jitproxy denied s3:ListBucket")

	// Without credentialType, through aws/creds/reports: the same kind of
	// keys, as narrow.
	id = grantID(t, p.mustCLI("grant", "request", "reports-vault-creds", "--as", "dev", "--reason", "again"))
	if _, err := list(); err != nil {
		t.Fatalf("list with the grant of reports-vault-creds: %v", err)
	}
	var fresh []aws.Credentials
	for _, k := range mintedAWSKeys(t, w.redis.Addr) {
		if k.AccessKeyID != minted[0].AccessKeyID {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("found %d new minted AWS credentials in Redis, want 1", len(fresh))
	}
	checkVaultAWSKeys(ctx, t, w.minio, fresh[0])
	minted = append(minted, fresh...)
	p.mustCLI("grant", "revoke", id, "--as", "dev", "--reason", "done")

	p.stop()
	w.checkCanaries(minted, map[string]string{
		"Vault's root token":              vault.RootToken,
		"Vault's AWS secret (MinIO root)": w.minio.RootPassword,
	})
	var minting int
	for _, e := range p.auditEvents() {
		if e["type"] == "credential.minted" {
			minting++
		}
	}
	if minting != 2 {
		t.Errorf("%d credential.minted audit events, want 2", minting)
	}
}

// checkVaultAWSKeys checks, using keys directly against MinIO, that they
// are an assumed role's (a session token) narrowed by the Vault role's
// policy_document: the reports bucket can be listed, nothing written, no
// other bucket listed. MinIO enforces the session policy Vault sent with
// AssumeRole; the keys would otherwise have all of root's rights.
func checkVaultAWSKeys(ctx context.Context, t *testing.T, m *servers.MinIO, k aws.Credentials) {
	t.Helper()
	if k.SessionToken == "" {
		t.Errorf("the minted credential has no session token: not assumed-role keys")
	}
	direct := m.S3(k)
	if _, err := direct.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("reports")}); err != nil {
		t.Errorf("the minted credential cannot list its own bucket directly: %v", err)
	}
	for _, b := range []string{"reports", "other"} {
		_, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("direct"), Body: strings.NewReader("x")})
		wantAPIError(t, "minted credential used directly to write to "+b, err, "AccessDenied")
	}
	_, err := direct.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("other")})
	wantAPIError(t, "minted credential used directly to list other", err, "AccessDenied")
}

// stsShim stands where MinIO lacks an AWS API Vault needs: since 1.19
// Vault's AWS secrets engine checks each STS client it makes with
// sts:GetCallerIdentity, which MinIO does not implement, and gives up
// ("could not obtain sts client"). The shim answers that call itself (as
// the root of account 123456789012, which MinIO's root user stands for)
// and forwards every other request to MinIO unchanged, Host header
// included, so that Vault's SigV4 signature still verifies there: the
// AssumeRole that mints the keys is MinIO's own. It is plain HTTP on
// 127.0.0.1, so Vault's AWS SDK needs no CA (it would trust
// AWS_CA_BUNDLE from the environment, not SSL_CERT_FILE). It checks no
// signature; it counts the GetCallerIdentity calls made with MinIO's
// root keys.
type stsShim struct {
	*httptest.Server
	callerIdentities atomic.Int64
}

const callerIdentityXML = `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:root</Arn>
    <UserId>123456789012</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>jitproxy-test-shim</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>
`

// newSTSShim starts an stsShim in front of m, closed when the test ends.
func newSTSShim(t *testing.T, m *servers.MinIO) *stsShim {
	t.Helper()
	upstream, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.Host = r.In.Host // signed by Vault
		},
		Transport: m.HTTPClient().Transport,
	}
	s := &stsShim{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			if form, err := url.ParseQuery(string(b)); err == nil && form.Get("Action") == "GetCallerIdentity" {
				if strings.Contains(r.Header.Get("Authorization"), "Credential="+m.RootUser+"/") {
					s.callerIdentities.Add(1)
				}
				w.Header().Set("Content-Type", "text/xml")
				io.WriteString(w, callerIdentityXML)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// configureVaultAWS sets up Vault's AWS secrets engine at aws: MinIO's
// root keys, STS and IAM at the shim, and the role reports, an assumed
// role narrowed by vaultAWSRolePolicy.
func configureVaultAWS(ctx context.Context, t *testing.T, v *servers.Vault, m *servers.MinIO, shimURL string) {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	cfg.Timeout = 30 * time.Second
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken)
	if err := c.Sys().MountWithContext(ctx, "aws", &vaultapi.MountInput{Type: "aws"}); err != nil {
		t.Fatalf("enable the aws secrets engine: %v", err)
	}
	for path, data := range map[string]map[string]any{
		"aws/config/root": {
			"access_key": m.RootUser, "secret_key": m.RootPassword, "region": m.Region,
			"sts_endpoint": shimURL, "iam_endpoint": shimURL,
		},
		"aws/roles/reports": {
			"credential_type": "assumed_role", "role_arns": servers.AssumeRoleARN,
			"policy_document": vaultAWSRolePolicy, "default_sts_ttl": 900, "max_sts_ttl": 3600,
		},
	} {
		if _, err := c.Logical().WriteWithContext(ctx, path, data); err != nil {
			t.Fatalf("vault write %s: %v", path, err)
		}
	}
}
