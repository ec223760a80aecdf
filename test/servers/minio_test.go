package servers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
)

// readOnlyPolicy lets its holder list the bucket "granted" and read its
// objects, and nothing else.
const readOnlyPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::granted"]},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::granted/*"]}
  ]
}`

// TestMinIO starts MinIO and checks what the tests of the S3 backend rely
// on: credentials from its STS, cut down by an inline session policy, can
// do what the policy allows and nothing more, before and after a restart.
func TestMinIO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := StartMinIO(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	for _, b := range []string{"granted", "other"} {
		if err := m.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := m.PutObject(ctx, b, "hello.txt", []byte("hello from "+b)); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := m.AssumeRole(ctx, readOnlyPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if creds.SessionToken == "" || !creds.CanExpire || time.Until(creds.Expires) < 50*time.Minute {
		t.Errorf("assumed credentials: session token %t, expire %t at %s", creds.SessionToken != "", creds.CanExpire, creds.Expires)
	}
	checkAccess(t, ctx, m, creds)
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("after restart", func(t *testing.T) { checkAccess(t, ctx, m, creds) })
}

// checkAccess wants creds (readOnlyPolicy's) to list and read the bucket
// "granted" and to be refused every other call.
func checkAccess(t *testing.T, ctx context.Context, m *MinIO, creds aws.Credentials) {
	t.Helper()
	c := m.S3(creds)
	list := func(bucket string) (string, error) {
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			return "", err
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		return fmt.Sprint(keys), nil
	}
	get := func(bucket string) (string, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("hello.txt")})
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), err
	}
	put := func(bucket string) (string, error) {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("new.txt"), Body: bytes.NewReader([]byte("x"))})
		return "", err
	}
	tests := []struct {
		name     string
		call     func(bucket string) (string, error)
		bucket   string
		want     string
		wantCode string // the S3 error code, "" for success
	}{
		{name: "list granted", call: list, bucket: "granted", want: "[hello.txt]"},
		{name: "get granted", call: get, bucket: "granted", want: "hello from granted"},
		{name: "put granted", call: put, bucket: "granted", wantCode: "AccessDenied"},
		{name: "list other", call: list, bucket: "other", wantCode: "AccessDenied"},
		{name: "get other", call: get, bucket: "other", wantCode: "AccessDenied"},
		{name: "put other", call: put, bucket: "other", wantCode: "AccessDenied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call(tc.bucket)
			if diff := cmp.Diff(tc.wantCode, errorCode(err)); diff != "" {
				t.Errorf("error code (-want +got):\n%s\n%v", diff, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// errorCode returns the AWS error code in err, "" for nil, and err's text
// for an error that has none.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		return ae.ErrorCode()
	}
	return err.Error()
}
