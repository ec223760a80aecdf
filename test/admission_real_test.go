package test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestAdmissionRealCluster tries, as an agent holding a grant that may
// create and patch workloads in a namespace, every way kubectl has to write
// a pod that the Pod Security Standards (baseline) forbid: JSON, merge,
// strategic-merge and apply patches, creates, ephemeral containers, and
// every kind that carries a pod template. Each is refused, and the real
// apiserver shows that nothing changed. The benign versions of the same
// writes go through, conditional on the object jitproxy judged.
func TestAdmissionRealCluster(t *testing.T) {
	c := startRealCluster(t, servers.Options{Redis: true})
	cfg, state := c.config(t, freeAddr(t), freeAddr(t))
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)
	kubeconfig := filepath.Join(c.dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "e2e-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	ag := &agent{t: t, kubectl: c.kubectl, kubeconfig: kubeconfig, home: filepath.Join(c.dir, "home"), out: out}
	id := grantID(t, p.mustCLI("grant", "request", "namespace-editor", "--as", "dev", "--namespace", "demo", "--reason", "edit workloads"))
	p.mustCLI("grant", "approve", id, "--as", "approver")

	// rv reads an object's resourceVersion as the cluster's admin ("" if
	// there is none): a refused write must leave it as it was.
	rv := func(t *testing.T, kind, name string) string {
		t.Helper()
		got, err := c.env.Kubectl(context.Background(), c.kubectl, "get", kind, name, "-n", "demo", "-o", "jsonpath={.metadata.resourceVersion}", "--ignore-not-found")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(got)
	}
	// Benign workloads to patch, created through jitproxy (create and
	// server-side apply that creates are judged too).
	ag.mustRun("create", "deployment", "web", "-n", "demo", "--image=registry.k8s.io/pause:3.10")
	ag.mustRunStdin(daemonSet, "apply", "--server-side", "-f", "-")
	ag.mustRunStdin(replicationController(false), "create", "-f", "-")
	for kind, name := range map[string]string{"deployment": "web", "daemonset": "node-agent", "replicationcontroller": "legacy"} {
		if rv(t, kind, name) == "" {
			t.Fatalf("%s %s was not created", kind, name)
		}
	}

	refused := []struct {
		name       string
		kind, obj  string // the object that must not change ("" kind: nothing to check)
		stdin      string
		args       []string
		want       string
		wantAbsent bool // obj must not exist afterwards
	}{
		{
			name: "JSON patch sets hostPID on a Deployment", kind: "deployment", obj: "web",
			args: []string{"patch", "deployment", "web", "--type=json", "-p", `[{"op":"add","path":"/spec/template/spec/hostPID","value":true}]`},
			want: "host namespaces (hostPID=true)",
		},
		{
			name: "JSON patch mounts hostPath / into a Deployment", kind: "deployment", obj: "web",
			args: []string{"patch", "deployment", "web", "--type=json", "-p", `[{"op":"add","path":"/spec/template/spec/volumes","value":[{"name":"root","hostPath":{"path":"/"}}]}]`},
			want: "hostPath volumes",
		},
		{
			name: "merge patch makes a Deployment's container privileged", kind: "deployment", obj: "web",
			args: []string{"patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"pause","image":"registry.k8s.io/pause:3.10","securityContext":{"privileged":true}}]}}}}`},
			want: "privileged",
		},
		{
			name: "strategic merge patch puts a Deployment on the host network", kind: "deployment", obj: "web",
			args: []string{"patch", "deployment", "web", "-p", `{"spec":{"template":{"spec":{"hostNetwork":true}}}}`},
			want: "host namespaces (hostNetwork=true)",
		},
		{
			name: "server-side apply gives a Deployment hostIPC", kind: "deployment", obj: "web", stdin: deploymentApply("web", "hostIPC: true"),
			args: []string{"apply", "--server-side", "--force-conflicts", "-f", "-"},
			want: "host namespaces (hostIPC=true)",
		},
		{
			name: "JSON patch makes a DaemonSet privileged", kind: "daemonset", obj: "node-agent",
			args: []string{"patch", "daemonset", "node-agent", "--type=json", "-p", `[{"op":"add","path":"/spec/template/spec/containers/0/securityContext","value":{"privileged":true}}]`},
			want: "privileged",
		},
		{
			name: "JSON patch on a Pod", kind: "pod", obj: "web",
			args: []string{"patch", "pod", "web", "--type=json", "-p", `[{"op":"add","path":"/spec/containers/0/securityContext","value":{"privileged":true}}]`},
			want: "Forbidden", // the apiserver's own dry run refuses: a pod's containers are immutable
		},
		{
			name: "a privileged ephemeral container (kubectl debug --profile=sysadmin)", kind: "pod", obj: "web",
			args: []string{"debug", "web", "--image=registry.k8s.io/pause:3.10", "--profile=sysadmin", "--container=root"},
			want: "privileged",
		},
		{
			name: "JSON patch of pods/ephemeralcontainers adds a privileged container", kind: "pod", obj: "web",
			args: []string{"patch", "pod", "web", "--subresource=ephemeralcontainers", "--type=json", "-p",
				`[{"op":"add","path":"/spec/ephemeralContainers","value":[{"name":"root2","image":"registry.k8s.io/pause:3.10","securityContext":{"privileged":true}}]}]`},
			want: "privileged",
		},
		{
			name: "a ReplicationController created with a privileged template", kind: "replicationcontroller", obj: "priv-rc", wantAbsent: true,
			stdin: replicationControllerNamed("priv-rc", true), args: []string{"create", "-f", "-"},
			want: "privileged",
		},
		{
			name: "JSON patch makes a ReplicationController privileged", kind: "replicationcontroller", obj: "legacy",
			args: []string{"patch", "replicationcontroller", "legacy", "--type=json", "-p", `[{"op":"add","path":"/spec/template/spec/containers/0/securityContext","value":{"privileged":true}}]`},
			want: "privileged",
		},
		{
			name: "a PodTemplate with a hostPath volume", kind: "podtemplate", obj: "tpl", wantAbsent: true,
			stdin: podTemplate, args: []string{"create", "-f", "-"},
			want: "hostPath volumes",
		},
		{
			name: "a CronJob whose pods share the host's PIDs", kind: "cronjob", obj: "tick", wantAbsent: true,
			stdin: cronJob, args: []string{"create", "-f", "-"},
			want: "host namespaces (hostPID=true)",
		},
		{
			name: "server-side apply that would create a Deployment with hostPID", kind: "deployment", obj: "fresh", wantAbsent: true,
			stdin: deploymentApply("fresh", "hostPID: true"), args: []string{"apply", "--server-side", "-f", "-"},
			want: "host namespaces (hostPID=true)",
		},
	}
	for _, tt := range refused {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			ag.t = t
			defer func() { ag.t = nil }()
			before := rv(t, tt.kind, tt.obj)
			out, err := ag.runStdin(tt.stdin, append(tt.args, "-n", "demo")...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("kubectl %s: %v, want a refusal containing %q:\n%s", strings.Join(tt.args, " "), err, tt.want, out)
			}
			after := rv(t, tt.kind, tt.obj)
			if after != before || tt.wantAbsent && after != "" {
				t.Errorf("%s %s changed in the cluster: resourceVersion %q, then %q", tt.kind, tt.obj, before, after)
			}
		})
	}
	ag.t = t

	allowed := []struct {
		name      string
		kind, obj string
		stdin     string
		args      []string
	}{
		{name: "JSON patch scales a Deployment", kind: "deployment", obj: "web",
			args: []string{"patch", "deployment", "web", "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":2}]`}},
		{name: "strategic merge patch labels a Pod", kind: "pod", obj: "web", args: []string{"label", "pod", "web", "checked=yes"}},
		{name: "server-side apply creates a Deployment", kind: "deployment", obj: "applied", stdin: deploymentApply("applied", "terminationGracePeriodSeconds: 5"),
			args: []string{"apply", "--server-side", "-f", "-"}},
		{name: "server-side apply changes it", kind: "deployment", obj: "applied", stdin: deploymentApply("applied", "terminationGracePeriodSeconds: 7"),
			args: []string{"apply", "--server-side", "-f", "-"}},
		{name: "client-side apply of a DaemonSet", kind: "daemonset", obj: "node-agent", stdin: strings.Replace(daemonSet, "app: node-agent\n", "app: node-agent\n        tier: system\n", 1),
			args: []string{"apply", "-f", "-"}},
		{name: "a baseline ephemeral container", kind: "pod", obj: "web",
			args: []string{"debug", "web", "--image=registry.k8s.io/pause:3.10", "--profile=baseline", "--container=debugger"}},
	}
	for _, tt := range allowed {
		t.Run("allowed: "+tt.name, func(t *testing.T) {
			ag.t = t
			defer func() { ag.t = nil }()
			before := rv(t, tt.kind, tt.obj)
			ag.mustRunStdin(tt.stdin, append(tt.args, "-n", "demo")...)
			if after := rv(t, tt.kind, tt.obj); after == before || after == "" {
				t.Errorf("%s %s did not change: resourceVersion %q, then %q", tt.kind, tt.obj, before, after)
			}
		})
	}
	ag.t = t
	if got, _ := c.env.Kubectl(context.Background(), c.kubectl, "get", "deployment", "applied", "-n", "demo", "-o", "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}"); got != "7" {
		t.Errorf("the applied deployment's grace period is %q, want 7", got)
	}

	t.Run("the decisions are audited with the judged object's reasons", func(t *testing.T) {
		var forbidden int
		for _, e := range p.settledAuditEvents() {
			d, _ := e["decision"].(map[string]any)
			if d == nil || d["allowed"] == true {
				continue
			}
			for _, r := range d["reasons"].([]any) {
				if strings.Contains(r.(string), `PodSecurity "baseline:latest"`) {
					forbidden++
					break
				}
			}
		}
		if forbidden < len(refused)-1 { // the Pod patch is refused by the apiserver's own dry run
			t.Errorf("%d audited refusals name the Pod Security Standards, want %d", forbidden, len(refused)-1)
		}
	})
}

func (a *agent) mustRunStdin(stdin string, args ...string) string {
	a.t.Helper()
	out, err := a.runStdin(stdin, args...)
	if err != nil {
		a.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: demo}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata:
      labels:
        app: node-agent
    spec:
      containers:
        - {name: agent, image: registry.k8s.io/pause:3.10}
`

func replicationController(privileged bool) string {
	return replicationControllerNamed("legacy", privileged)
}

func replicationControllerNamed(name string, privileged bool) string {
	sc := ""
	if privileged {
		sc = ", securityContext: {privileged: true}"
	}
	return `apiVersion: v1
kind: ReplicationController
metadata: {name: ` + name + `, namespace: demo}
spec:
  replicas: 0
  selector: {app: ` + name + `}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      containers:
        - {name: c, image: registry.k8s.io/pause:3.10` + sc + `}
`
}

const podTemplate = `apiVersion: v1
kind: PodTemplate
metadata: {name: tpl, namespace: demo}
template:
  spec:
    containers:
      - {name: c, image: registry.k8s.io/pause:3.10}
    volumes:
      - {name: root, hostPath: {path: /}}
`

const cronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: demo}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          hostPID: true
          restartPolicy: Never
          containers:
            - {name: c, image: registry.k8s.io/pause:3.10}
`

// deploymentApply is a Deployment manifest for server-side apply, with one
// more line in its pod spec.
func deploymentApply(name, podSpecLine string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `, namespace: demo}
spec:
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      ` + podSpecLine + `
      containers:
        - {name: pause, image: registry.k8s.io/pause:3.10}
`
}
