package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jitproxy/jitproxy/internal/jit/rbacconv"
)

// convertRBAC is `jitproxy policy convert-rbac`: it reads RBAC from a
// cluster (--kubeconfig) or from manifests (-f), writes the access
// policies to stdout and warnings to stderr.
func convertRBAC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy convert-rbac", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files multiFlag
	fs.Var(&files, "f", "a manifest file of Roles, ClusterRoles and bindings (YAML or JSON, multi-document, Lists); repeatable")
	kubeconfig := fs.String("kubeconfig", "", "read RBAC from the cluster of this kubeconfig")
	kubeContext := fs.String("context", "", "the kubeconfig context (default: its current one)")
	target := fs.String("target", "", "the jitproxy target the policies grant on (required)")
	namespace := fs.String("namespace", "", "convert only the RoleBindings of this namespace")
	excludeSystem := fs.Bool("exclude-system", true, "leave out the cluster's own bindings (system:*, kube-system, rbac-defaults)")
	maxDuration := fs.Duration("max-duration", rbacconv.DefaultMaxDuration, "the policies' maximum grant duration")
	approvers := fs.String("approvers", "", "comma-separated groups, one of whom must approve each grant (default: no approval)")
	provider := fs.String("credential-provider", rbacconv.DefaultProvider, "the credential provider of the policies")
	var credOpts multiFlag
	fs.Var(&credOpts, "credential-option", "KEY=VALUE, an option of the credential provider; repeatable (default for tokenrequest: a ServiceAccount jitproxy-POLICY per policy)")
	saNamespace := fs.String("service-account-namespace", rbacconv.DefaultServiceAccountNamespace, "with tokenrequest, the namespace of cluster-wide policies' ServiceAccounts")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	var errs []error
	if *target == "" {
		errs = append(errs, errors.New("--target is required"))
	}
	if (len(files) == 0) == (*kubeconfig == "") {
		errs = append(errs, errors.New("give either -f FILE or --kubeconfig FILE"))
	}
	opts := map[string]string{}
	for _, kv := range credOpts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("--credential-option %q is not KEY=VALUE", kv))
		}
		opts[k] = v
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("policy convert-rbac: %w", err)
	}
	var r rbacconv.RBAC
	if *kubeconfig != "" {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
		if err != nil {
			return fmt.Errorf("policy convert-rbac: load kubeconfig: %w", err)
		}
		cfg.Timeout = 30 * time.Second
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("policy convert-rbac: %w", err)
		}
		if r, err = rbacconv.ReadCluster(ctx, c.RbacV1(), *namespace); err != nil {
			return fmt.Errorf("policy convert-rbac: %w", err)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("policy convert-rbac: %w", err)
		}
		got, err := rbacconv.ReadManifests(f, data)
		if err != nil {
			return fmt.Errorf("policy convert-rbac: %w", err)
		}
		r.Add(got)
	}
	var groups []string
	for g := range strings.SplitSeq(*approvers, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	if len(opts) == 0 {
		opts = nil
	}
	res, err := rbacconv.Convert(r, rbacconv.Options{
		Target: *target, Namespace: *namespace, IncludeSystem: !*excludeSystem, MaxDuration: *maxDuration,
		Approvers: groups, Provider: *provider, CredentialOptions: opts, ServiceAccountNamespace: *saNamespace,
	})
	if err != nil {
		return fmt.Errorf("policy convert-rbac: %w", err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stderr, "%d access policies converted\n", len(res.Policies))
	return rbacconv.Write(stdout, res.Policies)
}

// multiFlag is a flag that may be given more than once.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
