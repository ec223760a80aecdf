package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "c.yaml", `
state_dir: st
proxy: {listen: "127.0.0.1:1111"}
admin: {listen: "127.0.0.1:2222"}
log: {level: warn}
sessions: {ttl: 1h, max_ttl: 2h}
policies: {access_dir: acc}
`)
	cfg, _, err := serveFlags([]string{"--config", cfgPath, "--admin-listen", "127.0.0.1:4444"},
		env(map[string]string{"JITPROXY_PROXY_LISTEN": "127.0.0.1:3333", "JITPROXY_ADMIN_LISTEN": "127.0.0.1:9999"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.StateDir, cfg.Proxy.Listen, cfg.Admin.Listen, cfg.Log.Level, cfg.Log.Format, cfg.Sessions.TTL.String(), cfg.Policies.WatchInterval.String()}
	want := []string{filepath.Join(dir, "st"), "127.0.0.1:3333", "127.0.0.1:4444", "warn", "json", time.Hour.String(), "5s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("file < env < flags (-want +got):\n%s", diff)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "unknown key", yaml: "proxy: {listne: x}\n", want: []string{"field listne not found"}},
		{name: "bad duration", yaml: "sessions: {ttl: soon}\n", want: []string{"line 1", "`soon` into time.Duration"}},
		{
			name: "limits that would switch a protection off",
			yaml: "proxy: {max_tunnels_per_session: 0, timeouts: {idle: 0s, body: -1s}}\nadmin: {timeouts: {read: 0s}}\npolicies: {watch_interval: -1s, on_change: pause}\n",
			want: []string{"proxy.max_tunnels_per_session must be positive", "proxy.timeouts.idle 0s must be positive",
				"proxy.timeouts.body -1s must be positive", "admin.timeouts.read 0s must be positive",
				"policies.watch_interval -1s must not be negative", `policies.on_change "pause": want revoke, suspend or keep`},
		},
		{
			name: "every problem at once",
			yaml: `
log: {level: loud}
proxy: {listen: nowhere, url: "https://x"}
admin:
  identities: [{name: a, token: x, token_file: y}]
targets:
  - {name: k, kind: nomad, upstream: "http://plain", hosts: []}
`,
			want: []string{
				`log.level "loud"`, `proxy.listen "nowhere"`, `proxy.url "https://x"`, "set exactly one of token and token_file",
				`kind "nomad"`, "hosts is required", `upstream "http://plain"`, "credentials: set kubeconfig or token_file",
			},
		},
		{
			name: "audit sinks",
			yaml: `
audit:
  sync: sometimes
  sinks:
    - {name: stdout, type: stdout}
    - {name: a/b, type: kafka, format: cef, mode: strict}
    - {name: f, type: file}
    - {name: h, type: splunk_hec, splunk_hec: {url: "https://splunk:8088"}}
    - {name: s, type: syslog}
    - {name: w, type: webhook, sync: never}
    - {name: n, type: webhook, format: ocsf, webhook: {url: "https://hooks.example.com", payload: slack}}
`,
			want: []string{
				`audit.sync "sometimes"`, "audit.sinks[0] (stdout): the name is used twice",
				"audit.sinks[1] (a/b): the name names a spool directory", `type "kafka"`, `format "cef": want native or ocsf`, `mode "strict"`,
				"audit.sinks[2] (f): file.path is required", "splunk_hec.url and splunk_hec.token_file are required",
				"audit.sinks[4] (s): syslog.address is required", "audit.sinks[5] (w): webhook.url is required", `sync "never"`,
				"audit.sinks[6] (n): webhook.payload slack is made from native records",
			},
		},
		{
			name: "identities",
			yaml: `
admin:
  users:
    - {name: alice, identities: ["ldap:corp:alice", "serviceaccount:demo:nons"]}
  oidc:
    - {name: corp, issuer: "http://idp.example.com", client_ids: []}
    - {name: corp, issuer: "https://idp.example.com", client_ids: [jitproxy], unmapped_users: maybe}
    - {name: "a:b", issuer: "https://idp.example.com", client_ids: [jitproxy]}
  service_accounts:
    - {target: aws, issuer: "https://kubernetes.default.svc"}
    - {target: nowhere, audiences: [""], cache_ttl: -1s}
targets:
  - {name: aws, kind: aws}
`,
			want: []string{
				`admin.users[0] (alice): identity "ldap:corp:alice": unknown kind "ldap"`,
				`admin.users[0] (alice): identity "serviceaccount:demo:nons": want serviceaccount:TARGET:NAMESPACE/NAME`,
				`admin.oidc[0] (corp): issuer "http://idp.example.com": http only on a loopback address`,
				"admin.oidc[0] (corp): client_ids: list at least one", "admin.oidc[1] (corp): name used twice",
				`admin.oidc[1] (corp): unmapped_users "maybe"`, "admin.oidc[2] (a:b): name is required, without colons",
				`admin.oidc[2] (a:b): issuer "https://idp.example.com" is also admin.oidc[1] (corp)'s`,
				`admin.service_accounts[0] (aws): target "aws": want the name of a kubernetes target`,
				"admin.service_accounts[1] (nowhere): issuer is required", "admin.service_accounts[1] (nowhere): audiences: none may be empty",
				"admin.service_accounts[1] (nowhere): cache_ttl must not be negative",
			},
		},
		{
			name: "client rate limits that would stop minting",
			yaml: `
targets:
  - {name: a, kind: kubernetes, hosts: [a], upstream: "https://a", credentials: {token_file: t}, client: {qps: 0, burst: 0}}
  - {name: b, kind: kubernetes, hosts: [b], upstream: "https://b", credentials: {token_file: t}, client: {qps: -1, burst: -5}}
  - {name: c, kind: kubernetes, hosts: [c], upstream: "https://c", credentials: {token_file: t}, client: {qps: .inf}}
`,
			want: []string{
				"targets[0] (a): client.qps 0 must be a positive number", "targets[0] (a): client.burst 0 must be at least 1",
				"targets[1] (b): client.qps -1 must be a positive number", "targets[1] (b): client.burst -5 must be at least 1",
				"targets[2] (c): client.qps +Inf must be a positive number",
			},
		},
		{
			name: "aws targets",
			yaml: `
targets:
  - {name: a, kind: aws, credentials: {token_file: t}}
  - {name: b, kind: aws, upstream: "http://minio", aws: {sts: {endpoint: "sts.local"}}}
  - {name: c, kind: aws, client: {qps: 10}}
`,
			want: []string{
				"targets[2] (c): credentials, client and discovery are for kubernetes targets",
				"targets[0] (a): credentials, client and discovery are for kubernetes targets",
				`targets[1] (b): upstream "http://minio": want an https URL`,
				`targets[1] (b): aws.sts.endpoint "sts.local": want an https URL`,
			},
		},
		{
			name: "tracing",
			yaml: "tracing: {enabled: true, endpoint: \"collector:4318\", sample_ratio: 2}\n",
			want: []string{`tracing.endpoint "collector:4318": want the OTLP/HTTP collector's URL`},
		},
		{
			name: "tracing sample ratio",
			yaml: "tracing: {enabled: true, endpoint: \"http://collector:4318\", sample_ratio: -0.5}\n",
			want: []string{"tracing.sample_ratio -0.5: want 0 to 1"},
		},
		{
			name: "approval page client not accepted by its provider",
			yaml: `
admin:
  oidc: [{name: corp, issuer: "https://idp.example.com", client_ids: [jitproxy-cli]}]
  page:
    enabled: true
    oidc: {provider: corp, client_id: jitproxy-page, client_secret_file: s, redirect_url: "https://jitproxy.example.com/ui/callback"}
`,
			want: []string{`admin.page.oidc.client_id "jitproxy-page" must be among admin.oidc corp's client_ids`},
		},
		{
			name: "approval page",
			yaml: `
admin:
  page:
    enabled: true
    session_ttl: -1h
    oidc: {provider: corp, redirect_url: "https://jitproxy.example.com/callback", scopes: [email]}
`,
			want: []string{
				`admin.page.oidc.provider "corp": want the name of an admin.oidc provider`,
				"admin.page.oidc.client_secret_file is required",
				`admin.page.oidc.redirect_url "https://jitproxy.example.com/callback": want https://HOST/ui/callback`,
				"admin.page.oidc.scopes [email] must include openid",
				"admin.page.session_ttl -1h0m0s must not be negative",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", tt.yaml)
			_, _, err := serveFlags([]string{"--config", p}, env(nil), &bytes.Buffer{})
			if err == nil {
				t.Fatal("serveFlags() = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("state_dir: x\nproxy: {listen: 127.0.0.1:1}\n")
	f.Add("targets: [{name: a, kind: kubernetes, hosts: [h], upstream: 'https://h', credentials: {token_file: t}}]\n")
	f.Add("targets: [{name: a, kind: kubernetes, hosts: [h], upstream: 'https://h', credentials: {token_file: t}, client: {qps: 0.5, burst: 1}}]\n")
	f.Add("targets: [{name: aws, kind: aws, upstream: 'https://minio:9000', aws: {region: us-east-1, sts: {endpoint: 'https://minio:9000'}}}]\n")
	f.Fuzz(func(t *testing.T, data string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(data), 0o600)
		cfg, err := loadConfig(p)
		if err != nil {
			return
		}
		cfg.validate() // must not panic
	})
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access")
	os.Mkdir(access, 0o700)
	writeFile(t, access, "p.yaml", `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reader}
spec:
  target: demo
  subjects: {groups: [dev]}
  namespaces: [demo]
  permissions: [{verbs: [get], apiGroups: [""], resources: [pods]}]
  duration: {max: 1h}
  credential: {provider: tokenrequest, options: {serviceAcount: typo}}
`)
	tok := writeFile(t, dir, "token", "t")
	cfg := writeFile(t, dir, "c.yaml", `
state_dir: st
policies: {access_dir: access}
targets:
  - {name: demo, kind: kubernetes, hosts: [kubernetes.demo], upstream: "https://127.0.0.1:6443", credentials: {token_file: token}}
`)
	_ = tok
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"serve", "--config", cfg, "--check-config"}, env(nil), &stdout, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `access policy reader: credential: unknown option "serviceAcount"`) {
		t.Errorf("check-config = %v, want the policy's typo reported", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "st")); !os.IsNotExist(err) {
		t.Error("--check-config created state")
	}
	os.WriteFile(filepath.Join(access, "p.yaml"), []byte(strings.Replace(string(mustRead(t, filepath.Join(access, "p.yaml"))), "serviceAcount", "serviceAccount", 1)), 0o600)
	if err := run(context.Background(), []string{"serve", "--config", cfg, "--check-config"}, env(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Errorf("check-config after the fix = %v", err)
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{name: "version", args: []string{"version"}, wantOut: "jitproxy dev"},
		{name: "no command", args: nil, wantErr: "no command given"},
		{name: "unknown", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{name: "grant without subcommand", args: []string{"grant"}, wantErr: "a subcommand is required"},
		{name: "unknown subcommand", args: []string{"grant", "steal"}, wantErr: `unknown command "grant steal"`},
		{name: "no credential", args: []string{"grant", "list"}, wantErr: "no credential"},
		{name: "unknown identity", args: []string{"grant", "list", "--as", "nobody", "--state-dir", "/nonexistent"}, wantErr: "--as nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, env(nil), &out, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("run(%v) = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run(%v) = %v, %q", tt.args, err, out.String())
			}
		})
	}
}
