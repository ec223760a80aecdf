package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// placeholderKey is the access key ID in the test signatures; no error
// may quote it.
const placeholderKey = "AKIAPLACEHOLDER0000"

// sig returns a SigV4 Authorization header for region and service.
func sig(region, service string) string {
	return fmt.Sprintf("Authorization: AWS4-HMAC-SHA256 Credential=%s/20260101/%s/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd", placeholderKey, region, service)
}

// req builds a raw HTTP/1.1 request; lines are header lines.
func req(method, target, host string, body string, lines ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return []byte(b.String())
}

var (
	s3Sig     = sig("us-west-2", "s3")
	s3Host    = "s3.us-west-2.amazonaws.com"
	formType  = "Content-Type: application/x-www-form-urlencoded"
	json10    = "Content-Type: application/x-amz-json-1.0"
	ddbTarget = "X-Amz-Target: DynamoDB_20120810.GetItem"
	sqsTarget = "X-Amz-Target: AmazonSQS.SendMessage"
	deleteXML = func(inner string) string {
		return `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + inner + `</Delete>`
	}
)

type rawCase struct {
	name string
	raw  []byte
	want access.AWSAction
	// err is a part of the expected error's message; "" for success.
	err string
}

func rawCases() []rawCase {
	ok := func(name string, raw []byte, want access.AWSAction) rawCase {
		return rawCase{name: name, raw: raw, want: want}
	}
	bad := func(name string, raw []byte, err string) rawCase { return rawCase{name: name, raw: raw, err: err} }
	return []rawCase{
		// Where the bucket is.
		ok("virtual-hosted host decides the bucket; the path is all key",
			req("GET", "/other-bucket/k", "agent-data.s3.us-west-2.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data/other-bucket/k")),
		ok("virtual-hosted bucket with dots in the host",
			req("GET", "/k", "my.dotted.bucket.s3.us-west-2.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::my.dotted.bucket/k")),
		ok("bucket named like an endpoint",
			req("GET", "/k", "s3.s3.s3.us-west-2.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::s3.s3/k")),
		ok("legacy dash endpoint",
			req("GET", "/k", "agent-data.s3-us-west-2.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data/k")),
		ok("global endpoint takes any region of its partition",
			req("GET", "/k", "agent-data.s3.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data/k")),
		ok("encoded slash inside the key is part of the key",
			req("GET", "/agent-data/a%2Fb", s3Host, "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data/a/b")),
		ok("path-style bucket with trailing slash is the bucket",
			req("GET", "/agent-data/?list-type=2", s3Host, "", s3Sig),
			wantS3("ListBucket", "arn:aws:s3:::agent-data")),
		ok("double slash after the bucket starts the key",
			req("GET", "/agent-data//k", s3Host, "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data//k")),
		ok("IP literal host is path style",
			req("GET", "/agent-data/k", "127.0.0.1:9000", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::agent-data/k")),
		ok("absolute URL wins over the Host header, as in Go's server",
			req("GET", "http://other-bucket.s3.us-west-2.amazonaws.com/k", "agent-data.s3.us-west-2.amazonaws.com", "", s3Sig),
			wantS3("GetObject", "arn:aws:s3:::other-bucket/k")),
		ok("unsigned request takes region and service from the host",
			req("GET", "/k", "agent-data.s3.eu-west-1.amazonaws.com", ""),
			access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "eu-west-1", Resources: []string{"arn:aws:s3:::agent-data/k"}}),
		ok("unsigned global STS is us-east-1",
			req("GET", "/?Action=GetCallerIdentity&Version=2011-06-15", "sts.amazonaws.com", ""),
			access.AWSAction{Service: "sts", Action: "sts:GetCallerIdentity", Region: "us-east-1"}),
		ok("STS in the query string",
			req("GET", "/?Action=GetCallerIdentity&Version=2011-06-15", "sts.eu-west-1.amazonaws.com", "", sig("eu-west-1", "sts")),
			access.AWSAction{Service: "sts", Action: "sts:GetCallerIdentity", Region: "eu-west-1"}),
		ok("GovCloud IAM",
			req("POST", "/", "iam.us-gov.amazonaws.com", "Action=ListRoles&Version=2010-05-08", sig("us-gov-west-1", "iam"), formType),
			access.AWSAction{Service: "iam", Action: "iam:ListRoles", Region: "us-gov-west-1"}),
		ok("legacy SQS query API with the queue in the path",
			req("POST", "/123456789012/jobs", "sqs.us-west-2.amazonaws.com", "Action=SendMessage&MessageBody=hi", sig("us-west-2", "sqs"), formType),
			access.AWSAction{Service: "sqs", Action: "sqs:SendMessage", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:sqs:us-west-2:123456789012:jobs"}}),
		ok("SQS query API with QueueUrl",
			req("POST", "/", "us-west-2.queue.amazonaws.com", "Action=DeleteQueue&QueueUrl=https%3A%2F%2Fus-west-2.queue.amazonaws.com%2F123456789012%2Fjobs", sig("us-west-2", "sqs"), formType),
			access.AWSAction{Service: "sqs", Action: "sqs:DeleteQueue", Region: "us-west-2", Account: "123456789012", Resources: []string{"arn:aws:sqs:us-west-2:123456789012:jobs"}}),
		ok("SQS ListQueues ignores a QueueUrl it does not take",
			req("POST", "/", "sqs.us-west-2.amazonaws.com", `{"QueueUrl":"https://sqs.us-west-2.amazonaws.com/123456789012/jobs"}`, sig("us-west-2", "sqs"), json10, "X-Amz-Target: AmazonSQS.ListQueues"),
			access.AWSAction{Service: "sqs", Action: "sqs:ListQueues", Region: "us-west-2"}),
		ok("DynamoDB ListTables ignores a TableName it does not take",
			req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"orders"}`, sig("us-west-2", "dynamodb"), json10, "X-Amz-Target: DynamoDB_20120810.ListTables"),
			access.AWSAction{Service: "dynamodb", Action: "dynamodb:ListTables", Region: "us-west-2"}),
		ok("DynamoDB account endpoint",
			req("POST", "/", "123456789012.ddb.us-west-2.amazonaws.com", `{"TableName":"orders"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget),
			access.AWSAction{Service: "dynamodb", Action: "dynamodb:GetItem", Region: "us-west-2", Resources: []string{"arn:aws:dynamodb:us-west-2:*:table/orders"}}),
		ok("secretsmanager operation name",
			req("POST", "/", "secretsmanager.us-west-2.amazonaws.com", `{"SecretId":"db"}`, sig("us-west-2", "secretsmanager"), "Content-Type: application/x-amz-json-1.1", "X-Amz-Target: secretsmanager.GetSecretValue"),
			access.AWSAction{Service: "secretsmanager", Action: "secretsmanager:GetSecretValue", Region: "us-west-2"}),
		ok("Lambda with an older SDK's trailing slash",
			req("GET", "/2015-03-31/functions/", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")),
			access.AWSAction{Service: "lambda", Action: "lambda:ListFunctions", Region: "us-west-2"}),
		ok("Lambda route with a literal query",
			req("GET", "/2018-10-31/layers?find=LayerVersion&Arn=x", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")),
			access.AWSAction{Service: "lambda", Action: "lambda:GetLayerVersion", Region: "us-west-2"}),

		// Signatures.
		bad("presigned SigV4 URL", req("GET", "/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x&X-Amz-Signature=y", "agent-data.s3.us-west-2.amazonaws.com", ""), "presigned"),
		bad("presigned, parameter case changed", req("GET", "/k?x-amz-signature=y", "agent-data.s3.us-west-2.amazonaws.com", ""), "presigned"),
		bad("presigned SigV2 URL", req("GET", "/k?AWSAccessKeyId=x&Signature=y&Expires=1", "agent-data.s3.amazonaws.com", ""), "presigned"),
		bad("SigV2 in a query-protocol body", req("POST", "/", "sts.amazonaws.com", "Action=GetCallerIdentity&AWSAccessKeyId=x&Signature=y", formType), "presigned"),
		bad("SigV2 header", req("GET", "/k", "agent-data.s3.amazonaws.com", "", "Authorization: AWS "+placeholderKey+":c2lnbmF0dXJl"), "Signature Version 2"),
		bad("SigV4a header", req("GET", "/k", "agent-data.s3.amazonaws.com", "", "Authorization: AWS4-ECDSA-P256-SHA256 Credential="+placeholderKey+"/20260101/s3/aws4_request, SignedHeaders=host, Signature=ab"), "4a"),
		bad("bearer token", req("GET", "/k", "agent-data.s3.amazonaws.com", "", "Authorization: Bearer "+placeholderKey), "not an AWS Signature Version 4"),
		bad("two Authorization headers", req("GET", "/k", "agent-data.s3.us-west-2.amazonaws.com", "", s3Sig, s3Sig), "more than one Authorization"),
		bad("scope with a fake region injecting ARN fields", req("GET", "/k", "10.0.0.1", "", "Authorization: AWS4-HMAC-SHA256 Credential="+placeholderKey+"/20260101/us-east-1:123/s3/aws4_request, SignedHeaders=host, Signature=ab"), "well-formed"),
		bad("scope with extra parts", req("GET", "/k", "10.0.0.1", "", "Authorization: AWS4-HMAC-SHA256 Credential="+placeholderKey+"/20260101/x/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"), "well-formed"),
		bad("Credential given twice", req("GET", "/k", "10.0.0.1", "", "Authorization: AWS4-HMAC-SHA256 Credential="+placeholderKey+"/20260101/us-east-1/s3/aws4_request, Credential="+placeholderKey+"/20260101/us-east-1/sqs/aws4_request, Signature=ab"), "well-formed"),
		bad("unknown region", req("GET", "/k", "10.0.0.1", "", sig("xx-nowhere-1", "s3")), "not an AWS region"),
		bad("signed for another service than the host's", req("POST", "/", "sqs.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "host"),
		bad("signed for another region than the host's", req("GET", "/k", "agent-data.s3.eu-west-1.amazonaws.com", "", s3Sig), "region"),
		bad("GovCloud region on the global S3 endpoint", req("GET", "/k", "agent-data.s3.amazonaws.com", "", sig("us-gov-west-1", "s3")), "does not serve"),
		bad("China region on a commercial host", req("GET", "/k", "agent-data.s3.amazonaws.com", "", sig("cn-north-1", "s3")), "does not serve"),
		bad("unknown service", req("POST", "/", "10.0.0.1", "", sig("us-west-2", "frobnicator")), "does not know the AWS service"),
		bad("unsigned request to an unknown host", req("GET", "/k", "example.com", ""), "not signed"),

		// S3 ambiguity.
		bad("path-style path starting with //", req("GET", "//agent-data/k", s3Host, "", s3Sig), "empty segment"),
		bad("encoded slash in the bucket", req("GET", "/agent-data%2Fk", s3Host, "", s3Sig), "bucket name"),
		bad("escaped bucket name", req("GET", "/agent%2Ddata/k", s3Host, "", s3Sig), "bucket name"),
		bad("dot-dot segment in the key", req("GET", "/agent-data/../other-bucket/k", s3Host, "", s3Sig), "'..'"),
		bad("encoded dot-dot segment in the key", req("GET", "/k/%2E%2E/x", "agent-data.s3.us-west-2.amazonaws.com", "", s3Sig), "'..'"),
		bad("query parameter twice", req("GET", "/agent-data?acl&acl", s3Host, "", s3Sig), "more than once"),
		bad("two subresources", req("GET", "/agent-data?acl&policy", s3Host, "", s3Sig), "several S3 subresources"),
		bad("unknown S3 parameter", req("GET", "/agent-data/k?ACL", s3Host, "", s3Sig), "does not know the S3 query parameter"),
		bad("bucket subresource on an object", req("GET", "/agent-data/k?location", s3Host, "", s3Sig), "does not know the S3 operation"),
		bad("HTML form upload", req("POST", "/agent-data", s3Host, "x", s3Sig, "Content-Type: multipart/form-data; boundary=x"), "does not know the S3 operation"),
		bad("UploadPart without partNumber", req("PUT", "/agent-data/k?uploadId=1", s3Host, "x", s3Sig), "partNumber"),
		bad("copy", req("PUT", "/agent-data/k", s3Host, "", s3Sig, "X-Amz-Copy-Source: /secret/k"), "copies"),
		bad("PutObject making the object public", req("PUT", "/agent-data/k", s3Host, "x", s3Sig, "X-Amz-Acl: public-read"), "s3:PutObjectAcl"),
		bad("DeleteObject bypassing governance retention", req("DELETE", "/agent-data/k", s3Host, "", s3Sig, "X-Amz-Bypass-Governance-Retention: true"), "BypassGovernanceRetention"),
		bad("access point host", req("GET", "/k", "ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com", "", s3Sig), "cannot tell which S3 bucket"),
		bad("S3 Control host", req("GET", "/v20180820/jobs", "123456789012.s3-control.us-west-2.amazonaws.com", "", s3Sig), "cannot tell which S3 bucket"),
		bad("custom host name", req("GET", "/k", "agent-data.minio.internal", "", s3Sig), "cannot tell which S3 bucket"),
		bad("host with trailing dot", req("GET", "/k", "agent-data.s3.us-west-2.amazonaws.com.", "", s3Sig), "canonical"),
		bad("invalid UTF-8 in the key", req("GET", "/agent-data/%FF", s3Host, "", s3Sig), "UTF-8"),

		// DeleteObjects bodies.
		bad("DeleteObjects with a DTD", req("POST", "/agent-data?delete", s3Host, `<!DOCTYPE Delete [<!ENTITY k "secret">]>`+deleteXML(`<Object><Key>&k;</Key></Object>`), s3Sig, "Content-Type: application/xml"), "DeleteObjects body"),
		bad("DeleteObjects with a key twice in an Object", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a</Key><Key>b</Key></Object>`), s3Sig), "twice"),
		bad("DeleteObjects with a comment in a key", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a<!-- -->b</Key></Object>`), s3Sig), "comments"),
		bad("DeleteObjects with two roots", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a</Key></Object>`)+deleteXML(`<Object><Key>b</Key></Object>`), s3Sig), "root"),
		bad("DeleteObjects with an element of another namespace", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key xmlns="urn:x">a</Key></Object>`), s3Sig), "namespace"),
		bad("DeleteObjects with an unknown element", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a</Key><Name>b</Name></Object>`), s3Sig), "unexpected element"),
		bad("DeleteObjects with no objects", req("POST", "/agent-data?delete", s3Host, deleteXML(``), s3Sig), "no objects"),
		bad("DeleteObjects gzip body", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a</Key></Object>`), s3Sig, "Content-Encoding: gzip"), "encoded"),
		bad("DeleteObjects mixing versions and objects", req("POST", "/agent-data?delete", s3Host, deleteXML(`<Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>1</VersionId></Object>`), s3Sig), "DeleteObjectVersion"),

		// Query and JSON protocols.
		bad("Action in the query string and the body", req("POST", "/?Action=GetCallerIdentity", "sts.us-west-2.amazonaws.com", "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr", sig("us-west-2", "sts"), formType), "both the query string and the body"),
		bad("Action twice in the body", req("POST", "/", "sts.us-west-2.amazonaws.com", "Action=GetCallerIdentity&Action=AssumeRole", sig("us-west-2", "sts"), formType), "more than once"),
		bad("query-protocol body that is not a form", req("POST", "/", "sts.us-west-2.amazonaws.com", `{"Action":"AssumeRole"}`, sig("us-west-2", "sts"), json10), "form-urlencoded"),
		bad("no Action", req("POST", "/", "sts.us-west-2.amazonaws.com", "Version=2011-06-15", sig("us-west-2", "sts"), formType), "no valid Action"),
		bad("query-protocol request to another path", req("POST", "/x", "sts.us-west-2.amazonaws.com", "Action=GetCallerIdentity", sig("us-west-2", "sts"), formType), "path /"),
		bad("AssumeRole of a non-role ARN", req("POST", "/", "sts.us-west-2.amazonaws.com", "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Auser%2Fr", sig("us-west-2", "sts"), formType), "not an IAM role ARN"),
		bad("AssumeRole of another partition's role", req("POST", "/", "sts.us-west-2.amazonaws.com", "Action=AssumeRole&RoleArn=arn%3Aaws-cn%3Aiam%3A%3A123456789012%3Arole%2Fr", sig("us-west-2", "sts"), formType), "partition"),
		bad("X-Amz-Target and an Action form", req("POST", "/", "sqs.us-west-2.amazonaws.com", "Action=DeleteQueue&QueueUrl=https%3A%2F%2Fsqs.us-west-2.amazonaws.com%2F123456789012%2Fjobs", sig("us-west-2", "sqs"), formType, "X-Amz-Target: AmazonSQS.ListQueues"), "must be of type"),
		bad("X-Amz-Target and Action in the query", req("POST", "/?Action=DeleteQueue", "sqs.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "sqs"), json10, "X-Amz-Target: AmazonSQS.ListQueues"), "without a query string"),
		bad("X-Amz-Target to a query-only service", req("POST", "/", "sts.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "sts"), json10, "X-Amz-Target: AWSSecurityTokenServiceV20110615.AssumeRole"), "does not take X-Amz-Target"),
		bad("X-Amz-Target of another service", req("POST", "/", "sqs.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "sqs"), json10, ddbTarget), "not an operation of sqs"),
		bad("two X-Amz-Target headers", req("POST", "/", "sqs.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "sqs"), json10, sqsTarget, "X-Amz-Target: AmazonSQS.ListQueues"), "more than one X-Amz-Target"),
		bad("JSON member twice", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"orders","TableName":"secrets"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "more than once"),
		bad("JSON member twice, nested", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"RequestItems":{"orders":[],"orders":[]}}`, sig("us-west-2", "dynamodb"), json10, "X-Amz-Target: DynamoDB_20120810.BatchGetItem"), "more than once"),
		bad("JSON with trailing data", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"orders"}{"TableName":"secrets"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "after the JSON value"),
		bad("JSON with invalid UTF-8", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", "{\"TableName\":\"ord\xffers\"}", sig("us-west-2", "dynamodb"), json10, ddbTarget), "UTF-8"),
		bad("gzip JSON", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"orders"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget, "Content-Encoding: gzip"), "encoded"),
		bad("table name that is not one", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"a:b"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "not a valid table name"),
		bad("table ARN of another region", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"arn:aws:dynamodb:eu-west-1:123456789012:table/orders"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "region"),
		bad("missing TableName", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "dynamodb"), json10, ddbTarget), "TableName"),
		bad("queue URL of another region", req("POST", "/", "sqs.us-west-2.amazonaws.com", `{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"}`, sig("us-west-2", "sqs"), json10, sqsTarget), "region"),
		bad("queue URL with a longer path", req("POST", "/", "sqs.us-west-2.amazonaws.com", `{"QueueUrl":"https://sqs.us-west-2.amazonaws.com/123456789012/jobs/x"}`, sig("us-west-2", "sqs"), json10, sqsTarget), "not of the form"),
		bad("queue in the path and another in QueueUrl", req("POST", "/123456789012/jobs", "sqs.us-west-2.amazonaws.com", "Action=SendMessage&QueueUrl=https%3A%2F%2Fsqs.us-west-2.amazonaws.com%2F123456789012%2Fother", sig("us-west-2", "sqs"), formType), "another in QueueUrl"),
		bad("operation name that is not one", req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{}`, sig("us-west-2", "dynamodb"), json10, "X-Amz-Target: DynamoDB_20120810.get-item"), "not an operation"),

		// REST routes.
		bad("unknown Lambda route", req("GET", "/2015-03-31/functions/f/secrets", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "does not know the lambda operation"),
		bad("Lambda route with the wrong method", req("PATCH", "/2015-03-31/functions/f", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "does not know the lambda operation"),
		bad("Lambda literal query with another value", req("GET", "/2018-10-31/layers?find=Other", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "does not know"),
		bad("Lambda dot segment", req("GET", "/2015-03-31/functions/x/../f", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "'..'"),
		bad("Lambda encoded slash", req("GET", "/2015-03-31/functions/a%2Fb", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "encoded slashes"),
		bad("Lambda empty segment", req("GET", "/2015-03-31//functions/f", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "empty"),
		bad("Lambda qualifier twice", req("POST", "/2015-03-31/functions/f:prod/invocations?Qualifier=dev", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "qualifier"),
		bad("Lambda function of another region", req("GET", "/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:f", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "region"),
		bad("Lambda function name that is not one", req("GET", "/2015-03-31/functions/a:b:c", "lambda.us-west-2.amazonaws.com", "", sig("us-west-2", "lambda")), "not a function name"),
		bad("Route 53 zone ID that is not one", req("GET", "/2013-04-01/hostedzone/Z1:x", "route53.amazonaws.com", "", sig("us-east-1", "route53")), "not a valid hostedzone ID"),
		bad("unknown Route 53 route", req("GET", "/2013-04-01/hostedzone/Z1/secrets", "route53.amazonaws.com", "", sig("us-east-1", "route53")), "does not know the route53 operation"),
	}
}

// errBodyTooLarge stands for the pipeline's error for a body over its
// limit.
var errBodyTooLarge = errors.New("body too large")

func TestClassifyRaw(t *testing.T) {
	for _, tc := range rawCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := classifyRaw(tc.raw)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Classify: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Classify (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Classify error = %v, want one containing %q (got action %+v)", err, tc.err, got)
			}
			if strings.Contains(err.Error(), placeholderKey) || strings.Contains(err.Error(), "0123abcd") {
				t.Errorf("the error quotes the signature: %v", err)
			}
		})
	}
}

func TestClassifyPresignedIsErrPresigned(t *testing.T) {
	cfg := aws.Config{Region: "us-west-2", Credentials: placeholderCredentials}
	p, err := s3.NewPresignClient(s3.NewFromConfig(cfg)).PresignGetObject(context.Background(), &s3.GetObjectInput{Bucket: bucket, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest(p.Method, p.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Classify(r, nil)
	if !errors.Is(err, ErrPresigned) {
		t.Fatalf("Classify error = %v, want ErrPresigned", err)
	}
}

func TestClassifyWrapsBodyError(t *testing.T) {
	r := mustRequest(t, req("POST", "/", "dynamodb.us-west-2.amazonaws.com", `{"TableName":"orders"}`, sig("us-west-2", "dynamodb"), json10, ddbTarget))
	_, err := Classify(r, func() ([]byte, error) { return nil, errBodyTooLarge })
	if !errors.Is(err, errBodyTooLarge) {
		t.Fatalf("Classify error = %v, want it to wrap the body's error", err)
	}
}

// TestClassifyRefusesSDK checks refusals of what the real SDK sends.
func TestClassifyRefusesSDK(t *testing.T) {
	item := map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}
	tests := []struct {
		name string
		call func(ctx context.Context, cfg aws.Config)
		err  string
	}{
		{"s3 CopyObject", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: key, CopySource: aws.String("secret-bucket/data")})
		}, "copies"},
		{"s3 UploadPartCopy", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: bucket, Key: key, CopySource: aws.String("secret-bucket/data"), UploadId: aws.String("u"), PartNumber: aws.Int32(1)})
		}, "copies"},
		{"s3 PutObject with a canned ACL", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, ACL: s3types.ObjectCannedACLPublicRead, Body: strings.NewReader("x")})
		}, "s3:PutObjectAcl"},
		{"s3 PutObject with tags", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Tagging: aws.String("a=b"), Body: strings.NewReader("x")})
		}, "s3:PutObjectTagging"},
		{"s3 CreateBucket with object lock", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket, ObjectLockEnabledForBucket: aws.Bool(true)})
		}, "PutBucketObjectLockConfiguration"},
		{"s3 DeleteObjects mixing versions and objects", func(ctx context.Context, cfg aws.Config) {
			s3Client(cfg).DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{
				{Key: aws.String("a")}, {Key: aws.String("b"), VersionId: aws.String("1")},
			}}})
		}, "DeleteObjectVersion"},
		{"dynamodb TransactWriteItems with puts and deletes", func(ctx context.Context, cfg aws.Config) {
			dynamodb.NewFromConfig(cfg).TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
				{Put: &ddbtypes.Put{TableName: aws.String("orders"), Item: item}}, {Delete: &ddbtypes.Delete{TableName: aws.String("orders"), Key: item}},
			}})
		}, "dynamodb:PutItem and dynamodb:DeleteItem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := classifyRaw(sdkRequest(t, "us-west-2", tc.call))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Classify error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}
