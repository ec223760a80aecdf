package sts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awssts "github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Name is the provider's name in access policies.
const Name = "sts"

// Session durations: STS's least, and the default and greatest of the
// maxDuration option (1h is also the default maximum session of a role).
const (
	MinDuration     = 15 * time.Minute
	DefaultDuration = time.Hour
	MaxDuration     = 12 * time.Hour
)

// Config configures a Provider.
type Config struct {
	// AWS is jitproxy's own AWS configuration, normally from the SDK's
	// default credential chain (config.LoadDefaultConfig). Its Credentials
	// sign the AssumeRole calls and are required; its HTTPClient is not
	// used (see HTTPClient), nor is its ClientLogMode: nothing of a
	// request or answer is logged.
	AWS aws.Config
	// Region is the region of the STS endpoint. Default: AWS.Region, or
	// us-east-1 when that is empty too.
	Region string
	// BaseEndpoint is the URL of STS, to override the region's endpoint
	// (a test server, MinIO). Default: AWS.BaseEndpoint, then the region's.
	BaseEndpoint string
	// HTTPClient makes the STS calls. Its Transport must be an
	// *http.Transport or nil; the provider uses a copy with no Proxy.
	// Nil: DirectHTTPClient().
	HTTPClient *http.Client
	Now        func() time.Time
}

// DirectHTTPClient returns an HTTP client that never uses a proxy: the
// environment's HTTPS_PROXY may be jitproxy itself. Give it to
// config.LoadDefaultConfig (config.WithHTTPClient) so that the credential
// chain's own calls go direct too. Its requests time out after 10 seconds.
func DirectHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// Provider mints AWS credentials with STS AssumeRole. It is safe for
// concurrent use. It is no broker.Releaser: STS credentials cannot be
// revoked one by one.
type Provider struct {
	cfg    Config
	client *awssts.Client
}

var _ broker.Provider = (*Provider)(nil)

// New returns a Provider. It returns an error if AWS.Credentials is nil
// or HTTPClient's Transport is not an *http.Transport.
func New(cfg Config) (*Provider, error) {
	var errs []error
	if cfg.AWS.Credentials == nil {
		errs = append(errs, errors.New("Config.AWS.Credentials is required"))
	}
	hc := DirectHTTPClient()
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		switch t := c.Transport.(type) {
		case nil:
			c.Transport = hc.Transport
		case *http.Transport:
			t = t.Clone()
			t.Proxy = nil
			c.Transport = t
		default:
			errs = append(errs, fmt.Errorf("Config.HTTPClient.Transport is a %T; want an *http.Transport, whose proxy can be turned off", t))
		}
		hc = &c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sts: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	region := cfg.Region
	if region == "" {
		region = cfg.AWS.Region
	}
	if region == "" {
		region = "us-east-1"
	}
	client := awssts.NewFromConfig(cfg.AWS, func(o *awssts.Options) {
		o.Region = region
		o.HTTPClient = hc
		o.ClientLogMode = 0
		if cfg.BaseEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.BaseEndpoint)
		}
	})
	return &Provider{cfg: cfg, client: client}, nil
}

// ValidateOptions requires roleArn, the ARN of an IAM role, and allows
// maxDuration (whole seconds or a Go duration, 15m to 12h), sourceIdentity
// and sessionTags (true or false).
func (p *Provider) ValidateOptions(opts map[string]string) error {
	var errs []error
	for k, v := range opts {
		switch k {
		case "roleArn":
			if err := checkRoleARN(v); err != nil {
				errs = append(errs, fmt.Errorf("option roleArn %q: %w", v, err))
			}
		case "maxDuration":
			if _, err := parseDuration(v); err != nil {
				errs = append(errs, fmt.Errorf("option maxDuration %q: %w", v, err))
			}
		case "sourceIdentity", "sessionTags":
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, fmt.Errorf("option %s %q: want true or false", k, v))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown option %q (want roleArn, maxDuration, sourceIdentity, sessionTags)", k))
		}
	}
	if _, ok := opts["roleArn"]; !ok {
		errs = append(errs, errors.New("option roleArn is required"))
	}
	return errors.Join(errs...)
}

// checkRoleARN accepts arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME, with
// ACCOUNT twelve digits, or empty as in MinIO's role ARNs.
func checkRoleARN(s string) error {
	a, err := arn.Parse(s)
	if err != nil {
		return err
	}
	name, isRole := strings.CutPrefix(a.Resource, "role/")
	switch {
	case a.Partition == "" || a.Service != "iam" || a.Region != "" || !isRole || name == "" || strings.HasSuffix(name, "/"):
		return errors.New("want the ARN of an IAM role, arn:aws:iam::ACCOUNT:role/NAME")
	case a.AccountID != "" && (len(a.AccountID) != 12 || strings.Trim(a.AccountID, "0123456789") != ""):
		return fmt.Errorf("account %q: want twelve digits", a.AccountID)
	}
	return nil
}

// parseDuration reads whole seconds ("3600") or a Go duration ("1h").
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		return 0, errors.New("want whole seconds or a duration such as 1h")
	}
	if d < MinDuration || d > MaxDuration {
		return 0, fmt.Errorf("want %s to %s", MinDuration, MaxDuration)
	}
	return d, nil
}

// awsPermissions picks the grant's AWS permissions out of its permissions.
//
// awsPermissions returns the AWS parts of perms.
func awsPermissions(perms []access.Permission) []access.AWSPermission {
	var out []access.AWSPermission
	for _, p := range perms {
		if p.AWS != nil {
			out = append(out, *p.AWS)
		}
	}
	return out
}

// Mint assumes the policy's role for the grant, narrowed to the grant's
// AWS permissions by a session policy (see the package doc). It returns
// an error if the grant has no AWS permissions, if their policy is too
// large (wrapping ErrPolicyTooLarge), or if STS refuses.
func (p *Provider) Mint(ctx context.Context, req broker.Request) (broker.Credential, error) {
	return p.mint(ctx, req, awsPermissions(req.Permissions))
}

func (p *Provider) mint(ctx context.Context, req broker.Request, perms []access.AWSPermission) (broker.Credential, error) {
	role := req.Options["roleArn"]
	if err := checkRoleARN(role); err != nil {
		return broker.Credential{}, fmt.Errorf("option roleArn %q: %w", role, err)
	}
	maxDur := DefaultDuration
	if v, ok := req.Options["maxDuration"]; ok {
		d, err := parseDuration(v)
		if err != nil {
			return broker.Credential{}, fmt.Errorf("option maxDuration %q: %w", v, err)
		}
		maxDur = d
	}
	policy, err := SessionPolicy(perms)
	if err != nil {
		return broker.Credential{}, fmt.Errorf("session policy for role %s: %w", role, err)
	}
	remaining := time.Duration(math.Ceil(req.GrantExpiresAt.Sub(p.cfg.Now()).Seconds())) * time.Second
	dur := min(max(remaining, MinDuration), maxDur)
	in := &awssts.AssumeRoleInput{
		RoleArn:         aws.String(role),
		RoleSessionName: aws.String(roleSessionName(req.GrantID, req.Caller.User)),
		DurationSeconds: aws.Int32(int32(dur / time.Second)),
		Policy:          aws.String(policy),
	}
	if on(req.Options, "sourceIdentity") {
		if req.Caller.User == "" {
			return broker.Credential{}, errors.New("the request names no user for the SourceIdentity (option sourceIdentity: \"false\" turns it off)")
		}
		in.SourceIdentity = aws.String(sourceIdentity(req.Caller.User))
	}
	if on(req.Options, "sessionTags") {
		in.Tags = []types.Tag{
			{Key: aws.String(TagUser), Value: aws.String(tagValue(req.Caller.User))},
			{Key: aws.String(TagAgent), Value: aws.String(tagValue(req.Caller.Agent))},
			{Key: aws.String(TagGrant), Value: aws.String(tagValue(req.GrantID))},
		}
	}
	out, err := p.client.AssumeRole(ctx, in)
	if err != nil {
		return broker.Credential{}, fmt.Errorf("assume role %s: %w", role, err)
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return broker.Credential{}, fmt.Errorf("assume role %s: answer without complete credentials", role)
	}
	subject := role
	if out.AssumedRoleUser != nil && aws.ToString(out.AssumedRoleUser.Arn) != "" {
		subject = aws.ToString(out.AssumedRoleUser.Arn)
	}
	return broker.Credential{
		AccessKeyID:     secret.Value(aws.ToString(c.AccessKeyId)),
		SecretAccessKey: secret.Value(aws.ToString(c.SecretAccessKey)),
		SessionToken:    secret.Value(aws.ToString(c.SessionToken)),
		ExpiresAt:       *c.Expiration,
		Subject:         subject,
	}, nil
}

// on reports whether the boolean option k is on; absent means on.
func on(opts map[string]string, k string) bool {
	v, ok := opts[k]
	if !ok {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}
