package test

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/jitproxy/jitproxy/test/servers"
)

// awsLearningStory is issue 12's end to end for AWS, a part of
// TestAWSRealMinIO: an aws CLI script runs under a learning grant of
// reports-editor; its profile lists the S3 actions and ARNs; the profile
// is exported as an access policy (the boundary's STS credential) and
// loaded; the same script then passes under an ordinary grant of the
// learned policy, and a command it never ran is denied by jitproxy. The
// IAM export allows exactly what was recorded. It returns the AWS
// credentials minted meanwhile, for the canary search.
func awsLearningStory(t *testing.T, w *awsWorld, p *proxyProc, agent *awsAgent) (minted []aws.Credentials) {
	const name = "learned-reports"
	script := [][]string{
		{"s3", "ls", "s3://reports"},
		{"s3", "cp", "s3://reports/q3.csv", "-"},
	}
	got := p.mustCLI("grant", "request", "reports-editor", "--as", "dev", "--learn", "--duration", "30m", "--reason", "learn what the script needs")
	learn := grantID(t, got)
	if !strings.Contains(got, "learning: every distinct action is recorded") {
		t.Errorf("learning grant:\n%s", got)
	}
	for _, args := range script {
		agent.mustRun(args...)
	}
	minted = append(minted, mintedAWSKeys(t, w.redis.Addr)...)
	waitUntil(t, "the profile to be written", 10*time.Second, func() bool {
		got, err := p.cli("profile", "show", learn, "--as", "dev")
		return err == nil && strings.Contains(got, "s3:ListBucket") && strings.Contains(got, "s3:GetObject")
	})
	show := p.mustCLI("profile", "show", learn, "--as", "dev")
	t.Logf("profile:\n%s", show)
	for _, want := range []string{"s3:ListBucket", "arn:aws:s3:::reports", "s3:GetObject", "arn:aws:s3:::reports/q3.csv"} {
		if !strings.Contains(show, want) {
			t.Errorf("profile show does not list %q:\n%s", want, show)
		}
	}
	for _, never := range []string{"s3:PutObject", "arn:aws:s3:::other"} {
		if strings.Contains(show, never) {
			t.Errorf("profile show lists %q, which the script never used:\n%s", never, show)
		}
	}

	// The IAM policy allows exactly what was recorded.
	var doc struct {
		Version   string
		Statement []struct {
			Effect    string
			Action    []string
			Resource  []string
			Condition map[string]map[string][]string
		}
	}
	iam := p.mustCLI("profile", "export", learn, "--as", "dev", "--format", "iam")
	t.Logf("exported IAM policy:\n%s", iam)
	if err := json.Unmarshal([]byte(iam), &doc); err != nil {
		t.Fatalf("the IAM export is not JSON: %v\n%s", err, iam)
	}
	allowed := map[string]bool{}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			t.Errorf("statement effect %q", st.Effect)
		}
		if r := st.Condition["StringEquals"]["aws:RequestedRegion"]; !slices.Equal(r, []string{"us-east-1"}) {
			t.Errorf("statement %v limited to regions %v, want [us-east-1]", st.Action, r)
		}
		for _, a := range st.Action {
			for _, r := range st.Resource {
				allowed[a+" "+r] = true
			}
		}
	}
	want := []string{"s3:GetObject arn:aws:s3:::reports/q3.csv", "s3:ListBucket arn:aws:s3:::reports"}
	if got := slices.Sorted(maps.Keys(allowed)); doc.Version != "2012-10-17" || !slices.Equal(got, want) {
		t.Errorf("IAM policy version %q allows %v, want exactly %v", doc.Version, got, want)
	}

	// The access policy: the learned statements, the boundary's STS credential.
	policy := p.mustCLI("profile", "export", learn, "--as", "dev", "--format", "access-policy", "--name", name)
	t.Logf("exported access policy:\n%s", policy)
	for _, want := range []string{"target: aws", "provider: sts", "roleArn: " + servers.AssumeRoleARN, "arn:aws:s3:::reports/q3.csv", "regions: [us-east-1]"} {
		if !strings.Contains(policy, want) {
			t.Errorf("the exported access policy lacks %q", want)
		}
	}
	p.mustCLI("grant", "revoke", learn, "--as", "dev", "--reason", "learned")

	// Load it (SIGHUP), without its regions: the STS session policy
	// makes them an aws:RequestedRegion condition, which AWS knows and
	// MinIO's STS refuses (InvalidParameterValue). jitproxy itself still
	// checks the region of each request.
	var kept []string
	for _, l := range strings.SplitAfter(policy, "\n") {
		if strings.TrimSpace(l) != "regions: [us-east-1]" {
			kept = append(kept, l)
		}
	}
	w.write(filepath.Join("access", name+".yaml"), strings.Join(kept, ""))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the learned policy to load", 20*time.Second, func() bool {
		got, _ := p.cli("policy", "list", "--as", "dev")
		return strings.Contains(got, name)
	})

	// The same script, under an ordinary grant of the learned policy.
	id := grantID(t, p.mustCLI("grant", "request", name, "--as", "dev", "--reason", "run the script"))
	if got := agent.mustRun(script[0]...); !strings.Contains(got, "q3.csv") {
		t.Errorf("s3 ls = %q, want q3.csv", got)
	}
	if got := agent.mustRun(script[1]...); !strings.Contains(got, "q3,42") {
		t.Errorf("s3 cp to stdout = %q", got)
	}
	// What the script never did is denied by jitproxy.
	// (A GET, not the HEAD that `aws s3 cp` starts with: its 403 has no
	// body to say who denied it.)
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:GetObject on arn:aws:s3:::reports/small.txt"}, "s3api", "get-object", "--bucket", "reports", "--key", "small.txt", filepath.Join(w.dir, "agent", "small.out"))
	readme := w.write("agent/readme.txt", "x")
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:PutObject on arn:aws:s3:::reports/x"}, "s3", "cp", readme, "s3://reports/x")
	minted = append(minted, mintedAWSKeys(t, w.redis.Addr)...)
	p.mustCLI("grant", "revoke", id, "--as", "dev", "--reason", "done")
	agent.mustFail([]string{"AccessDenied", "jitproxy denied s3:ListBucket"}, "s3", "ls", "s3://reports")
	return minted
}
