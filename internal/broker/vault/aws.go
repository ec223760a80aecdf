package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// AWSName is the name in access policies of the provider backed by
// Vault's AWS secrets engine.
const AWSName = "vault-aws"

// The credential types of Vault's AWS secrets engine that AWSProvider
// mints (the option credentialType).
const (
	AssumedRole     = "assumed_role"
	FederationToken = "federation_token"
	IAMUser         = "iam_user"
)

// AWSMinTTL is the shortest STS session, and so the shortest ttl asked of
// Vault for STS credentials.
const AWSMinTTL = 15 * time.Minute

// AWSConfig configures an AWSProvider.
type AWSConfig struct {
	// Client reaches Vault (address, TLS). The provider sets its token.
	// Required.
	Client *vaultapi.Client
	// Login obtains jitproxy's Vault token, as in Config.
	// Nil: the client's token is used as it is, renewed when renewable.
	Login LoginFunc
	// Mount is the AWS secrets engine's path; default "aws".
	Mount string
	// MaxTTL caps the ttl asked for STS credentials; default 1h, the
	// default maximum session of an IAM role. Vault caps it further at
	// the Vault role's max_sts_ttl.
	MaxTTL time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// AWSProvider mints AWS credentials through Vault's AWS secrets engine
// (see the package doc for what each credential type can narrow). It is
// safe for concurrent use.
type AWSProvider struct {
	cfg     AWSConfig
	session *session
}

var (
	_ broker.Provider = (*AWSProvider)(nil)
	_ broker.Releaser = (*AWSProvider)(nil)
)

// NewAWS returns an AWSProvider.
func NewAWS(cfg AWSConfig) (*AWSProvider, error) {
	if cfg.Client == nil {
		return nil, errors.New("vault-aws: AWSConfig.Client is required")
	}
	if cfg.Mount == "" {
		cfg.Mount = "aws"
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &AWSProvider{cfg: cfg, session: newSession(cfg.Client, cfg.Login, cfg.Now, cfg.Logger)}, nil
}

// ValidateOptions requires role, and allows credentialType (assumed_role,
// federation_token or iam_user) and roleArn (the ARN of an IAM role, for
// assumed_role or an unnamed type).
func (p *AWSProvider) ValidateOptions(opts map[string]string) error {
	var errs []error
	for k, v := range opts {
		switch k {
		case "role":
		case "credentialType":
			if v != AssumedRole && v != FederationToken && v != IAMUser {
				errs = append(errs, fmt.Errorf("option credentialType %q: want %s, %s or %s", v, AssumedRole, FederationToken, IAMUser))
			}
		case "roleArn":
			if err := checkRoleARN(v); err != nil {
				errs = append(errs, fmt.Errorf("option roleArn %q: %w", v, err))
			}
			if t := opts["credentialType"]; t != "" && t != AssumedRole {
				errs = append(errs, fmt.Errorf("option roleArn is for credentialType %s, not %s", AssumedRole, t))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown option %q (want role, credentialType, roleArn)", k))
		}
	}
	if opts["role"] == "" {
		errs = append(errs, errors.New("option role is required"))
	}
	return errors.Join(errs...)
}

func checkRoleARN(s string) error {
	a, err := arn.Parse(s)
	if err != nil {
		return err
	}
	if name, ok := strings.CutPrefix(a.Resource, "role/"); a.Service != "iam" || !ok || name == "" {
		return errors.New("want the ARN of an IAM role, arn:aws:iam::ACCOUNT:role/NAME")
	}
	return nil
}

// Mint asks Vault for credentials of the policy's Vault role: with
// credentialType assumed_role or federation_token from MOUNT/sts/ROLE,
// with iam_user or none from MOUNT/creds/ROLE (which serves every type
// of a role made with today's parameters; the answer tells which it
// was). STS credentials are asked for the grant's remaining lifetime, at
// least AWSMinTTL and at most MaxTTL. It returns an error, after revoking
// any lease Vault gave, when the answer lacks a key, a lifetime, or (for
// IAM user keys) a lease, or is of another type than credentialType.
func (p *AWSProvider) Mint(ctx context.Context, req broker.Request) (broker.Credential, error) {
	role, ctype := req.Options["role"], req.Options["credentialType"]
	if role == "" {
		return broker.Credential{}, errors.New("the access policy names no Vault role")
	}
	now := p.cfg.Now()
	path := p.cfg.Mount + "/creds/" + role
	var data map[string]any
	if ctype != IAMUser {
		ttl := min(max(req.GrantExpiresAt.Sub(now), AWSMinTTL), p.cfg.MaxTTL)
		data = map[string]any{"ttl": strconv.FormatInt(int64(math.Ceil(ttl.Seconds())), 10) + "s"}
	}
	if ctype == AssumedRole || ctype == FederationToken {
		path = p.cfg.Mount + "/sts/" + role
	}
	if ctype == AssumedRole || ctype == "" {
		data["role_session_name"] = awsSessionName(req.GrantID, req.Caller.User)
		if v := req.Options["roleArn"]; v != "" {
			data["role_arn"] = v
		}
	}
	s, err := p.session.write(ctx, path, data)
	if err != nil {
		return broker.Credential{}, fmt.Errorf("vault %s: %w", path, err)
	}
	if s == nil {
		return broker.Credential{}, fmt.Errorf("vault %s: empty answer", path)
	}
	c, err := p.credential(now, s, ctype)
	if err != nil {
		// Keys that will not be used must not be left behind.
		if rerr := p.Release(ctx, broker.Credential{LeaseID: s.LeaseID}); rerr != nil {
			p.cfg.Logger.Error("revoke unusable AWS credential", "path", path, "err", rerr)
		}
		return broker.Credential{}, fmt.Errorf("vault %s: %w", path, err)
	}
	if c.Subject == "" {
		c.Subject = "vault:" + p.cfg.Mount + "/roles/" + role
	}
	return c, nil
}

// credential reads the credential in Vault's answer. Only STS credentials
// have a session token (session_token; security_token in older Vault
// versions); IAM user keys need their lease, to be revoked at grant end.
// The lease of STS credentials is not kept: revoking it does not end them.
func (p *AWSProvider) credential(now time.Time, s *vaultapi.Secret, ctype string) (broker.Credential, error) {
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	c := broker.Credential{
		AccessKeyID:     secret.Value(str("access_key")),
		SecretAccessKey: secret.Value(str("secret_key")),
		SessionToken:    secret.Value(str("session_token")),
		Subject:         str("arn"),
	}
	if c.SessionToken.IsZero() {
		c.SessionToken = secret.Value(str("security_token"))
	}
	isSTS := !c.SessionToken.IsZero()
	switch {
	case c.AccessKeyID.IsZero() || c.SecretAccessKey.IsZero():
		return broker.Credential{}, errors.New("answer without access_key or secret_key")
	case ctype == IAMUser && isSTS:
		return broker.Credential{}, errors.New("answer with a session token for credentialType iam_user: the Vault role is of an STS type")
	case (ctype == AssumedRole || ctype == FederationToken) && !isSTS:
		return broker.Credential{}, fmt.Errorf("answer without a session token for credentialType %s: the Vault role is iam_user", ctype)
	case !isSTS && s.LeaseID == "":
		return broker.Credential{}, errors.New("IAM user keys without a lease, which could not be revoked at grant end")
	}
	lifetime := time.Duration(s.LeaseDuration) * time.Second
	if lifetime <= 0 {
		lifetime = dataSeconds(s.Data["ttl"]) // a Vault role with no_lease
	}
	if lifetime <= 0 {
		return broker.Credential{}, errors.New("answer without a lifetime")
	}
	c.ExpiresAt = now.Add(lifetime)
	if !isSTS {
		c.LeaseID = s.LeaseID
	}
	return c, nil
}

// dataSeconds reads a number of seconds in Vault's answer data, which the
// client decodes as json.Number.
func dataSeconds(v any) time.Duration {
	var n float64
	switch v := v.(type) {
	case json.Number:
		n, _ = v.Float64()
	case float64:
		n = v
	}
	return time.Duration(n) * time.Second
}

// awsSessionName names an assumed-role session GRANT.USER, for CloudTrail:
// characters STS does not accept become '_' (as Vault itself does), and
// the name is cut to STS's 64 characters.
func awsSessionName(grantID, user string) string {
	name := grantID
	if user != "" {
		name += "." + user
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+=,.@-", r)) {
			return r
		}
		return '_'
	}, name)
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// Release revokes the lease of IAM user keys: Vault then deletes the IAM
// user, its keys and policies. STS credentials have no lease kept, and
// nothing is done: they cannot be revoked.
func (p *AWSProvider) Release(ctx context.Context, c broker.Credential) error {
	return p.session.revoke(ctx, c.LeaseID)
}
