// Command devenv runs jitproxy against a local cluster, for `make run`: it
// starts etcd, kube-apiserver and Vault (test/servers), applies the demo
// setup (deploy/demo, deploy/vault), starts MinIO as the S3 and STS of a
// target aws with the buckets reports and other (-aws=false leaves it
// out), writes a jitproxy configuration for them, runs `jitproxy serve`,
// creates an agent session and prints the agent's shell setup and the
// grant commands to try. Interrupt it to stop everything.
//
// With --kubeconfig it targets that cluster's current context instead of
// starting one, after applying deploy/demo/cluster.yaml to it; MinIO and
// the target aws are the same.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/jitproxy/jitproxy/test/servers"
)

func main() {
	// If whatever started devenv (make) dies, devenv must still stop the
	// servers: ask the kernel for SIGTERM when the parent goes.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

type options struct {
	root, jitproxy, kubectl, kubeconfig, dir string
	vault, aws                               bool
	// awsTarget is the configuration of the target aws (startAWS) and
	// minioURL its upstream; both empty without -aws.
	awsTarget, minioURL string
}

func run(ctx context.Context, args []string) error {
	root, err := servers.Root()
	if err != nil {
		return err
	}
	var o options
	fs := flag.NewFlagSet("devenv", flag.ContinueOnError)
	fs.StringVar(&o.jitproxy, "jitproxy", filepath.Join(root, "bin", "jitproxy"), "the jitproxy binary")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "use this kubeconfig's current context instead of starting a cluster")
	fs.BoolVar(&o.vault, "vault", true, "start Vault and offer the Vault access policies (local cluster only)")
	fs.BoolVar(&o.aws, "aws", true, "start MinIO as the S3 and STS of a target aws")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.root = root
	o.dir = filepath.Join(root, ".cache", "devenv")
	if o.kubectl, err = servers.Bin("kubectl"); err != nil {
		return err
	}
	os.RemoveAll(o.dir)
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	if o.aws {
		m, target, err := startAWS(ctx, o)
		if err != nil {
			return err
		}
		defer m.Stop()
		o.awsTarget, o.minioURL = target, m.URL
	}
	var cfg string
	if o.kubeconfig != "" {
		cfg, err = existingCluster(ctx, o)
	} else {
		var env *servers.Env
		env, cfg, err = localCluster(ctx, o)
		if env != nil {
			defer env.Stop()
		}
	}
	if err != nil {
		return err
	}
	return serve(ctx, o, cfg)
}

func step(format string, args ...any) { fmt.Fprintf(os.Stderr, "devenv: "+format+"\n", args...) }

// localCluster starts the servers, applies the demo and writes the config.
func localCluster(ctx context.Context, o options) (*servers.Env, string, error) {
	step("starting etcd, kube-apiserver%s under %s", map[bool]string{true: " and Vault"}[o.vault], o.dir)
	env, err := servers.StartEnv(ctx, o.dir, servers.Options{Vault: o.vault})
	if err != nil {
		return nil, "", err
	}
	step("kube-apiserver at %s; applying deploy/demo (namespaces demo and staging, their ServiceAccounts and Roles)", env.Kube.URL)
	if err := env.Bootstrap(ctx, o.root, o.kubectl); err != nil {
		return env, "", err
	}
	access, err := servers.AccessPolicies(o.root, o.dir, o.vault)
	if err != nil {
		return env, "", err
	}
	var vault, mount string
	if env.Vault != nil {
		step("Vault at %s, configured by deploy/vault/setup.sh", env.Vault.Addr)
		jwt, err := env.ServiceAccountToken(ctx, o.kubectl, "jitproxy-system", "jitproxy")
		if err != nil {
			return env, "", err
		}
		vault = fmt.Sprintf("vault:\n  address: %s\n  auth: {method: kubernetes, role: jitproxy, jwt_file: %s}\n", env.Vault.Addr, jwt)
		mount = "    vault_mount: kubernetes\n"
	}
	cfg := fmt.Sprintf(`# Written by devenv (make run) for the local cluster under .cache/devenv.
state_dir: %s
log: {level: info}
policies: {access_dir: %s}
%stargets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
%s%s`, filepath.Join(o.root, ".jitproxy"), access, vault, env.Kube.URL, env.Kube.CAFile, env.Kube.JitproxyTokenFile, mount, o.awsTarget)
	path := filepath.Join(o.dir, "jitproxy.yaml")
	return env, path, os.WriteFile(path, []byte(cfg), 0o600)
}

// existingCluster writes a config for the kubeconfig's current context.
func existingCluster(ctx context.Context, o options) (string, error) {
	raw, err := clientcmd.LoadFromFile(o.kubeconfig)
	if err != nil {
		return "", err
	}
	kctx := raw.Contexts[raw.CurrentContext]
	if kctx == nil || raw.Clusters[kctx.Cluster] == nil {
		return "", fmt.Errorf("%s has no current context", o.kubeconfig)
	}
	cluster := raw.Clusters[kctx.Cluster]
	ca := cluster.CertificateAuthority
	if len(cluster.CertificateAuthorityData) > 0 {
		ca = filepath.Join(o.dir, "cluster-ca.crt")
		if err := os.WriteFile(ca, cluster.CertificateAuthorityData, 0o600); err != nil {
			return "", err
		}
	}
	step("applying deploy/demo/cluster.yaml to context %s (%s)", raw.CurrentContext, cluster.Server)
	cmd := exec.CommandContext(ctx, o.kubectl, "--kubeconfig", o.kubeconfig, "apply", "-f", filepath.Join(o.root, "deploy", "demo", "cluster.yaml"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	access, err := servers.AccessPolicies(o.root, o.dir, false)
	if err != nil {
		return "", err
	}
	caLine := ""
	if ca != "" {
		caLine = "    ca_file: " + ca + "\n"
	}
	cfg := fmt.Sprintf(`# Written by devenv (make run) for kubeconfig %s, context %s.
state_dir: %s
policies: {access_dir: %s}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
%s    credentials: {kubeconfig: %s}
%s`, o.kubeconfig, raw.CurrentContext, filepath.Join(o.root, ".jitproxy"), access, cluster.Server, caLine, o.kubeconfig, o.awsTarget)
	path := filepath.Join(o.dir, "jitproxy.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// serve runs jitproxy until ctx ends; once it is ready, it creates an agent
// session and prints what to paste.
func serve(ctx context.Context, o options, cfg string) error {
	cmd := exec.Command(o.jitproxy, "serve", "--config", cfg)
	cmd.Stdout = os.Stdout
	if o.aws {
		cmd.Env = withoutAWSIdentity(os.Environ())
	}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			var l struct{ Msg, Admin string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "jitproxy ready" {
				ready <- l.Admin
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	select {
	case admin := <-ready:
		if err := agentSession(ctx, o, admin); err != nil {
			step("creating the agent session: %v", err)
		}
	case err := <-done:
		return fmt.Errorf("jitproxy exited: %v", err)
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		step("stopped")
		return nil
	}
}

func agentSession(ctx context.Context, o options, admin string) error {
	kubeconfig := filepath.Join(o.dir, "agent.kubeconfig")
	envFile := filepath.Join(o.dir, "agent.env")
	args := []string{"session", "create", "--as", "runner", "--agent", "local-agent",
		"--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig, "--env", envFile, "--admin-url", admin,
		"--state-dir", filepath.Join(o.root, ".jitproxy")}
	if o.aws {
		args = append(args, "--aws-config", filepath.Join(o.dir, "agent.aws-config"))
	}
	cmd := exec.CommandContext(ctx, o.jitproxy, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(o.root, p); err == nil {
			return r
		}
		return p
	}
	jp := rel(o.jitproxy)
	var b strings.Builder
	fmt.Fprintf(&b, "\n================ jitproxy is ready ================\n")
	fmt.Fprintf(&b, "Agent shell (paste into another terminal, in %s):\n", o.root)
	if o.aws {
		fmt.Fprintf(&b, "  . %s        # HTTPS_PROXY with the session credential, CA bundles, KUBECONFIG, AWS_CONFIG_FILE\n", rel(envFile))
	} else {
		fmt.Fprintf(&b, "  . %s        # HTTPS_PROXY with the session credential, CA bundles, KUBECONFIG\n", rel(envFile))
	}
	fmt.Fprintf(&b, "  kubectl get pods -n demo        # denied: the message names the policies to request\n\n")
	fmt.Fprintf(&b, "As the user (dev) and an approver, in this directory:\n")
	fmt.Fprintf(&b, "  %s grant request pod-reader --as dev --namespace demo --reason \"look at web\"\n", jp)
	if o.vault && o.kubeconfig == "" {
		fmt.Fprintf(&b, "  %s grant request pod-reader-vault --as dev --namespace demo --reason \"same, credential from Vault\"\n", jp)
	}
	fmt.Fprintf(&b, "  %s grant request namespace-editor --as dev --namespace demo --reason \"roll back web\"\n", jp)
	fmt.Fprintf(&b, "  %s grant approve ID --as approver\n", jp)
	fmt.Fprintf(&b, "  %s grant list --as approver\n", jp)
	fmt.Fprintf(&b, "  %s grant revoke ID --as dev\n", jp)
	if o.aws {
		fmt.Fprintf(&b, "\nAWS: MinIO at %s is S3 and STS behind the target aws (buckets reports and other).\n", o.minioURL)
		fmt.Fprintf(&b, "In the agent shell (the aws CLI goes through jitproxy, which signs with a minted STS key):\n")
		fmt.Fprintf(&b, "  aws s3 ls s3://reports                 # denied: the message names the policies to request\n")
		fmt.Fprintf(&b, "  %s grant request reports-reader --reason \"read the q3 report\"   # the agent asks for itself; active at once\n", jp)
		fmt.Fprintf(&b, "  aws s3 ls s3://reports\n")
		fmt.Fprintf(&b, "  aws s3 cp s3://reports/q3.csv -\n")
		fmt.Fprintf(&b, "  aws s3 cp README.md s3://other/x      # denied: no policy grants anything in other\n")
		fmt.Fprintf(&b, "  %s grant request reports-writer --reason \"upload q4\"   # uploads to reports, after: grant approve ID --as approver\n", jp)
	}
	fmt.Fprintf(&b, "Audit events stream on this terminal's stdout. Ctrl-C stops everything.\n")
	fmt.Fprintf(&b, "===================================================\n")
	fmt.Fprint(os.Stderr, b.String())
	return nil
}
