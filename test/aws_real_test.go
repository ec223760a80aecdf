package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/test/servers"
)

// awsAccessPolicy lets developers read and upload in one bucket, at once.
const awsAccessPolicy = `apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reports-editor}
spec:
  description: List, read and upload objects of the reports bucket.
  target: aws
  subjects: {groups: [developers]}
  permissions:
    - actions: [s3:ListBucket, s3:ListBucketMultipartUploads]
      resources: ["arn:aws:s3:::reports"]
    - actions: [s3:GetObject, s3:PutObject, s3:AbortMultipartUpload, s3:ListMultipartUploadParts]
      resources: ["arn:aws:s3:::reports/*"]
  duration: {default: 30m, max: 1h}
  credential:
    provider: sts
    options: {roleArn: "%s", sourceIdentity: "false", sessionTags: "false"}
`

// awsAgent runs the real aws CLI as an agent would: the session's AWS
// config (placeholder keys, jitproxy's CA), HTTPS_PROXY, a private HOME,
// and nothing else.
type awsAgent struct {
	t      *testing.T
	aws    string
	env    []string
	out    *outputs
	stdout func(string)
}

func (a *awsAgent) run(args ...string) (string, error) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.aws, args...)
	cmd.Env = a.env
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	a.out.add("aws cli", b.String())
	return b.String(), err
}

func (a *awsAgent) mustRun(args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err != nil {
		a.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (a *awsAgent) mustFail(wants []string, args ...string) {
	a.t.Helper()
	out, err := a.run(args...)
	if err == nil {
		a.t.Fatalf("aws %s succeeded, want a failure:\n%s", strings.Join(args, " "), out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			a.t.Errorf("aws %s failed without %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
}

// awsCLIPath finds the aws CLI: $AWS_CLI, else the one on PATH (resolved
// through pyenv's shim, which needs the real HOME, when it is one).
func awsCLIPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AWS_CLI"); p != "" {
		return p
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test-env`")
	}
	if strings.Contains(p, "/shims/") {
		if out, err := exec.Command("pyenv", "which", "aws").Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	return p
}

// TestAWSRealMinIO walks the AWS story with the real jitproxy binary, the
// real aws CLI and the AWS SDK for Go, against MinIO as S3 and STS: denied
// with the hint, grant, list/get/multipart upload, a write elsewhere denied
// by jitproxy and, with the minted credential used directly, by MinIO
// itself (the session policy), revoke, denied.
func TestAWSRealMinIO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startAWSWorld(ctx, t)
	minio := w.minio
	root := minio.RootCredentials()
	ownCreds := w.write("jitproxy-aws-credentials", fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", root.AccessKeyID, root.SecretAccessKey))
	w.write("access/reports-editor.yaml", fmt.Sprintf(awsAccessPolicy, servers.AssumeRoleARN))
	cfg := w.config(fmt.Sprintf(`
targets:
  - name: aws
    kind: aws
    upstream: %s
    ca_file: %s
    aws:
      region: us-east-1
      sts: {endpoint: %s, credentials_file: %s}
`, minio.URL, minio.CAFile, minio.URL, ownCreds))

	out := w.out
	p := startJitproxy(t, cfg, w.stateDir(), out)
	ses := w.session(p)
	home := filepath.Join(w.dir, "agent", "home")
	os.MkdirAll(home, 0o700)
	agent := &awsAgent{t: t, aws: awsCLIPath(t), out: out, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "HTTPS_PROXY=" + ses.proxyURL, "NO_PROXY=",
		"AWS_CONFIG_FILE=" + ses.awsConfig, "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=",
	}}
	t.Logf("aws CLI: %s", agent.mustRun("--version"))

	// Denied, in S3's error format, with what to do about it.
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:ListBucket on arn:aws:s3:::reports", "jitproxy grant request reports-editor"}, "s3", "ls", "s3://reports")

	id := grantID(t, p.mustCLI("grant", "request", "reports-editor", "--as", "dev", "--reason", "quarterly report"))
	if got := agent.mustRun("s3", "ls", "s3://reports"); !strings.Contains(got, "q3.csv") {
		t.Errorf("s3 ls = %q, want q3.csv", got)
	}
	if got := agent.mustRun("s3", "cp", "s3://reports/q3.csv", "-"); !strings.Contains(got, "q3,42") {
		t.Errorf("s3 cp to stdout = %q", got)
	}
	// Large enough for a multipart upload (the CLI's threshold is 8 MiB).
	big := make([]byte, 9<<20)
	rand.Read(big)
	bigFile := w.write("agent/big.bin", string(big))
	agent.mustRun("s3", "cp", bigFile, "s3://reports/uploads/big.bin")
	got, err := minio.S3(root).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String("uploads/big.bin")})
	if err != nil {
		t.Fatalf("the upload is not in MinIO: %v", err)
	}
	stored, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(stored, big) {
		t.Errorf("MinIO holds %d bytes, want the %d uploaded", len(stored), len(big))
	}
	small := w.write("agent/small.txt", "hello")
	agent.mustRun("s3", "cp", small, "s3://reports/small.txt")

	// A write to another bucket is denied by jitproxy.
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:PutObject on arn:aws:s3:::other/x.txt"}, "s3", "cp", small, "s3://other/x.txt")

	// The AWS SDK for Go through HTTPS_PROXY, virtual-hosted style.
	sdk := agentS3(t, ses.proxyURL, ses.caFile)
	if _, err := sdk.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String("q3.csv")}); err != nil {
		t.Errorf("SDK GetObject: %v", err)
	}
	_, err = sdk.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("other"), Key: aws.String("y"), Body: strings.NewReader("y")})
	wantAPIError(t, "SDK PutObject to another bucket", err, "AccessDenied", "jitproxy denied")

	// The minted credential itself can do no more than the grant: MinIO
	// refuses it the write to another bucket (the session policy).
	minted := mintedAWSKeys(t, w.redis.Addr)
	if len(minted) != 1 {
		t.Fatalf("found %d minted AWS credentials in Redis, want 1", len(minted))
	}
	direct := minio.S3(minted[0])
	if _, err := direct.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("reports")}); err != nil {
		t.Errorf("the minted credential cannot list its own bucket directly: %v", err)
	}
	_, err = direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("other"), Key: aws.String("direct"), Body: strings.NewReader("x")})
	wantAPIError(t, "minted credential used directly on another bucket", err, "AccessDenied")

	p.mustCLI("grant", "revoke", id, "--as", "dev", "--reason", "done")
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:ListBucket"}, "s3", "ls", "s3://reports")

	t.Run("learning mode", func(t *testing.T) {
		agent.t = t
		defer func() { agent.t = nil }()
		minted = append(minted, awsLearningStory(t, w, p, agent)...)
	})
	agent.t = t

	// Canaries: no minted secret and no placeholder secret in anything the
	// agent, the logs or the audit stream saw.
	p.stop()
	w.checkCanaries(minted, map[string]string{"jitproxy's own AWS secret": root.SecretAccessKey})
	var decisions int
	for _, e := range p.auditEvents() {
		if a, ok := e["action"].(map[string]any); ok && a["kind"] == "aws" {
			decisions++
		}
	}
	if decisions == 0 {
		t.Error("no audit event for an AWS request")
	}
}

// agentS3 is an S3 client of the AWS SDK for Go as an agent configures it
// from its session: placeholder keys, HTTPS_PROXY, jitproxy's CA, the
// SDK's default (virtual-hosted) addressing.
func agentS3(t *testing.T, proxyURL, caFile string) *s3.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pu, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	return s3.New(s3.Options{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAJITPROXYAGENTKEY", "jitproxy-placeholder-secret-access-key-not-a-credential", ""),
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool},
		}},
		RetryMaxAttempts: 1,
	})
}

func wantAPIError(t *testing.T, what string, err error, code string, msg ...string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("%s: %v, want an AWS API error %s", what, err, code)
		return
	}
	if apiErr.ErrorCode() != code {
		t.Errorf("%s: code %q, want %s (%v)", what, apiErr.ErrorCode(), code, err)
	}
	for _, m := range msg {
		if !strings.Contains(apiErr.ErrorMessage(), m) {
			t.Errorf("%s: message %q does not say %q", what, apiErr.ErrorMessage(), m)
		}
	}
}

// mintedAWSKeys reads the AWS credentials jitproxy shares in Redis.
func mintedAWSKeys(t *testing.T, addr string) []aws.Credentials {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "jitproxy:cred:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []aws.Credentials
	for _, k := range keys {
		raw, err := rdb.Get(ctx, k).Result()
		if err != nil {
			continue
		}
		var e struct {
			AccessKeyID     string `json:"access_key_id"`
			SecretAccessKey string `json:"secret_access_key"`
			SessionToken    string `json:"session_token"`
		}
		if json.Unmarshal([]byte(raw), &e) == nil && e.AccessKeyID != "" {
			out = append(out, aws.Credentials{AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey, SessionToken: e.SessionToken})
		}
	}
	return out
}

// awsWorld is what the AWS stories start from: MinIO with the buckets
// reports (holding q3.csv) and other, redis-server, a directory for the
// files, and the outputs collected for the canary search.
type awsWorld struct {
	t     *testing.T
	dir   string
	minio *servers.MinIO
	redis *servers.Redis
	out   *outputs
	procs []*servers.Process // whose log tails a failed test prints
}

func startAWSWorld(ctx context.Context, t *testing.T) *awsWorld {
	t.Helper()
	w := &awsWorld{t: t, dir: t.TempDir(), out: &outputs{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range w.procs {
				t.Logf("%s log, last lines:\n%s", p.Name, p.Tail(20))
			}
		}
	})
	var err error
	if w.minio, err = servers.StartMinIO(ctx, w.dir); err != nil {
		t.Fatal(err)
	}
	w.track(w.minio.Process)
	if w.redis, err = servers.StartRedis(ctx, w.dir); err != nil {
		t.Fatal(err)
	}
	w.track(w.redis.Process)
	for _, b := range []string{"reports", "other"} {
		if err := w.minio.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.minio.PutObject(ctx, "reports", "q3.csv", []byte("quarter,revenue\nq3,42\n")); err != nil {
		t.Fatal(err)
	}
	return w
}

// track stops p when the test ends, and prints the end of its log first
// if the test failed.
func (w *awsWorld) track(p *servers.Process) {
	w.procs = append(w.procs, p)
	w.t.Cleanup(p.Stop)
}

// write writes content to the file name under the world's directory, for
// its owner only, and returns its path.
func (w *awsWorld) write(name, content string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *awsWorld) stateDir() string { return filepath.Join(w.dir, "state") }

// config writes jitproxy's configuration: ephemeral listeners, the world's
// Redis, audit to stdout, the identities of the story and the access
// policies under access/, followed by rest (vault, targets). It returns
// the file's path.
func (w *awsWorld) config(rest string) string {
	w.t.Helper()
	w.write("state/identities.yaml", identitiesYAML)
	return w.write("jitproxy.yaml", fmt.Sprintf(`
state_dir: %s
log: {level: debug}
proxy: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
redis: {address: %q}
audit: {stdout: true}
policies: {access_dir: %s}
`, w.stateDir(), w.redis.Addr, filepath.Join(w.dir, "access"))+rest)
}

// awsSession is an agent session as `jitproxy session create --aws-config`
// hands it out.
type awsSession struct {
	proxyURL  string // for HTTPS_PROXY
	awsConfig string // the AWS config file: placeholder keys, jitproxy's CA
	caFile    string // jitproxy's CA, beside the config
}

// session creates a session of the agent e2e-agent for dev (group
// developers), run by runner.
func (w *awsWorld) session(p *proxyProc) awsSession {
	w.t.Helper()
	s := awsSession{awsConfig: filepath.Join(w.dir, "agent", "aws-config")}
	if err := os.MkdirAll(filepath.Dir(s.awsConfig), 0o700); err != nil {
		w.t.Fatal(err)
	}
	var ans struct {
		ProxyURL string `json:"proxy_url"`
	}
	js := p.mustCLI("session", "create", "--as", "runner", "--agent", "e2e-agent", "--user", "dev", "--groups", "developers", "--aws-config", s.awsConfig, "-o", "json")
	if err := json.Unmarshal([]byte(js), &ans); err != nil || ans.ProxyURL == "" {
		w.t.Fatalf("session answer %q: %v", js, err)
	}
	s.proxyURL = ans.ProxyURL
	s.caFile = filepath.Join(filepath.Dir(s.awsConfig), "jitproxy-ca.crt")
	return s
}

// checkCanaries reports each minted key, the agent's placeholder secret
// and each of others (what -> value) found in anything collected: what the
// agent saw, jitproxy's log and audit stream, the CLI's answers. Stop
// jitproxy first, so that its output is collected.
func (w *awsWorld) checkCanaries(minted []aws.Credentials, others map[string]string) {
	w.t.Helper()
	for _, k := range minted {
		for what, v := range map[string]string{"secret key": k.SecretAccessKey, "session token": k.SessionToken, "access key": k.AccessKeyID} {
			if names := w.out.containing(v); v != "" && len(names) > 0 {
				w.t.Errorf("the minted %s appears in %v", what, names)
			}
		}
	}
	others["the placeholder secret"] = "jitproxy-placeholder-secret-access-key"
	for what, v := range others {
		if names := w.out.containing(v); v != "" && len(names) > 0 {
			w.t.Errorf("%s appears in %v", what, names)
		}
	}
}
