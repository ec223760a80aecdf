package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	vaultapi "github.com/hashicorp/vault/api"
	kubeauth "github.com/hashicorp/vault/api/auth/kubernetes"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jitproxy/jitproxy/internal/broker"
	stsprovider "github.com/jitproxy/jitproxy/internal/broker/sts"
	"github.com/jitproxy/jitproxy/internal/broker/tokenrequest"
	vaultprovider "github.com/jitproxy/jitproxy/internal/broker/vault"
	"github.com/jitproxy/jitproxy/internal/intercept"
	awsproto "github.com/jitproxy/jitproxy/internal/intercept/aws"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// builtTargets is what the configured targets turn into.
type builtTargets struct {
	targets   []*intercept.Target
	providers map[string]broker.Provider
	infos     []jit.TargetInfo
	names     []string
	// kube is jitproxy's own client of each kubernetes target.
	kube map[string]*kubernetes.Clientset
}

func buildTargets(cfg *Config, log *slog.Logger) (*builtTargets, error) {
	out := &builtTargets{providers: map[string]broker.Provider{}, kube: map[string]*kubernetes.Clientset{}}
	var vc *vaultapi.Client
	var login func(context.Context, *vaultapi.Client) (*vaultapi.Secret, error)
	if cfg.Vault.Address != "" {
		var err error
		if vc, login, err = vaultClient(cfg.Vault); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, tc := range cfg.Targets {
		var err error
		switch tc.Kind {
		case "aws":
			err = out.addAWS(tc, vc, login, log)
		default:
			err = out.addKubernetes(tc)
			if err == nil && tc.VaultMount != "" {
				var p *vaultprovider.Provider
				p, err = vaultprovider.New(vaultprovider.Config{
					Client: vc, Login: login, Mount: tc.VaultMount,
					Logger: log.With("component", "vault", "target", tc.Name),
				})
				if err == nil {
					out.providers[broker.ProviderKey(tc.Name, vaultprovider.Name)] = p
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", tc.Name, err))
		}
	}
	return out, errors.Join(errs...)
}

// vaultClient builds the Vault client and, for the kubernetes auth method,
// the login that reads the ServiceAccount token file afresh each time
// (projected tokens rotate). Vault's own environment variables are ignored.
func vaultClient(vc VaultConfig) (*vaultapi.Client, func(context.Context, *vaultapi.Client) (*vaultapi.Secret, error), error) {
	cfg := vaultapi.DefaultConfig()
	cfg.Address = vc.Address
	cfg.Timeout = 10 * time.Second
	if t, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		t.Proxy = nil
	}
	if vc.CAFile != "" {
		if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACert: vc.CAFile}); err != nil {
			return nil, nil, fmt.Errorf("vault.ca_file: %w", err)
		}
	}
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("vault client: %w", err)
	}
	c.ClearToken()
	a := vc.Auth
	if a.Method == "token" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("vault.auth.token_file: %w", err)
		}
		c.SetToken(strings.TrimSpace(string(b)))
		return c, nil, nil
	}
	role, mount := cmp.Or(a.Role, "jitproxy"), cmp.Or(a.Mount, "kubernetes")
	jwt := cmp.Or(a.JWTFile, "/var/run/secrets/kubernetes.io/serviceaccount/token")
	login := func(ctx context.Context, c *vaultapi.Client) (*vaultapi.Secret, error) {
		m, err := kubeauth.NewKubernetesAuth(role, kubeauth.WithMountPath(mount), kubeauth.WithServiceAccountTokenPath(jwt))
		if err != nil {
			return nil, err
		}
		return c.Auth().Login(ctx, m)
	}
	return c, login, nil
}

// upstreamTransport reaches a target's upstream, verifying its certificate
// with caFile (empty: the system roots), never through the environment's
// proxy: jitproxy may be it. It keeps up to 64 idle connections, so that
// concurrent requests do not open and close connections, and resumes TLS
// sessions, so that a connection opened again (after 90s idle, or beyond
// the 64) skips the certificate exchange and its verification.
func upstreamTransport(caFile string) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}, nil
}

func (b *builtTargets) addKubernetes(tc TargetConfig) error {
	upstream, err := url.Parse(tc.Upstream)
	if err != nil {
		return err
	}
	transport, err := upstreamTransport(tc.CAFile)
	if err != nil {
		return err
	}
	rc, err := restConfig(tc)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	p, err := tokenrequest.New(tokenrequest.Config{Client: cs})
	if err != nil {
		return err
	}
	b.providers[broker.ProviderKey(tc.Name, tokenrequest.Name)] = p
	b.kube[tc.Name] = cs
	t := &intercept.Target{Name: tc.Name, Hosts: tc.Hosts, Upstream: upstream, Transport: transport, Protocol: kube.New()}
	if !tc.Discovery.Disabled {
		opts := map[string]string{
			"serviceAccount":          cmp.Or(tc.Discovery.ServiceAccount, "default"),
			"serviceAccountNamespace": cmp.Or(tc.Discovery.Namespace, "default"),
		}
		if err := p.ValidateOptions(opts); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		t.Discovery = &intercept.CredentialSource{Provider: tokenrequest.Name, Options: opts}
	}
	b.targets = append(b.targets, t)
	b.infos = append(b.infos, jit.TargetInfo{Name: tc.Name, Kind: "kubernetes", Server: "https://" + tc.Hosts[0]})
	b.names = append(b.names, tc.Name)
	return nil
}

// addAWS adds an AWS target: requests signed anew with credentials from
// STS (jitproxy's own AWS identity assuming the access policy's role) or
// from Vault's AWS secrets engine.
func (b *builtTargets) addAWS(tc TargetConfig, vc *vaultapi.Client, login vaultprovider.LoginFunc, log *slog.Logger) error {
	hosts := tc.Hosts
	if len(hosts) == 0 {
		hosts = defaultAWSHosts
	}
	var upstream *url.URL
	if tc.Upstream != "" {
		var err error
		if upstream, err = url.Parse(tc.Upstream); err != nil {
			return err
		}
	}
	transport, err := upstreamTransport(tc.CAFile)
	if err != nil {
		return err
	}
	proto := awsproto.New(awsproto.Config{Region: tc.AWS.Region})
	b.targets = append(b.targets, &intercept.Target{Name: tc.Name, Hosts: hosts, Upstream: upstream, Transport: transport, Protocol: proto})
	if s := tc.AWS.STS; !s.Disabled {
		p, err := stsProvider(tc, transport)
		if err != nil {
			return fmt.Errorf("aws.sts: %w", err)
		}
		b.providers[broker.ProviderKey(tc.Name, stsprovider.Name)] = p
	}
	if tc.VaultMount != "" {
		p, err := vaultprovider.NewAWS(vaultprovider.AWSConfig{
			Client: vc, Login: login, Mount: tc.VaultMount,
			Logger: log.With("component", "vault-aws", "target", tc.Name),
		})
		if err != nil {
			return err
		}
		b.providers[broker.ProviderKey(tc.Name, vaultprovider.AWSName)] = p
	}
	info := jit.TargetInfo{Name: tc.Name, Kind: "aws", Region: tc.AWS.Region, PathStyle: upstream != nil}
	if !strings.Contains(hosts[0], "*") {
		info.Server = "https://" + hosts[0]
	}
	b.infos = append(b.infos, info)
	b.names = append(b.names, tc.Name)
	return nil
}

// stsProvider is the provider sts of an AWS target: jitproxy's own AWS
// identity from the SDK's default credential chain (its calls never go
// through a proxy), calling STS at the configured endpoint, verified like
// the target's upstream.
func stsProvider(tc TargetConfig, transport *http.Transport) (*stsprovider.Provider, error) {
	s := tc.AWS.STS
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.Proxy = nil })),
	}
	if s.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(s.Profile))
	}
	if s.CredentialsFile != "" {
		opts = append(opts, awsconfig.WithSharedCredentialsFiles([]string{s.CredentialsFile}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return stsprovider.New(stsprovider.Config{
		AWS:          awsCfg,
		Region:       cmp.Or(s.Region, tc.AWS.Region),
		BaseEndpoint: s.Endpoint,
		HTTPClient:   &http.Client{Transport: transport.Clone(), Timeout: 10 * time.Second},
	})
}

// restConfig is jitproxy's own identity towards a cluster, for TokenRequest,
// rate-limited by the target's client block.
func restConfig(tc TargetConfig) (*rest.Config, error) {
	var rc *rest.Config
	if tc.Credentials.Kubeconfig != "" {
		var err error
		if rc, err = clientcmd.BuildConfigFromFlags("", tc.Credentials.Kubeconfig); err != nil {
			return nil, fmt.Errorf("credentials.kubeconfig: %w", err)
		}
	} else {
		if _, err := os.Stat(tc.Credentials.TokenFile); err != nil {
			return nil, fmt.Errorf("credentials.token_file: %w", err)
		}
		rc = &rest.Config{Host: tc.Upstream, BearerTokenFile: tc.Credentials.TokenFile, TLSClientConfig: rest.TLSClientConfig{CAFile: tc.CAFile}}
	}
	rc.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	rc.Timeout = 10 * time.Second
	rc.QPS, rc.Burst = tc.Client.limits()
	rc.UserAgent = "jitproxy/" + version
	return rc, nil
}

// checkPolicies validates every access policy's credential options against
// its provider. Policies for targets not configured here are reported in
// the log; requests under them are refused.
func checkPolicies(ps *jit.Policies, bt *builtTargets, log *slog.Logger) error {
	var errs []error
	kinds := map[string]string{}
	for _, info := range bt.infos {
		kinds[info.Name] = info.Kind
	}
	for _, p := range ps.All() {
		key := broker.ProviderKey(p.Target, p.Credential.Provider)
		prov, ok := bt.providers[key]
		switch {
		case !slices.Contains(bt.names, p.Target):
			log.Warn("access policy names a target that is not configured; it cannot be requested", "policy", p.Name, "target", p.Target)
		case kinds[p.Target] != p.Kind:
			errs = append(errs, fmt.Errorf("access policy %s: its permissions are for targets of kind %s, and target %s is of kind %s", p.Name, p.Kind, p.Target, kinds[p.Target]))
		case !ok:
			errs = append(errs, fmt.Errorf("access policy %s: no credential provider %q for target %s", p.Name, p.Credential.Provider, p.Target))
		default:
			if err := prov.ValidateOptions(p.Credential.Options); err != nil {
				errs = append(errs, fmt.Errorf("access policy %s: credential: %w", p.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
