package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jitproxy/jitproxy/test/servers"
)

// demoObjects are what the bucket reports holds; the bucket other stays
// empty (no example policy grants anything in it).
var demoObjects = []struct{ key, body string }{
	{"README.txt", "Quarterly revenue reports, one CSV file per quarter.\n"},
	{"q1.csv", "quarter,revenue\nq1,17\n"},
	{"q2.csv", "quarter,revenue\nq2,29\n"},
	{"q3.csv", "quarter,revenue\nq3,42\n"},
}

// startAWS starts MinIO under o.dir as the S3 and STS of a target aws,
// creates the buckets reports (with demoObjects) and other, writes
// jitproxy's own AWS identity (MinIO's root user) to a credentials file
// of mode 0600, and returns the server with the target's configuration,
// an entry of a config's targets list. On error, the server is stopped.
func startAWS(ctx context.Context, o options) (*servers.MinIO, string, error) {
	step("starting MinIO (S3 and STS for the target aws) under %s", o.dir)
	m, err := servers.StartMinIO(ctx, o.dir)
	if err != nil {
		return nil, "", err
	}
	target, err := seedAWS(ctx, o, m)
	if err != nil {
		m.Stop()
		return nil, "", err
	}
	step("MinIO at %s: buckets reports (%d objects) and other", m.URL, len(demoObjects))
	return m, target, nil
}

func seedAWS(ctx context.Context, o options, m *servers.MinIO) (string, error) {
	for _, b := range []string{"reports", "other"} {
		if err := m.CreateBucket(ctx, b); err != nil {
			return "", err
		}
	}
	for _, obj := range demoObjects {
		if err := m.PutObject(ctx, "reports", obj.key, []byte(obj.body)); err != nil {
			return "", err
		}
	}
	root := m.RootCredentials()
	creds := filepath.Join(o.dir, "jitproxy-aws-credentials")
	content := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", root.AccessKeyID, root.SecretAccessKey)
	if err := os.WriteFile(creds, []byte(content), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf(`  - name: aws
    kind: aws
    upstream: %s
    ca_file: %s
    aws:
      region: %s
      sts: {endpoint: %s, credentials_file: %s}
`, m.URL, m.CAFile, m.Region, m.URL, creds), nil
}

// withoutAWSIdentity returns env less the variables that would take the
// place of the target's credentials_file in jitproxy's AWS credential
// chain (keys, a profile), say of a shell that holds real AWS keys.
func withoutAWSIdentity(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE":
			continue
		}
		out = append(out, kv)
	}
	return out
}
