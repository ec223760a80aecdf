package servers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// MinIO is a running MinIO server: S3 and STS over TLS on 127.0.0.1, one
// drive under its directory, a random root user, the browser console off.
//
// MinIO's STS answers AssumeRole signed by any user it knows, the root user
// included, with temporary credentials that inherit the caller's rights cut
// down by the inline session policy (Policy). It ignores RoleArn and
// PolicyArns: credentials asked for with PolicyArns alone keep all of the
// caller's rights. GetCallerIdentity, GetFederationToken and
// GetSessionToken fail with InvalidParameterValue ("Unsupported action
// ..."), and there is no IAM API (its calls reach STS and fail with
// MissingParameter, "Invalid STS API version 2010-05-08").
type MinIO struct {
	*Process
	URL          string // https://127.0.0.1:PORT, for S3 and STS alike
	CAFile       string // the CA that signed the server's certificate
	CAPEM        []byte
	RootUser     string
	RootPassword string
	Region       string // us-east-1
	Bin          string

	client *http.Client
}

// StartMinIO starts `minio server` on a free port with its files under
// dir/minio: the drive in data/, the serving certificate in certs/ and
// its CA in ca.crt.
func StartMinIO(ctx context.Context, dir string) (*MinIO, error) {
	bin, err := Bin("minio")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "minio")
	certs := filepath.Join(dir, "certs")
	data := filepath.Join(dir, "data")
	for _, d := range []string{filepath.Join(certs, "CAs"), data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cert, err := newServingCert("minio")
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		URL:          "https://127.0.0.1:" + strconv.Itoa(port),
		CAFile:       filepath.Join(dir, "ca.crt"),
		CAPEM:        cert.CAPEM,
		RootUser:     "root-" + randomHex(6),
		RootPassword: randomHex(16),
		Region:       "us-east-1",
		Bin:          bin,
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.CAPEM)
	m.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil},
		Timeout:   30 * time.Second,
	}
	if err := cert.write(m.CAFile, filepath.Join(certs, "public.crt"), filepath.Join(certs, "private.key")); err != nil {
		return nil, err
	}
	// MinIO trusts the CAs in certs/CAs for its calls to itself.
	if err := os.WriteFile(filepath.Join(certs, "CAs", "ca.crt"), cert.CAPEM, 0o600); err != nil {
		return nil, err
	}
	p, err := start("minio", dir, bin, []string{
		"server", "--address", "127.0.0.1:" + strconv.Itoa(port), "--certs-dir", certs, "--anonymous", data,
	}, []string{
		"HOME=" + dir,
		"MINIO_ROOT_USER=" + m.RootUser, "MINIO_ROOT_PASSWORD=" + m.RootPassword,
		"MINIO_SITE_REGION=" + m.Region,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off",
		// The drive may sit on the root disk, which MinIO refuses outside CI.
		"MINIO_CI_CD=1",
	})
	if err != nil {
		return nil, err
	}
	m.Process = p
	if err := p.waitReady(ctx, time.Minute, m.ready); err != nil {
		p.Stop()
		return nil, fmt.Errorf("minio: %w", err)
	}
	return m, nil
}

// ready wants /minio/health/live to answer 200 without calling the server
// offline (it answers 200 while its drive is still being set up), then an
// STS AssumeRole to succeed: IAM loads some 10 to 30 ms later, and until
// then AssumeRole fails with a 400 InvalidParameterValue ("Server not
// initialized, please try again") that no SDK retries. Each check that
// gets that far leaves an unused temporary credential behind.
func (m *MinIO) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", m.URL+"/minio/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := m.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /minio/health/live: %s", resp.Status)
	}
	if s := resp.Header.Get("X-Minio-Server-Status"); s != "" {
		return fmt.Errorf("GET /minio/health/live: server status %s", s)
	}
	_, err = m.AssumeRole(ctx, "")
	return err
}

// Restart stops the server if it still runs and starts it again on the
// same port with the same drive, certificate and root user: buckets,
// objects and the temporary credentials it issued before survive.
func (m *MinIO) Restart(ctx context.Context) error {
	if err := m.Process.restart(ctx, time.Minute, m.ready); err != nil {
		return fmt.Errorf("minio: %w", err)
	}
	return nil
}

// HTTPClient returns the client that trusts the server's CA, uses no
// proxy and gives up on a call after 30 seconds. It is safe for
// concurrent use, and the same for the server's whole life.
func (m *MinIO) HTTPClient() *http.Client {
	return m.client
}

// RootCredentials returns the root user's access key and secret.
func (m *MinIO) RootCredentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: m.RootUser, SecretAccessKey: m.RootPassword, Source: "minio root"}
}

// AWSConfig returns an SDK configuration for this server signed with creds:
// its region, its CA trusted, no proxy, and nothing read from the
// environment or ~/.aws.
func (m *MinIO) AWSConfig(creds aws.Credentials) aws.Config {
	return aws.Config{
		Region:       m.Region,
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
		HTTPClient:   m.HTTPClient(),
		BaseEndpoint: aws.String(m.URL),
	}
}

// S3 returns an S3 client for this server signed with creds, addressing
// buckets by path (MinIO on an IP address has no virtual hosts).
func (m *MinIO) S3(creds aws.Credentials) *s3.Client {
	return s3.NewFromConfig(m.AWSConfig(creds), func(o *s3.Options) { o.UsePathStyle = true })
}

// STS returns an STS client for this server signed with creds.
func (m *MinIO) STS(creds aws.Credentials) *sts.Client {
	return sts.NewFromConfig(m.AWSConfig(creds))
}

// CreateBucket creates bucket as the root user.
func (m *MinIO) CreateBucket(ctx context.Context, bucket string) error {
	if _, err := m.S3(m.RootCredentials()).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// PutObject writes body to bucket/key as the root user.
func (m *MinIO) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	_, err := m.S3(m.RootCredentials()).PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		return fmt.Errorf("put object %s/%s: %w", bucket, key, err)
	}
	return nil
}

// AssumeRoleARN is what AssumeRole sends as RoleArn: the SDK requires one,
// MinIO ignores it.
const AssumeRoleARN = "arn:aws:iam::123456789012:role/jitproxy-test"

// AssumeRole asks the server's STS, as the root user, for temporary
// credentials limited by policy, an IAM policy document (JSON); an empty
// policy leaves them with all of root's rights. They last an hour.
func (m *MinIO) AssumeRole(ctx context.Context, policy string) (aws.Credentials, error) {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(AssumeRoleARN), RoleSessionName: aws.String("jitproxy-test")}
	if policy != "" {
		in.Policy = &policy
	}
	out, err := m.STS(m.RootCredentials()).AssumeRole(ctx, in)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("minio sts assume role: %w", err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil {
		return aws.Credentials{}, errors.New("minio sts assume role: answer without credentials")
	}
	creds := aws.Credentials{
		AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, SessionToken: *c.SessionToken,
		Source: "minio sts", CanExpire: c.Expiration != nil,
	}
	if c.Expiration != nil {
		creds.Expires = *c.Expiration
	}
	return creds, nil
}

// Env returns the environment for the aws CLI as the root user: keys,
// region and CA bundle (replacing any AWS_CA_BUNDLE inherited), and no
// shared config or credentials file. It leaves out the endpoint: pass
// --endpoint-url URL, since Debian's aws-cli 2.9 ignores AWS_ENDPOINT_URL
// and would call AWS itself.
func (m *MinIO) Env() []string {
	none := filepath.Join(filepath.Dir(m.CAFile), "no-aws-config")
	return []string{
		"AWS_ACCESS_KEY_ID=" + m.RootUser, "AWS_SECRET_ACCESS_KEY=" + m.RootPassword, "AWS_SESSION_TOKEN=",
		"AWS_DEFAULT_REGION=" + m.Region, "AWS_REGION=" + m.Region, "AWS_CA_BUNDLE=" + m.CAFile,
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
