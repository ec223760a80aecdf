package aws

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHost(t *testing.T) {
	com := []string{"aws", "aws-us-gov"}
	cn := []string{"aws-cn"}
	tests := []struct {
		host string
		want endpoint
	}{
		{"s3.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-east-1", anyRegion: true}},
		{"bucket.s3.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-east-1", anyRegion: true, bucket: "bucket"}},
		{"s3-external-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-east-1"}},
		{"s3.us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2"}},
		{"bucket.s3.us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2", bucket: "bucket"}},
		{"s3-us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2"}},
		{"a.b.s3-us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2", bucket: "a.b"}},
		{"s3.dualstack.us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2"}},
		{"bucket.s3-fips.dualstack.us-gov-west-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-gov-west-1", bucket: "bucket"}},
		{"dualstack.s3.us-west-2.amazonaws.com", endpoint{aws: true, partitions: com, service: "s3", region: "us-west-2", bucket: "dualstack"}},
		{"bucket.s3.cn-north-1.amazonaws.com.cn", endpoint{aws: true, partitions: cn, service: "s3", region: "cn-north-1", bucket: "bucket"}},
		{"s3.amazonaws.com.cn", endpoint{aws: true, partitions: cn}},
		{"sts.amazonaws.com", endpoint{aws: true, partitions: com, service: "sts", region: "us-east-1"}},
		{"sts.eu-west-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "sts", region: "eu-west-1"}},
		{"sts.cn-north-1.amazonaws.com.cn", endpoint{aws: true, partitions: cn, service: "sts", region: "cn-north-1"}},
		{"iam.us-gov.amazonaws.com", endpoint{aws: true, partitions: com, service: "iam", region: "us-gov-west-1"}},
		{"route53.amazonaws.com.cn", endpoint{aws: true, partitions: cn, service: "route53", region: "cn-northwest-1"}},
		{"dynamodb.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "dynamodb", region: "us-east-1"}},
		{"dynamodb-fips.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "dynamodb", region: "us-east-1"}},
		{"streams.dynamodb.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "dynamodb", region: "us-east-1"}},
		{"sqs.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "sqs", region: "us-east-1"}},
		{"queue.amazonaws.com", endpoint{aws: true, partitions: com, service: "sqs", region: "us-east-1"}},
		{"lambda.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com, service: "lambda", region: "us-east-1"}},
		{"lambda.us-east-1.api.aws", endpoint{aws: true, partitions: com, service: "lambda", region: "us-east-1"}},
		{"ec2.amazonaws.com", endpoint{aws: true, partitions: com}},
		{"runtime.lambda.us-east-1.amazonaws.com", endpoint{aws: true, partitions: com}},
		{"ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com", endpoint{aws: true, partitions: com}},
		{"amazonaws.com.evil.example", endpoint{}},
		{"localhost", endpoint{literal: true}},
		{"127.0.0.1", endpoint{literal: true}},
		{"::1", endpoint{literal: true}},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			tc.want.host = tc.host
			if diff := cmp.Diff(tc.want, parseHost(tc.host), cmp.AllowUnexported(endpoint{})); diff != "" {
				t.Errorf("parseHost (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPartitionOf(t *testing.T) {
	tests := []struct{ region, want string }{
		{"us-east-1", "aws"}, {"eu-central-2", "aws"}, {"il-central-1", "aws"},
		{"cn-northwest-1", "aws-cn"}, {"us-gov-east-1", "aws-us-gov"},
		{"us-iso-east-1", "aws-iso"}, {"us-isob-east-1", "aws-iso-b"}, {"eu-isoe-west-1", "aws-iso-e"},
		{"us-isof-south-1", "aws-iso-f"}, {"eusc-de-east-1", "aws-eusc"},
		{"aws-global", ""}, {"us-east-1:x", ""}, {"zz-east-1", ""}, {"", ""},
	}
	for _, tc := range tests {
		got, err := partitionOf(tc.region)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("partitionOf(%q) = %q, %v; want %q", tc.region, got, err, tc.want)
		}
	}
}
