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

	vaultapi "github.com/hashicorp/vault/api"
	kubeauth "github.com/hashicorp/vault/api/auth/kubernetes"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/broker/tokenrequest"
	vaultprovider "github.com/jitproxy/jitproxy/internal/broker/vault"
	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// builtTargets is what the configured targets turn into.
type builtTargets struct {
	targets   []*intercept.Target
	providers map[string]broker.Provider
	infos     []jit.TargetInfo
	names     []string
}

func buildTargets(cfg *Config, log *slog.Logger) (*builtTargets, error) {
	out := &builtTargets{providers: map[string]broker.Provider{}}
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
		if err := out.addKubernetes(tc); err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", tc.Name, err))
			continue
		}
		if tc.VaultMount != "" {
			p, err := vaultprovider.New(vaultprovider.Config{
				Client: vc, Login: login, Mount: tc.VaultMount,
				Logger: log.With("component", "vault", "target", tc.Name),
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out.providers[broker.ProviderKey(tc.Name, vaultprovider.Name)] = p
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

func (b *builtTargets) addKubernetes(tc TargetConfig) error {
	upstream, err := url.Parse(tc.Upstream)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca_file %s holds no PEM certificate", tc.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:               nil, // never the environment's proxy: jitproxy may be it
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
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

// restConfig is jitproxy's own identity towards a cluster, for TokenRequest.
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
	rc.UserAgent = "jitproxy/" + version
	return rc, nil
}

// checkPolicies validates every access policy's credential options against
// its provider. Policies for targets not configured here are reported in
// the log; requests under them are refused.
func checkPolicies(ps *jit.Policies, bt *builtTargets, log *slog.Logger) error {
	var errs []error
	for _, p := range ps.All() {
		key := broker.ProviderKey(p.Target, p.Credential.Provider)
		prov, ok := bt.providers[key]
		switch {
		case !slices.Contains(bt.names, p.Target):
			log.Warn("access policy names a target that is not configured; it cannot be requested", "policy", p.Name, "target", p.Target)
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
