package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of jitproxy's configuration: one YAML file (unknown
// keys are errors), overridden by JITPROXY_* environment variables, which
// flags override in turn. Every field has a working default, so jitproxy
// runs with no file at all.
type Config struct {
	// StateDir holds the CA, generated identities and, by default, nothing
	// else. Default: .jitproxy.
	StateDir string        `yaml:"state_dir"`
	Log      LogConfig     `yaml:"log"`
	Proxy    ProxyConfig   `yaml:"proxy"`
	Admin    AdminConfig   `yaml:"admin"`
	Metrics  MetricsConfig `yaml:"metrics"`
	Tracing  TracingConfig `yaml:"tracing"`
	Redis    RedisConfig   `yaml:"redis"`
	Policies PolicyConfig  `yaml:"policies"`
	Audit    AuditConfig   `yaml:"audit"`
	Sessions struct {
		// TTL of a session created without one; MaxTTL caps requests.
		TTL    time.Duration `yaml:"ttl"`
		MaxTTL time.Duration `yaml:"max_ttl"`
	} `yaml:"sessions"`
	Vault   VaultConfig    `yaml:"vault"`
	Targets []TargetConfig `yaml:"targets"`
}

// VaultConfig is how jitproxy reaches Vault, for targets with a vault_mount.
type VaultConfig struct {
	// Address of Vault, for example https://vault.vault:8200. Empty: no Vault.
	Address string `yaml:"address"`
	// CAFile verifies Vault's certificate; empty: the system roots.
	CAFile string          `yaml:"ca_file"`
	Auth   VaultAuthConfig `yaml:"auth"`
}

// VaultAuthConfig is how jitproxy logs in to Vault.
type VaultAuthConfig struct {
	// Method is "kubernetes" (the default: log in with a ServiceAccount
	// token) or "token" (a token from TokenFile).
	Method    string `yaml:"method"`
	TokenFile string `yaml:"token_file"`
	// Role and Mount of the kubernetes auth method; defaults jitproxy and kubernetes.
	Role  string `yaml:"role"`
	Mount string `yaml:"mount"`
	// JWTFile is the ServiceAccount token; default the in-cluster one.
	JWTFile string `yaml:"jwt_file"`
}

// MetricsConfig configures the metrics listener: Prometheus metrics at
// /metrics, and the probes /livez and /readyz.
type MetricsConfig struct {
	// Listen is the metrics listener's address, for example
	// 0.0.0.0:9464 in a pod. Empty (the default): no metrics listener,
	// and nothing is measured.
	Listen string `yaml:"listen"`
}

// LogConfig configures the structured log (stderr).
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error; default info
	Format string `yaml:"format"` // json or text; default json
}

// ProxyConfig configures the forward proxy.
type ProxyConfig struct {
	// Listen is the address agents' HTTPS_PROXY points at. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// URL is how agents reach the proxy, if not http://Listen.
	URL string `yaml:"url"`
	// MaxBodyBytes caps request bodies policies inspect. Default 4 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxTunnelsPerSession caps the tunnels one agent session holds open
	// at once; a CONNECT beyond it is refused with 429. Default 64.
	MaxTunnelsPerSession int           `yaml:"max_tunnels_per_session"`
	Timeouts             ProxyTimeouts `yaml:"timeouts"`
}

// ProxyTimeouts bound what a client of the forward proxy may hold open.
type ProxyTimeouts struct {
	// ReadHeader bounds a CONNECT, a tunnel's TLS handshake and each
	// request's headers. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Body bounds the arrival of a request body (not an upgraded stream's).
	// Default 60s.
	Body time.Duration `yaml:"body"`
	// Idle closes a tunnel or connection that carries no request. Default 5m.
	Idle time.Duration `yaml:"idle"`
	// Upstream bounds jitproxy's own requests to a target, such as the dry
	// run of a write. Default 60s.
	Upstream time.Duration `yaml:"upstream"`
}

// AdminTimeouts bound what a client of the admin API may hold open.
type AdminTimeouts struct {
	// ReadHeader bounds each request's headers. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Read bounds a whole request, body included. Default 30s.
	Read time.Duration `yaml:"read"`
	// Write bounds writing an answer. Default 60s.
	Write time.Duration `yaml:"write"`
	// Idle closes a keep-alive connection with no request. Default 2m.
	Idle time.Duration `yaml:"idle"`
}

// AdminConfig configures the admin API.
type AdminConfig struct {
	// Listen is the admin API address. Default 127.0.0.1:8081.
	Listen string `yaml:"listen"`
	// Identities are static bearer-token identities.
	Identities []IdentityConfig `yaml:"identities"`
	// IdentitiesFile is a YAML list of identities. When no identities are
	// configured at all, jitproxy generates local ones into
	// STATE_DIR/identities.yaml.
	IdentitiesFile string `yaml:"identities_file"`
	// Users map identities (static tokens, OIDC users, ServiceAccounts)
	// to jitproxy users: whichever identity authenticates, the user is
	// the same, and may not approve their own requests. A static identity
	// no user lists is a user of its own name.
	Users []UserConfig `yaml:"users"`
	// OIDC are the OpenID Connect providers whose ID tokens authenticate
	// people (bearer tokens on the admin API and the CLI).
	OIDC []OIDCConfig `yaml:"oidc"`
	// ServiceAccounts are the kubernetes targets whose clusters review
	// ServiceAccount tokens (TokenReview), so that a runner pod
	// authenticates with its projected token.
	ServiceAccounts []ServiceAccountAuthConfig `yaml:"service_accounts"`
	RunnerGroups    []string                   `yaml:"runner_groups"`
	AdminGroups     []string                   `yaml:"admin_groups"`
	Timeouts        AdminTimeouts              `yaml:"timeouts"`
	// Page is the approval page, served under /ui/ on the admin listener.
	Page PageConfig `yaml:"page"`
}

// PageConfig configures the approval page.
type PageConfig struct {
	Enabled bool `yaml:"enabled"`
	// SessionTTL is how long a sign-in lasts. Default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	OIDC       PageOIDC      `yaml:"oidc"`
}

// PageOIDC is how people sign in to the page: as a web client of one of
// the admin.oidc providers, whose verifier and user mapping name them, as
// they do for the provider's bearer tokens.
type PageOIDC struct {
	// Provider is the name of an admin.oidc provider; its client_ids must
	// include ClientID.
	Provider         string `yaml:"provider"`
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is the page's callback as browsers reach it,
	// https://HOST/ui/callback (http only on a loopback address). Its
	// scheme decides whether the cookies are Secure and __Host-.
	RedirectURL string   `yaml:"redirect_url"`
	Scopes      []string `yaml:"scopes"` // default [openid, email, profile]
}

// IdentityConfig is one static identity. Exactly one of Token and
// TokenFile is set.
type IdentityConfig struct {
	Name      string   `yaml:"name"`
	Groups    []string `yaml:"groups"`
	Token     string   `yaml:"token"`
	TokenFile string   `yaml:"token_file"`
}

// UserConfig is one user and the identities that authenticate as them.
type UserConfig struct {
	Name   string   `yaml:"name"`
	Groups []string `yaml:"groups"`
	// Identities: token:NAME (a static identity), oidc:PROVIDER:USERNAME
	// (the value of the provider's username_claim) and
	// serviceaccount:TARGET:NAMESPACE/NAME.
	Identities []string `yaml:"identities"`
}

// OIDCConfig is one OpenID Connect provider.
type OIDCConfig struct {
	// Name names the provider in identities (oidc:NAME:USERNAME).
	Name string `yaml:"name"`
	// Issuer is the issuer URL: https, or http on a loopback address.
	Issuer string `yaml:"issuer"`
	// ClientIDs are the audiences accepted; at least one.
	ClientIDs []string `yaml:"client_ids"`
	// UsernameClaim names the identity; default sub.
	UsernameClaim string `yaml:"username_claim"`
	// GroupsClaim, if set, adds the provider's groups to the user's,
	// each prefixed with GroupsPrefix.
	GroupsClaim  string `yaml:"groups_claim"`
	GroupsPrefix string `yaml:"groups_prefix"`
	// RequiredClaims must be in every token with exactly these values.
	RequiredClaims map[string]string `yaml:"required_claims"`
	// UnmappedUsers is refuse (the default: only identities listed in
	// users authenticate) or claim (the username claim is the user's
	// name, unless a configured user or static identity has it).
	UnmappedUsers string `yaml:"unmapped_users"`
	// CAFile verifies the issuer's certificate; empty: the system roots.
	CAFile string `yaml:"ca_file"`
}

// ServiceAccountAuthConfig lets a kubernetes target's cluster
// authenticate ServiceAccounts, with jitproxy's own credentials for the
// target (which need create on tokenreviews: system:auth-delegator).
type ServiceAccountAuthConfig struct {
	// Target is a kubernetes target's name.
	Target string `yaml:"target"`
	// Issuer is the cluster's ServiceAccount token issuer (kube-apiserver
	// --service-account-issuer; `kubectl get --raw
	// /.well-known/openid-configuration` shows it): the tokens it names
	// are reviewed by this cluster.
	Issuer string `yaml:"issuer"`
	// Audiences the token must be for. Default [jitproxy].
	Audiences []string `yaml:"audiences"`
	// CacheTTL is how long a positive review is reused (never past the
	// token's expiry). Default 1m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// RedisConfig configures the state store, reached through go-redis's
// universal client: one server, Sentinel or Cluster (see redis.go).
type RedisConfig struct {
	// Address of Redis (host:port). Empty, with Addresses empty too: an
	// embedded miniredis, which is not durable and serves one process only.
	Address string `yaml:"address"`
	// Addresses are the Sentinels' addresses (with Sentinel.MasterName) or
	// seed nodes of a Cluster (with Cluster). Address is a list of one;
	// set one or the other.
	Addresses []string `yaml:"addresses"`
	// Sentinel, with a MasterName, makes Addresses the Sentinels that
	// name the master; jitproxy follows its failovers.
	Sentinel RedisSentinelConfig `yaml:"sentinel"`
	// Cluster makes the addresses seed nodes of a Redis Cluster. It is
	// never inferred from the number of addresses.
	Cluster bool           `yaml:"cluster"`
	TLS     RedisTLSConfig `yaml:"tls"`
	// Username and the password in PasswordFile (ACL) log in to the Redis
	// servers; empty: the default user, no password.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// KeyPrefix prefixes every key. Default "jitproxy:", and "{jitproxy}:"
	// with Cluster, whose transactions need every key in one hash slot.
	KeyPrefix string `yaml:"key_prefix"`
}

// RedisSentinelConfig names the master the Sentinels watch and how jitproxy
// logs in to the Sentinels themselves.
type RedisSentinelConfig struct {
	MasterName   string `yaml:"master_name"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// RedisTLSConfig turns on TLS to every Redis server and Sentinel. The
// server's certificate is always verified; there is no way to skip that.
type RedisTLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the servers' certificates; empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile, both or neither, are a client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name every certificate is checked against; empty:
	// the host of the address dialled.
	ServerName string `yaml:"server_name"`
}

// PolicyConfig says where policies come from.
type PolicyConfig struct {
	// AuthzDir holds Rego policies; empty: the embedded policies/authz.
	AuthzDir string `yaml:"authz_dir"`
	// AccessDir holds access policies; empty: the embedded policies/access.
	AccessDir string `yaml:"access_dir"`
	// ShadowAuthzDir holds a candidate set of Rego policies evaluated
	// beside the enforced ones (shadow mode): every decision the proxy
	// enforces is decided by it too, never changing the outcome, and one
	// that would differ is logged and counted
	// (jitproxy_shadow_decisions_total). It is compiled and reloaded with
	// the enforced set. Empty: no shadow set.
	ShadowAuthzDir string `yaml:"shadow_authz_dir"`
	// WatchInterval is how often the files of AuthzDir, ShadowAuthzDir and AccessDir are
	// read to see whether they changed, and reloaded if they did. Default
	// 5s; 0 turns watching off (SIGHUP still reloads).
	WatchInterval time.Duration `yaml:"watch_interval"`
	// OnChange is what becomes of a grant, in force or pending, whose
	// access policy changed so that it would no longer be given (removed,
	// the user no longer a subject, the namespace or a permission no
	// longer allowed, the duration over the maximum), when a changed set
	// is put in force or jitproxy starts: revoke (the default), suspend
	// (held back until a later set gives it again) or keep.
	OnChange string `yaml:"on_change"`
}

// AuditConfig configures audit sinks.
type AuditConfig struct {
	// Stdout writes audit events as JSON lines to standard output, as a
	// sink named "stdout" in enforced mode. Default true unless Sinks are
	// given.
	Stdout *bool `yaml:"stdout"`
	// File appends audit events as JSON lines to a file, as a sink named
	// "file" in enforced mode.
	File string `yaml:"file"`
	// SpoolDir holds each sink's spool (SPOOL_DIR/NAME). Default
	// STATE_DIR/audit.
	SpoolDir string `yaml:"spool_dir"`
	// ChainKeyFile, if set, holds the key that makes every sink's hash
	// chain an HMAC chain.
	ChainKeyFile string `yaml:"chain_key_file"`
	// Sync is the default fsync policy of the spools: "interval" (every
	// SyncEvery, default 10ms) or "always".
	Sync      string        `yaml:"sync"`
	SyncEvery time.Duration `yaml:"sync_every"`
	// Sinks are the destinations of the audit stream.
	Sinks []AuditSinkConfig `yaml:"sinks"`
}

// AuditSinkConfig is one destination of the audit stream.
type AuditSinkConfig struct {
	// Name identifies the sink and its spool. Required, unique.
	Name string `yaml:"name"`
	// Type is stdout, file, webhook, splunk_hec, syslog or redis_stream.
	Type string `yaml:"type"`
	// Format is native (jitproxy.audit/v1, the default) or ocsf (OCSF 1.8.0).
	Format string `yaml:"format"`
	// Mode is enforced (the default) or best_effort.
	Mode string `yaml:"mode"`
	// Types, if set, are the only event types the sink takes.
	Types []string `yaml:"types"`
	// Sync and SyncEvery override the audit-wide fsync policy.
	Sync      string        `yaml:"sync"`
	SyncEvery time.Duration `yaml:"sync_every"`
	// MaxSpoolBytes caps the sink's spool; default 1 GiB.
	MaxSpoolBytes int64 `yaml:"max_spool_bytes"`
	// File configures a sink of type file.
	File FileSinkConfig `yaml:"file"`
	// Webhook configures a sink of type webhook: batches of JSON lines
	// POSTed to a URL.
	Webhook struct {
		URL       string        `yaml:"url"`
		TokenFile string        `yaml:"token_file"` // a bearer token, re-read at each delivery
		CAFile    string        `yaml:"ca_file"`
		Timeout   time.Duration `yaml:"timeout"`
		// SecretFile holds the key (at least 16 bytes) every POST is
		// signed with: X-Jitproxy-Timestamp and X-Jitproxy-Signature,
		// HMAC-SHA256 over the timestamp, a dot and the body.
		SecretFile string `yaml:"secret_file"`
		// Payload is ndjson (batches of records) or slack (each record a
		// Slack message, for notifications; native format only).
		Payload string `yaml:"payload"`
		// ApprovalURL is the approval page, with {grant} for the grant's
		// ID: slack messages of grant requests link to it.
		ApprovalURL string `yaml:"approval_url"`
	} `yaml:"webhook"`
	// SplunkHEC configures a sink of type splunk_hec.
	SplunkHEC struct {
		URL        string        `yaml:"url"`        // https://splunk:8088
		TokenFile  string        `yaml:"token_file"` // required
		Channel    string        `yaml:"channel"`    // a GUID; default one per start
		Ack        *bool         `yaml:"ack"`        // wait for indexer acknowledgement; default true
		Index      string        `yaml:"index"`
		Sourcetype string        `yaml:"sourcetype"` // default jitproxy:audit
		Source     string        `yaml:"source"`     // default jitproxy
		CAFile     string        `yaml:"ca_file"`
		Timeout    time.Duration `yaml:"timeout"`
		AckTimeout time.Duration `yaml:"ack_timeout"`
	} `yaml:"splunk_hec"`
	// Syslog configures a sink of type syslog: RFC 5424 messages with
	// octet-counting framing over TCP, or TLS.
	Syslog struct {
		Address  string `yaml:"address"`  // host:port; required
		TLS      bool   `yaml:"tls"`      // TLS instead of plain TCP
		CAFile   string `yaml:"ca_file"`  // verifies the receiver; empty = system roots
		AppName  string `yaml:"app_name"` // default jitproxy
		Hostname string `yaml:"hostname"` // default the machine's
		Facility string `yaml:"facility"` // default auth
		SDID     string `yaml:"sd_id"`    // structured-data ID; default jitproxy@32473
	} `yaml:"syslog"`
	// RedisStream configures a sink of type redis_stream: XADD to a stream
	// of jitproxy's Redis (redis.address) or of another.
	RedisStream struct {
		Stream       string `yaml:"stream"`  // default jitproxy:audit
		MaxLen       int64  `yaml:"max_len"` // approximate; default 1000000
		Address      string `yaml:"address"` // default: jitproxy's own Redis
		Username     string `yaml:"username"`
		PasswordFile string `yaml:"password_file"`
		DB           int    `yaml:"db"`
	} `yaml:"redis_stream"`
}

// FileSinkConfig is a file sink's file and rotation.
type FileSinkConfig struct {
	Path      string        `yaml:"path"`
	MaxBytes  int64         `yaml:"max_bytes"` // rotate before this size; default 100 MiB
	MaxAge    time.Duration `yaml:"max_age"`   // rotate at this age; default 24h
	Retention time.Duration `yaml:"retention"` // delete rotated files older; default 720h
}

// TargetConfig configures one upstream API.
type TargetConfig struct {
	Name string `yaml:"name"`
	// Kind is "kubernetes" or "aws".
	Kind string `yaml:"kind"`
	// Hosts agents address (host or host:port, port default 443); a label
	// "*" matches any one label. Default for aws: AWS's endpoints
	// (defaultAWSHosts).
	Hosts []string `yaml:"hosts"`
	// Upstream is the API's real URL, for example https://10.0.0.1:6443.
	// For aws, empty sends each request to the AWS endpoint the agent
	// addressed; a URL (MinIO, a VPC endpoint) sends every request there.
	Upstream string `yaml:"upstream"`
	// CAFile verifies the upstream's certificate; empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// Credentials is jitproxy's own identity towards the target, used to
	// mint credentials (TokenRequest), never to forward agents' requests.
	Credentials TargetCredentials `yaml:"credentials"`
	// Client rate-limits jitproxy's own requests to a kubernetes target's
	// apiserver, made with Credentials.
	Client KubeClientConfig `yaml:"client"`
	// VaultMount, if set, is the path of the Vault secrets engine for this
	// target: the kubernetes engine configured for this cluster (access
	// policies may then use provider vault), or the AWS engine for this
	// account (provider vault-aws).
	VaultMount string `yaml:"vault_mount"`
	// AWS configures a target of kind aws.
	AWS AWSTargetConfig `yaml:"aws"`
	// Discovery is the ServiceAccount whose tokens carry the discovery
	// requests (/api, /apis, /version, /openapi) policy allows without a
	// grant. It must hold no roles: every authenticated identity can read
	// discovery. Default: default/default.
	Discovery DiscoveryConfig `yaml:"discovery"`
}

// AWSTargetConfig configures a target of kind aws.
type AWSTargetConfig struct {
	// Region, if set, is the region every request is signed for (an
	// upstream that serves one region, such as MinIO); empty: the region
	// of each request.
	Region string `yaml:"region"`
	// STS is jitproxy's own AWS identity, which the provider sts uses to
	// assume the roles access policies name.
	STS STSConfig `yaml:"sts"`
}

// STSConfig is jitproxy's own AWS identity: the AWS SDK's default
// credential chain (environment, shared files, web identity, container and
// instance roles), optionally with a profile of the shared files.
type STSConfig struct {
	// Disabled turns the provider sts off for this target.
	Disabled bool `yaml:"disabled"`
	// Profile is a profile of the shared config and credentials files;
	// empty: the chain's default.
	Profile string `yaml:"profile"`
	// CredentialsFile is a shared credentials file to read instead of
	// ~/.aws/credentials.
	CredentialsFile string `yaml:"credentials_file"`
	// Region of STS; default: the target's region, else us-east-1.
	Region string `yaml:"region"`
	// Endpoint overrides the STS endpoint, for example the upstream of a
	// MinIO target; its certificate is verified with the target's ca_file.
	Endpoint string `yaml:"endpoint"`
}

// defaultAWSHosts are the host names of AWS's public endpoints in the aws
// partition: service.amazonaws.com, service.region.amazonaws.com,
// bucket.s3.amazonaws.com and bucket.s3.region.amazonaws.com.
var defaultAWSHosts = []string{"*.amazonaws.com", "*.*.amazonaws.com", "*.*.*.amazonaws.com"}

// DiscoveryConfig names a target's discovery identity.
type DiscoveryConfig struct {
	Namespace      string `yaml:"namespace"`
	ServiceAccount string `yaml:"service_account"`
	// Disabled refuses discovery without a grant.
	Disabled bool `yaml:"disabled"`
}

// KubeClientConfig is the client-side rate limit (a token bucket) of
// jitproxy's own requests to a kubernetes target's apiserver: the
// TokenRequests that mint credentials, one per grant and target and one per
// renewal, and those of the discovery identity. A field not set takes its
// default; the apiserver's API Priority and Fairness protects it beyond that.
type KubeClientConfig struct {
	// QPS is the sustained rate of requests per second. Default 100.
	QPS *float32 `yaml:"qps"`
	// Burst is how many requests may go at once before QPS applies.
	// Default 200.
	Burst *int `yaml:"burst"`
}

// Defaults of KubeClientConfig: 100 grants that become active at once (a
// fleet of agents started together) each mint without waiting, where
// client-go's own defaults (5 per second, burst 10) would hold the 100th
// mint for 18 s, past the broker's 10 s mint timeout.
const (
	defaultKubeClientQPS   float32 = 100
	defaultKubeClientBurst         = 200
)

// limits returns the QPS and burst with defaults applied.
func (k KubeClientConfig) limits() (qps float32, burst int) {
	qps, burst = defaultKubeClientQPS, defaultKubeClientBurst
	if k.QPS != nil {
		qps = *k.QPS
	}
	if k.Burst != nil {
		burst = *k.Burst
	}
	return qps, burst
}

// TargetCredentials is jitproxy's own identity on a target: a kubeconfig,
// or a bearer token file used with the target's upstream and CA.
type TargetCredentials struct {
	Kubeconfig string `yaml:"kubeconfig"`
	TokenFile  string `yaml:"token_file"`
}

func defaultConfig() Config {
	var c Config
	c.StateDir = ".jitproxy"
	c.Log = LogConfig{Level: "info", Format: "json"}
	c.Proxy.Listen = "127.0.0.1:8080"
	c.Proxy.MaxTunnelsPerSession = 64
	c.Proxy.Timeouts = ProxyTimeouts{ReadHeader: 10 * time.Second, Body: time.Minute, Idle: 5 * time.Minute, Upstream: time.Minute}
	c.Admin.Listen = "127.0.0.1:8081"
	c.Admin.Timeouts = AdminTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: time.Minute, Idle: 2 * time.Minute}
	c.Policies.WatchInterval = 5 * time.Second
	c.Sessions.TTL = 8 * time.Hour
	c.Sessions.MaxTTL = 24 * time.Hour
	return c
}

// loadConfig reads the file at path (if any) over the defaults, strictly.
func loadConfig(path string) (Config, error) {
	c := defaultConfig()
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	// Relative paths in the file are relative to the file.
	base := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	rel(&c.StateDir)
	rel(&c.Audit.SpoolDir)
	rel(&c.Audit.ChainKeyFile)
	for i := range c.Audit.Sinks {
		sk := &c.Audit.Sinks[i]
		for _, p := range []*string{&sk.File.Path, &sk.Webhook.TokenFile, &sk.Webhook.CAFile, &sk.SplunkHEC.TokenFile, &sk.SplunkHEC.CAFile, &sk.RedisStream.PasswordFile, &sk.Syslog.CAFile} {
			rel(p)
		}
	}
	rel(&c.Admin.IdentitiesFile)
	rel(&c.Admin.Page.OIDC.ClientSecretFile)
	for _, p := range []*string{&c.Redis.PasswordFile, &c.Redis.Sentinel.PasswordFile, &c.Redis.TLS.CAFile, &c.Redis.TLS.CertFile, &c.Redis.TLS.KeyFile} {
		rel(p)
	}
	rel(&c.Policies.AuthzDir)
	rel(&c.Policies.AccessDir)
	rel(&c.Policies.ShadowAuthzDir)
	rel(&c.Audit.File)
	rel(&c.Vault.CAFile)
	rel(&c.Vault.Auth.TokenFile)
	rel(&c.Vault.Auth.JWTFile)
	for i := range c.Admin.Identities {
		rel(&c.Admin.Identities[i].TokenFile)
	}
	for i := range c.Admin.OIDC {
		rel(&c.Admin.OIDC[i].CAFile)
	}
	for i := range c.Targets {
		rel(&c.Targets[i].CAFile)
		rel(&c.Targets[i].Credentials.Kubeconfig)
		rel(&c.Targets[i].Credentials.TokenFile)
	}
	return c, nil
}

// validate reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.StateDir == "" {
		bad("state_dir is required")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format %q: want json or text", c.Log.Format)
	}
	for name, addr := range map[string]string{"proxy.listen": c.Proxy.Listen, "admin.listen": c.Admin.Listen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: want host:port", name, addr)
		}
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen %q: want host:port, or empty for none", c.Metrics.Listen)
		}
	}
	if c.Proxy.URL != "" {
		if u, err := url.Parse(c.Proxy.URL); err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
			bad("proxy.url %q: want http://host:port without credentials", c.Proxy.URL)
		}
	}
	if c.Proxy.MaxBodyBytes < 0 {
		bad("proxy.max_body_bytes must not be negative")
	}
	if c.Proxy.MaxTunnelsPerSession <= 0 {
		bad("proxy.max_tunnels_per_session must be positive")
	}
	for name, d := range map[string]time.Duration{
		"proxy.timeouts.read_header": c.Proxy.Timeouts.ReadHeader, "proxy.timeouts.body": c.Proxy.Timeouts.Body,
		"proxy.timeouts.idle": c.Proxy.Timeouts.Idle, "proxy.timeouts.upstream": c.Proxy.Timeouts.Upstream,
		"admin.timeouts.read_header": c.Admin.Timeouts.ReadHeader, "admin.timeouts.read": c.Admin.Timeouts.Read,
		"admin.timeouts.write": c.Admin.Timeouts.Write, "admin.timeouts.idle": c.Admin.Timeouts.Idle,
	} {
		if d <= 0 {
			bad("%s %s must be positive", name, d)
		}
	}
	for i, id := range c.Admin.Identities {
		if (id.Token == "") == (id.TokenFile == "") {
			bad("admin.identities[%d] (%s): set exactly one of token and token_file", i, id.Name)
		}
	}
	errs = append(errs, c.Admin.Page.validate(c.Admin.OIDC))
	errs = append(errs, c.Tracing.validate())
	errs = append(errs, c.validateAuth())
	if !slices.Contains([]string{"", "revoke", "suspend", "keep"}, c.Policies.OnChange) {
		bad("policies.on_change %q: want revoke, suspend or keep", c.Policies.OnChange)
	}
	if c.Policies.WatchInterval < 0 {
		bad("policies.watch_interval %s must not be negative (0 turns watching off)", c.Policies.WatchInterval)
	}
	if c.Sessions.TTL <= 0 || c.Sessions.MaxTTL < c.Sessions.TTL {
		bad("sessions: ttl %s must be positive and at most max_ttl %s", c.Sessions.TTL, c.Sessions.MaxTTL)
	}
	errs = append(errs, c.Audit.validate(), c.Redis.validate())
	names := map[string]bool{}
	for i, t := range c.Targets {
		where := fmt.Sprintf("targets[%d] (%s)", i, t.Name)
		if t.Name == "" {
			bad("targets[%d]: name is required", i)
		}
		if names[t.Name] {
			bad("%s: name used twice", where)
		}
		names[t.Name] = true
		switch t.Kind {
		default:
			if t.Kind != "kubernetes" {
				bad("%s: kind %q: want kubernetes or aws", where, t.Kind)
			}
			if len(t.Hosts) == 0 {
				bad("%s: hosts is required", where)
			}
			if t.Credentials.Kubeconfig == "" && t.Credentials.TokenFile == "" {
				bad("%s: credentials: set kubeconfig or token_file", where)
			}
			if q := t.Client.QPS; q != nil && (!(*q > 0) || math.IsInf(float64(*q), 1)) {
				bad("%s: client.qps %v must be a positive number", where, *q)
			}
			if b := t.Client.Burst; b != nil && *b < 1 {
				bad("%s: client.burst %d must be at least 1", where, *b)
			}
		case "aws":
			if t.Credentials != (TargetCredentials{}) || t.Discovery != (DiscoveryConfig{}) || t.Client != (KubeClientConfig{}) {
				bad("%s: credentials, client and discovery are for kubernetes targets; an aws target's identity is aws.sts", where)
			}
			if e := t.AWS.STS.Endpoint; e != "" {
				if u, err := url.Parse(e); err != nil || u.Scheme != "https" || u.Host == "" {
					bad("%s: aws.sts.endpoint %q: want an https URL", where, e)
				}
			}
		}
		if t.Upstream != "" || t.Kind != "aws" {
			if u, err := url.Parse(t.Upstream); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("%s: upstream %q: want an https URL", where, t.Upstream)
			}
		}
		if t.VaultMount != "" && c.Vault.Address == "" {
			bad("%s: vault_mount needs vault.address", where)
		}
	}
	if c.Vault.Address != "" {
		if u, err := url.Parse(c.Vault.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("vault.address %q: want an http(s) URL", c.Vault.Address)
		}
		switch c.Vault.Auth.Method {
		case "", "kubernetes":
		case "token":
			if c.Vault.Auth.TokenFile == "" {
				bad("vault.auth: method token needs token_file")
			}
		default:
			bad("vault.auth.method %q: want kubernetes or token", c.Vault.Auth.Method)
		}
	}
	return errors.Join(errs...)
}

// applyEnv overrides settings from JITPROXY_* variables.
func (c *Config) applyEnv(getenv func(string) string) {
	set := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set(&c.StateDir, "JITPROXY_STATE_DIR")
	set(&c.Log.Level, "JITPROXY_LOG_LEVEL")
	set(&c.Log.Format, "JITPROXY_LOG_FORMAT")
	set(&c.Proxy.Listen, "JITPROXY_PROXY_LISTEN")
	set(&c.Proxy.URL, "JITPROXY_PROXY_URL")
	set(&c.Admin.Listen, "JITPROXY_ADMIN_LISTEN")
	set(&c.Metrics.Listen, "JITPROXY_METRICS_LISTEN")
	set(&c.Redis.Address, "JITPROXY_REDIS_ADDRESS")
	set(&c.Audit.File, "JITPROXY_AUDIT_FILE")
}

func (c *Config) auditStdout() bool {
	if c.Audit.Stdout == nil {
		return len(c.Audit.Sinks) == 0
	}
	return *c.Audit.Stdout
}

func (c *Config) proxyURL() *url.URL {
	if c.Proxy.URL != "" {
		u, _ := url.Parse(c.Proxy.URL)
		return u
	}
	return &url.URL{Scheme: "http", Host: c.Proxy.Listen}
}

// validate checks an enabled page's settings; zero values are defaulted
// where they are used.
func (p PageConfig) validate(providers []OIDCConfig) error {
	if !p.Enabled {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("admin.page."+format, args...)) }
	o := &p.OIDC
	i := slices.IndexFunc(providers, func(c OIDCConfig) bool { return c.Name == o.Provider })
	switch {
	case i < 0:
		bad("oidc.provider %q: want the name of an admin.oidc provider (people sign in with it, and admin.users maps them)", o.Provider)
	case o.ClientID == "":
		bad("oidc.client_id is required")
	case !slices.Contains(providers[i].ClientIDs, o.ClientID):
		bad("oidc.client_id %q must be among admin.oidc %s's client_ids, so that its ID tokens are accepted", o.ClientID, o.Provider)
	}
	if o.ClientSecretFile == "" {
		bad("oidc.client_secret_file is required")
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || !webURL(o.RedirectURL) || u.Path != "/ui/callback" || u.RawQuery != "" {
		bad("oidc.redirect_url %q: want https://HOST/ui/callback, the page's callback as browsers reach it (http only on a loopback address)", o.RedirectURL)
	}
	if o.Scopes != nil && !slices.Contains(o.Scopes, "openid") {
		bad("oidc.scopes %v must include openid", o.Scopes)
	}
	if p.SessionTTL < 0 {
		bad("session_ttl %s must not be negative", p.SessionTTL)
	}
	return errors.Join(errs...)
}

// webURL reports whether s is an https URL, or an http one on a loopback
// address, with a host and no credentials.
func webURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		if u.Hostname() == "localhost" {
			return true
		}
		ip := net.ParseIP(u.Hostname())
		return ip != nil && ip.IsLoopback()
	}
	return false
}
