package aws

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// recorder is an HTTP transport that keeps the request the SDK sends, as
// the bytes on the wire, and answers 200 with no body. The SDK's answer
// to that is usually an error, which the tests ignore: they only want the
// request.
type recorder struct{ raw []byte }

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		return nil, err
	}
	rec.raw = b.Bytes()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

var placeholderCredentials = credentials.NewStaticCredentialsProvider(placeholderKey, "placeholder-secret", "")

// mustRequest parses raw as a server does.
func mustRequest(t testing.TB, raw []byte) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sdkRequest returns what a real SDK client, configured for region with
// placeholder keys, sends for call.
func sdkRequest(t testing.TB, region string, call func(ctx context.Context, cfg aws.Config)) []byte {
	t.Helper()
	rec := &recorder{}
	cfg := aws.Config{
		Region:           region,
		Credentials:      placeholderCredentials,
		HTTPClient:       &http.Client{Transport: rec},
		RetryMaxAttempts: 1,
	}
	call(context.Background(), cfg)
	if rec.raw == nil {
		t.Fatal("the SDK sent no request")
	}
	return rec.raw
}

// classifyRaw parses raw as a server does and classifies it, with the body
// offered through the body function.
func classifyRaw(raw []byte) (access.AWSAction, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return access.AWSAction{}, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return access.AWSAction{}, err
	}
	return Classify(r, func() ([]byte, error) { return body, nil })
}

type sdkCase struct {
	name   string
	region string
	call   func(ctx context.Context, cfg aws.Config)
	want   access.AWSAction
}

func s3Client(cfg aws.Config) *s3.Client { return s3.NewFromConfig(cfg) }

func s3PathStyle(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

var (
	bucket = aws.String("agent-data")
	key    = aws.String("reports/2026/q1 summary+final%.csv")
	objARN = "arn:aws:s3:::agent-data/reports/2026/q1 summary+final%.csv"
	queue  = aws.String("https://sqs.us-west-2.amazonaws.com/123456789012/jobs")
)

func wantS3(action string, resources ...string) access.AWSAction {
	return access.AWSAction{Service: "s3", Action: "s3:" + action, Region: "us-west-2", Resources: resources}
}

func sdkCases() []sdkCase {
	ddb := func(action string, resources ...string) access.AWSAction {
		return access.AWSAction{Service: "dynamodb", Action: "dynamodb:" + action, Region: "us-west-2", Resources: resources}
	}
	item := map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}
	return []sdkCase{
		// S3, virtual-hosted style (the SDK's default).
		{name: "s3 ListBuckets", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListBuckets(ctx, &s3.ListBucketsInput{})
		}, want: wantS3("ListAllMyBuckets")},
		{name: "s3 ListObjectsV2", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("reports/")})
		}, want: wantS3("ListBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 ListObjects v1", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListObjects(ctx, &s3.ListObjectsInput{Bucket: bucket, Marker: aws.String("a")})
		}, want: wantS3("ListBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 ListObjectVersions", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket})
		}, want: wantS3("ListBucketVersions", "arn:aws:s3:::agent-data")},
		{name: "s3 ListMultipartUploads", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: bucket})
		}, want: wantS3("ListBucketMultipartUploads", "arn:aws:s3:::agent-data")},
		{name: "s3 HeadBucket", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket})
		}, want: wantS3("ListBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 CreateBucket", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket, CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
		}, want: wantS3("CreateBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 DeleteBucket", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket})
		}, want: wantS3("DeleteBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 GetBucketLocation", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: bucket})
		}, want: wantS3("GetBucketLocation", "arn:aws:s3:::agent-data")},
		{name: "s3 GetBucketPolicy", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bucket})
		}, want: wantS3("GetBucketPolicy", "arn:aws:s3:::agent-data")},
		{name: "s3 DeleteBucketTagging", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: bucket})
		}, want: wantS3("PutBucketTagging", "arn:aws:s3:::agent-data")},
		{name: "s3 GetBucketVersioning", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
		}, want: wantS3("GetBucketVersioning", "arn:aws:s3:::agent-data")},
		{name: "s3 GetObject", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
		}, want: wantS3("GetObject", objARN)},
		{name: "s3 GetObject range and response overrides", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key, Range: aws.String("bytes=0-9"), ResponseContentType: aws.String("text/plain"), PartNumber: aws.Int32(1)})
		}, want: wantS3("GetObject", objARN)},
		{name: "s3 GetObject of a version", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key, VersionId: aws.String("v1")})
		}, want: wantS3("GetObjectVersion", objARN)},
		{name: "s3 GetObject key with leading slash and unicode", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("/ü//a?b#c&d=e")})
		}, want: wantS3("GetObject", "arn:aws:s3:::agent-data//ü//a?b#c&d=e")},
		{name: "s3 HeadObject", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: key})
		}, want: wantS3("GetObject", objARN)},
		{name: "s3 PutObject", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader("hello")})
		}, want: wantS3("PutObject", objARN)},
		{name: "s3 DeleteObject", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key})
		}, want: wantS3("DeleteObject", objARN)},
		{name: "s3 DeleteObject of a version", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key, VersionId: aws.String("v1")})
		}, want: wantS3("DeleteObjectVersion", objARN)},
		{name: "s3 DeleteObjects", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{
				{Key: aws.String("tmp/a&<b>")}, {Key: aws.String("tmp/c")}, {Key: aws.String("tmp/c")},
			}, Quiet: aws.Bool(true)}})
		}, want: wantS3("DeleteObject", "arn:aws:s3:::agent-data/tmp/a&<b>", "arn:aws:s3:::agent-data/tmp/c")},
		{name: "s3 DeleteObjects of versions", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{
				{Key: aws.String("tmp/a"), VersionId: aws.String("1")}, {Key: aws.String("tmp/b"), VersionId: aws.String("2")},
			}}})
		}, want: wantS3("DeleteObjectVersion", "arn:aws:s3:::agent-data/tmp/a", "arn:aws:s3:::agent-data/tmp/b")},
		{name: "s3 CreateMultipartUpload", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
		}, want: wantS3("PutObject", objARN)},
		{name: "s3 UploadPart", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: aws.String("u1"), PartNumber: aws.Int32(2), Body: strings.NewReader("part")})
		}, want: wantS3("PutObject", objARN)},
		{name: "s3 CompleteMultipartUpload", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: aws.String("u1"),
				MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: aws.String(`"e"`)}}}})
		}, want: wantS3("PutObject", objARN)},
		{name: "s3 AbortMultipartUpload", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: aws.String("u1")})
		}, want: wantS3("AbortMultipartUpload", objARN)},
		{name: "s3 ListParts", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).ListParts(ctx, &s3.ListPartsInput{Bucket: bucket, Key: key, UploadId: aws.String("u1")})
		}, want: wantS3("ListMultipartUploadParts", objARN)},
		{name: "s3 GetObjectAcl", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: bucket, Key: key})
		}, want: wantS3("GetObjectAcl", objARN)},
		{name: "s3 PutObjectTagging of a version", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: bucket, Key: key, VersionId: aws.String("v1"), Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
		}, want: wantS3("PutObjectVersionTagging", objARN)},
		{name: "s3 GetObjectAttributes", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: bucket, Key: key, ObjectAttributes: []s3types.ObjectAttributes{s3types.ObjectAttributesEtag}})
		}, want: wantS3("GetObjectAttributes", objARN)},
		{name: "s3 RestoreObject", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).RestoreObject(ctx, &s3.RestoreObjectInput{Bucket: bucket, Key: key, RestoreRequest: &s3types.RestoreRequest{Days: aws.Int32(1)}})
		}, want: wantS3("RestoreObject", objARN)},

		// S3, path style.
		{name: "s3 path-style GetObject", call: func(ctx context.Context, cfg aws.Config) {
			s3PathStyle(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: key})
		}, want: wantS3("GetObject", objARN)},
		{name: "s3 path-style ListObjectsV2", call: func(ctx context.Context, cfg aws.Config) {
			s3PathStyle(cfg).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})
		}, want: wantS3("ListBucket", "arn:aws:s3:::agent-data")},
		{name: "s3 path-style PutObject key with slashes", call: func(ctx context.Context, cfg aws.Config) {
			s3PathStyle(cfg).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("a//b/"), Body: strings.NewReader("x")})
		}, want: wantS3("PutObject", "arn:aws:s3:::agent-data/a//b/")},
		{name: "s3 bucket with dots goes path-style", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("my.dotted.bucket"), Key: aws.String("k")})
		}, want: wantS3("GetObject", "arn:aws:s3:::my.dotted.bucket/k")},
		{name: "s3 path-style DeleteObjects", call: func(ctx context.Context, cfg aws.Config) {
			s3PathStyle(cfg).DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("x")}}}})
		}, want: wantS3("DeleteObject", "arn:aws:s3:::agent-data/x")},
		{name: "s3 dual-stack endpoint", call: func(ctx context.Context, cfg aws.Config) {
			s3.NewFromConfig(cfg, func(o *s3.Options) { o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled }).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("k")})
		}, want: wantS3("GetObject", "arn:aws:s3:::agent-data/k")},
		{name: "s3 FIPS endpoint", call: func(ctx context.Context, cfg aws.Config) {
			s3.NewFromConfig(cfg, func(o *s3.Options) { o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled }).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("k")})
		}, want: wantS3("GetObject", "arn:aws:s3:::agent-data/k")},

		// S3 in other partitions.
		{name: "s3 China", region: "cn-north-1", call: func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("k")})
		}, want: access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "cn-north-1", Resources: []string{"arn:aws-cn:s3:::agent-data/k"}}},
		{name: "s3 GovCloud", region: "us-gov-west-1", call: func(ctx context.Context, cfg aws.Config) {
			s3PathStyle(cfg).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})
		}, want: access.AWSAction{Service: "s3", Action: "s3:ListBucket", Region: "us-gov-west-1", Resources: []string{"arn:aws-us-gov:s3:::agent-data"}}},

		// STS (query protocol).
		{name: "sts GetCallerIdentity", call: func(ctx context.Context, cfg aws.Config) {
			sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		}, want: access.AWSAction{Service: "sts", Action: "sts:GetCallerIdentity", Region: "us-west-2"}},
		{name: "sts AssumeRole", call: func(ctx context.Context, cfg aws.Config) {
			sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/deploy/ci"), RoleSessionName: aws.String("agent")})
		}, want: access.AWSAction{Service: "sts", Action: "sts:AssumeRole", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:iam::123456789012:role/deploy/ci"}}},
		{name: "sts GetCallerIdentity in China", region: "cn-northwest-1", call: func(ctx context.Context, cfg aws.Config) {
			sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		}, want: access.AWSAction{Service: "sts", Action: "sts:GetCallerIdentity", Region: "cn-northwest-1"}},

		// DynamoDB (JSON protocol). A table named without its account has
		// "*" in the ARN's account field and no Account; a table named by
		// ARN has both.
		{name: "dynamodb PutItem", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item})
		}, want: ddb("PutItem", "arn:aws:dynamodb:us-west-2:*:table/orders")},
		{name: "dynamodb GetItem", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: item})
		}, want: ddb("GetItem", "arn:aws:dynamodb:us-west-2:*:table/orders")},
		{name: "dynamodb GetItem by table ARN", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("arn:aws:dynamodb:us-west-2:123456789012:table/orders"), Key: item})
		}, want: access.AWSAction{Service: "dynamodb", Action: "dynamodb:GetItem", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:dynamodb:us-west-2:123456789012:table/orders"}}},
		{name: "dynamodb Query on an index", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).Query(ctx, &dynamodb.QueryInput{TableName: aws.String("orders"), IndexName: aws.String("by-customer")})
		}, want: ddb("Query", "arn:aws:dynamodb:us-west-2:*:table/orders/index/by-customer")},
		{name: "dynamodb ListTables names no table", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{})
		}, want: ddb("ListTables")},
		{name: "dynamodb BatchWriteItem", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{
				"orders": {{PutRequest: &ddbtypes.PutRequest{Item: item}}}, "audit": {{DeleteRequest: &ddbtypes.DeleteRequest{Key: item}}},
			}})
		}, want: ddb("BatchWriteItem", "arn:aws:dynamodb:us-west-2:*:table/audit", "arn:aws:dynamodb:us-west-2:*:table/orders")},
		{name: "dynamodb TransactGetItems needs GetItem", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: []ddbtypes.TransactGetItem{
				{Get: &ddbtypes.Get{TableName: aws.String("orders"), Key: item}}, {Get: &ddbtypes.Get{TableName: aws.String("audit"), Key: item}},
			}})
		}, want: ddb("GetItem", "arn:aws:dynamodb:us-west-2:*:table/orders", "arn:aws:dynamodb:us-west-2:*:table/audit")},
		{name: "dynamodb TransactWriteItems of puts needs PutItem", call: func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
				{Put: &ddbtypes.Put{TableName: aws.String("orders"), Item: item}}, {Put: &ddbtypes.Put{TableName: aws.String("orders"), Item: item}},
			}})
		}, want: ddb("PutItem", "arn:aws:dynamodb:us-west-2:*:table/orders")},

		// SQS (JSON protocol in current SDKs).
		{name: "sqs SendMessage", call: func(ctx context.Context, cfg aws.Config) {
			sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: queue, MessageBody: aws.String("hi")})
		}, want: access.AWSAction{Service: "sqs", Action: "sqs:SendMessage", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:sqs:us-west-2:123456789012:jobs"}}},
		{name: "sqs ReceiveMessage", call: func(ctx context.Context, cfg aws.Config) {
			sqs.NewFromConfig(cfg).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue})
		}, want: access.AWSAction{Service: "sqs", Action: "sqs:ReceiveMessage", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:sqs:us-west-2:123456789012:jobs"}}},
		{name: "sqs CreateQueue", call: func(ctx context.Context, cfg aws.Config) {
			sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs.fifo")})
		}, want: access.AWSAction{Service: "sqs", Action: "sqs:CreateQueue", Region: "us-west-2", Resources: []string{"arn:aws:sqs:us-west-2:*:jobs.fifo"}}},
		{name: "sqs ListQueues", call: func(ctx context.Context, cfg aws.Config) {
			sqs.NewFromConfig(cfg).ListQueues(ctx, &sqs.ListQueuesInput{})
		}, want: access.AWSAction{Service: "sqs", Action: "sqs:ListQueues", Region: "us-west-2"}},

		// Lambda (REST-JSON).
		{name: "lambda Invoke", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("resize")})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:InvokeFunction", Region: "us-west-2", Resources: []string{"arn:aws:lambda:us-west-2:*:function:resize"}}},
		{name: "lambda Invoke by ARN with qualifier", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("arn:aws:lambda:us-west-2:123456789012:function:resize:prod")})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:InvokeFunction", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:lambda:us-west-2:123456789012:function:resize:prod"}}},
		{name: "lambda Invoke with Qualifier parameter", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("123456789012:function:resize"), Qualifier: aws.String("7")})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:InvokeFunction", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:lambda:us-west-2:123456789012:function:resize:7"}}},
		{name: "lambda GetFunction", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("resize")})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:GetFunction", Region: "us-west-2", Resources: []string{"arn:aws:lambda:us-west-2:*:function:resize"}}},
		{name: "lambda ListFunctions", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).ListFunctions(ctx, &lambda.ListFunctionsInput{})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:ListFunctions", Region: "us-west-2"}},
		{name: "lambda UntagResource with repeated tagKeys", call: func(ctx context.Context, cfg aws.Config) {
			lambda.NewFromConfig(cfg).UntagResource(ctx, &lambda.UntagResourceInput{Resource: aws.String("arn:aws:lambda:us-west-2:123456789012:function:resize"), TagKeys: []string{"a", "b"}})
		}, want: access.AWSAction{Service: "lambda", Action: "lambda:UntagResource", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:lambda:us-west-2:123456789012:function:resize"}}},

		// Route 53 (REST-XML, global).
		{name: "route53 ListHostedZones", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).ListHostedZones(ctx, &route53.ListHostedZonesInput{})
		}, want: access.AWSAction{Service: "route53", Action: "route53:ListHostedZones", Region: "us-east-1"}},
		{name: "route53 GetHostedZone", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String("/hostedzone/Z0123456789ABC")})
		}, want: access.AWSAction{Service: "route53", Action: "route53:GetHostedZone", Region: "us-east-1", Resources: []string{"arn:aws:route53:::hostedzone/Z0123456789ABC"}}},
		{name: "route53 ChangeResourceRecordSets", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String("Z0123456789ABC"), ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{Name: aws.String("a.example.com"), Type: r53types.RRTypeA, TTL: aws.Int64(60), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("192.0.2.1")}}}}}}})
		}, want: access.AWSAction{Service: "route53", Action: "route53:ChangeResourceRecordSets", Region: "us-east-1", Resources: []string{"arn:aws:route53:::hostedzone/Z0123456789ABC"}}},
		{name: "route53 ListResourceRecordSets", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String("Z0123456789ABC")})
		}, want: access.AWSAction{Service: "route53", Action: "route53:ListResourceRecordSets", Region: "us-east-1", Resources: []string{"arn:aws:route53:::hostedzone/Z0123456789ABC"}}},
		{name: "route53 GetChange", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).GetChange(ctx, &route53.GetChangeInput{Id: aws.String("/change/C2682N5HXP0BZ4")})
		}, want: access.AWSAction{Service: "route53", Action: "route53:GetChange", Region: "us-east-1", Resources: []string{"arn:aws:route53:::change/C2682N5HXP0BZ4"}}},
		{name: "route53 ListTagsForResource", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).ListTagsForResource(ctx, &route53.ListTagsForResourceInput{ResourceType: r53types.TagResourceTypeHealthcheck, ResourceId: aws.String("abcdef11-2222-3333-4444-555555fedcba")})
		}, want: access.AWSAction{Service: "route53", Action: "route53:ListTagsForResource", Region: "us-east-1", Resources: []string{"arn:aws:route53:::healthcheck/abcdef11-2222-3333-4444-555555fedcba"}}},
		{name: "route53 GetHostedZoneCount", call: func(ctx context.Context, cfg aws.Config) {
			route53.NewFromConfig(cfg).GetHostedZoneCount(ctx, &route53.GetHostedZoneCountInput{})
		}, want: access.AWSAction{Service: "route53", Action: "route53:GetHostedZoneCount", Region: "us-east-1"}},
	}
}

// TestClassifySDK classifies what the real SDK clients send.
func TestClassifySDK(t *testing.T) {
	for _, tc := range sdkCases() {
		t.Run(tc.name, func(t *testing.T) {
			region := tc.region
			if region == "" {
				region = "us-west-2"
			}
			got, err := classifyRaw(sdkRequest(t, region, tc.call))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Classify (-want +got):\n%s", diff)
			}
		})
	}
}
