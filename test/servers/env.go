package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Env is the whole set: Redis, etcd, kube-apiserver and, if asked, Vault
// and MinIO.
type Env struct {
	Dir   string
	Redis *Redis
	Etcd  *Etcd
	Kube  *KubeAPIServer
	Vault *Vault
	MinIO *MinIO
}

// Options selects what StartEnv starts.
type Options struct {
	Redis bool
	// DurableRedis starts Redis with an append-only file synced on every
	// write (StartDurableRedis), so that it keeps its data across Kill and
	// Restart. It implies Redis.
	DurableRedis bool
	Vault        bool
	// MinIO starts MinIO (StartMinIO): S3 and STS.
	MinIO bool
}

// StartEnv starts the servers under dir. On error, whatever started is stopped.
func StartEnv(ctx context.Context, dir string, o Options) (_ *Env, err error) {
	e := &Env{Dir: dir}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	switch {
	case o.DurableRedis:
		if e.Redis, err = StartDurableRedis(ctx, dir); err != nil {
			return nil, err
		}
	case o.Redis:
		if e.Redis, err = StartRedis(ctx, dir); err != nil {
			return nil, err
		}
	}
	if e.Etcd, err = StartEtcd(ctx, dir); err != nil {
		return nil, err
	}
	if e.Kube, err = StartKubeAPIServer(ctx, dir, e.Etcd.URL); err != nil {
		return nil, err
	}
	if o.Vault {
		if e.Vault, err = StartVault(ctx, dir); err != nil {
			return nil, err
		}
	}
	if o.MinIO {
		if e.MinIO, err = StartMinIO(ctx, dir); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Stop stops every server, newest first.
func (e *Env) Stop() {
	if e.MinIO != nil {
		e.MinIO.Stop()
	}
	if e.Vault != nil {
		e.Vault.Stop()
	}
	if e.Kube != nil {
		e.Kube.Stop()
	}
	if e.Etcd != nil {
		e.Etcd.Stop()
	}
	if e.Redis != nil {
		e.Redis.Stop()
	}
}

// Processes lists the running servers.
func (e *Env) Processes() []*Process {
	var out []*Process
	if e.Redis != nil {
		out = append(out, e.Redis.Process)
	}
	if e.Etcd != nil {
		out = append(out, e.Etcd.Process)
	}
	if e.Kube != nil {
		out = append(out, e.Kube.Process)
	}
	if e.Vault != nil {
		out = append(out, e.Vault.Process)
	}
	if e.MinIO != nil {
		out = append(out, e.MinIO.Process)
	}
	return out
}

// KeepLogs copies every server's log into dir, for a failed test whose
// own directory is about to be removed.
func (e *Env) KeepLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, p := range e.Processes() {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, p.Name+".log"), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Kubectl runs kubectl as the cluster's admin and returns its output.
func (e *Env) Kubectl(ctx context.Context, kubectl string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", e.Kube.AdminKubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+e.Dir, "HTTPS_PROXY=", "https_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Bootstrap applies the demo setup (deploy/demo/cluster.yaml) and, with
// Vault, Vault's cluster RBAC and deploy/vault/setup.sh.
func (e *Env) Bootstrap(ctx context.Context, root, kubectl string) error {
	if _, err := e.Kubectl(ctx, kubectl, "apply", "-f", filepath.Join(root, "deploy", "demo", "cluster.yaml")); err != nil {
		return err
	}
	if e.Vault == nil {
		return nil
	}
	return e.SetupVault(ctx, root, kubectl)
}

// SetupVault applies Vault's cluster RBAC and runs deploy/vault/setup.sh:
// what Bootstrap does for Vault, and what a restarted dev server needs.
func (e *Env) SetupVault(ctx context.Context, root, kubectl string) error {
	if _, err := e.Kubectl(ctx, kubectl, "apply", "-f", filepath.Join(root, "deploy", "vault", "vault-rbac.yaml")); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "deploy", "vault", "setup.sh"))
	cmd.Env = append(os.Environ(), e.Vault.Env()...)
	cmd.Env = append(cmd.Env, "KUBE_HOST="+e.Kube.URL, "KUBE_CA_FILE="+e.Kube.CAFile, "VAULT_KUBE_TOKEN_FILE="+e.Kube.VaultTokenFile, "HOME="+e.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("deploy/vault/setup.sh: %w\n%s", err, out)
	}
	return nil
}

// ServiceAccountToken mints, as admin, a token for namespace/name and writes
// it to a file under the env's directory (what a pod's projected token is).
func (e *Env) ServiceAccountToken(ctx context.Context, kubectl, namespace, name string) (string, error) {
	out, err := e.Kubectl(ctx, kubectl, "create", "token", name, "-n", namespace, "--duration=24h")
	if err != nil {
		return "", err
	}
	p := filepath.Join(e.Dir, namespace+"-"+name+".token")
	if err := os.WriteFile(p, []byte(strings.TrimSpace(out)), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// AccessPolicies copies the example access policies (policies/access and,
// with vault, deploy/vault/access) into dir/access and returns that
// directory, for a configuration's policies.access_dir.
func AccessPolicies(root, dir string, vault bool) (string, error) {
	out := filepath.Join(dir, "access")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	srcs := []string{"policies/access"}
	if vault {
		srcs = append(srcs, "deploy/vault/access")
	}
	for _, src := range srcs {
		files, err := filepath.Glob(filepath.Join(root, src, "*.yaml"))
		if err != nil {
			return "", err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o600); err != nil {
				return "", err
			}
		}
	}
	return out, nil
}
