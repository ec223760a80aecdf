package aws

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
)

// regionPattern is the shape of every AWS region name ("us-east-1",
// "us-gov-west-1", "eu-isoe-west-1", "eusc-de-east-1"). A region ends up in
// ARNs, so nothing else (a colon, a slash) may pass.
var regionPattern = regexp.MustCompile(`^[a-z]{2,5}(-[a-z]{1,12}){1,3}-[0-9]{1,2}$`)

// partitions map region name prefixes to ARN partitions, most specific
// first. They follow the RegionRegex of each partition in the SDK's
// internal/endpoints/awsrulesfn (which other modules cannot import).
var partitions = []struct{ prefix, partition string }{
	{"us-isob-", "aws-iso-b"},
	{"us-isof-", "aws-iso-f"},
	{"us-iso-", "aws-iso"},
	{"eu-isoe-", "aws-iso-e"},
	{"us-gov-", "aws-us-gov"},
	{"cn-", "aws-cn"},
	{"eusc-de-", "aws-eusc"},
	{"us-", "aws"}, {"eu-", "aws"}, {"ap-", "aws"}, {"sa-", "aws"}, {"ca-", "aws"},
	{"me-", "aws"}, {"af-", "aws"}, {"il-", "aws"}, {"mx-", "aws"},
}

// partitionOf returns the ARN partition of region, or an error for a name
// that is not a region of a known partition.
func partitionOf(region string) (string, error) {
	if regionPattern.MatchString(region) {
		for _, p := range partitions {
			if strings.HasPrefix(region, p.prefix) {
				return p.partition, nil
			}
		}
	}
	return "", fmt.Errorf("%q is not an AWS region jitproxy knows", region)
}

// endpoint is what a request's host name says.
type endpoint struct {
	host string
	// aws is true for a name under an AWS DNS suffix (amazonaws.com,
	// amazonaws.com.cn, api.aws).
	aws bool
	// partitions are the partitions whose regions the DNS suffix serves
	// when aws is true (amazonaws.com serves both aws and aws-us-gov).
	partitions []string
	// literal is true for an IP address or a name of one label
	// ("localhost"): hosts that cannot carry an S3 bucket name.
	literal bool
	// service is the signing name of the service the host is for; "" when
	// the host is not a name jitproxy knows.
	service string
	// region is the region the host names (for a global endpoint, the
	// region it is signed for); "" for an unknown host.
	region string
	// anyRegion is true for S3's global endpoint, which takes requests
	// signed for any region of its partition.
	anyRegion bool
	// bucket is the bucket of an S3 virtual-hosted-style name.
	bucket string
}

// requestHost returns the host the request is for, without the port, in
// lower case. A request whose Host header and URL name different hosts is
// refused: the upstream would see one and jitproxy judge the other.
func requestHost(r *http.Request) (string, error) {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	} else if r.URL.Host != "" && !strings.EqualFold(r.URL.Host, host) {
		return "", errors.New("the request's Host header and URL name different hosts")
	}
	if host == "" {
		return "", errors.New("the request names no host")
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if host == "" || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		return "", fmt.Errorf("host name %q is not in canonical form", host)
	}
	return host, nil
}

// dnsSuffixes are the DNS suffixes of the AWS partitions whose host names
// jitproxy reads, with the partitions each one serves.
var dnsSuffixes = []struct {
	suffix     string
	partitions []string
	s3         bool // S3 has endpoints under this suffix
}{
	{".amazonaws.com.cn", []string{"aws-cn"}, true},
	{".amazonaws.com", []string{"aws", "aws-us-gov"}, true},
	{".api.aws", []string{"aws", "aws-us-gov"}, false},
}

// globalEndpoints are the services with one endpoint per partition
// (SERVICE.amazonaws.com[.cn]), and the region that endpoint is signed for.
var globalEndpoints = map[string]map[string]string{
	"aws":    {"sts": "us-east-1", "iam": "us-east-1", "route53": "us-east-1"},
	"aws-cn": {"route53": "cn-northwest-1"},
}

// parseHost reads the service, region and (for S3) bucket from an AWS
// endpoint name. A host that is not under an AWS DNS suffix, or whose form
// jitproxy does not know, comes back with an empty service; whether that is
// acceptable is the caller's decision.
func parseHost(host string) endpoint {
	ep := endpoint{host: host}
	if ip := net.ParseIP(host); ip != nil || !strings.Contains(host, ".") {
		ep.literal = true
		return ep
	}
	var rest string
	var s3 bool
	for _, s := range dnsSuffixes {
		if r, ok := strings.CutSuffix(host, s.suffix); ok && r != "" {
			rest, ep.partitions, s3, ep.aws = r, s.partitions, s.s3, true
			break
		}
	}
	if !ep.aws {
		return ep
	}
	labels := strings.Split(rest, ".")
	if s3 && parseS3Host(&ep, labels) {
		return ep
	}
	n := len(labels)
	switch {
	case n == 1:
		// sts.amazonaws.com, route53.amazonaws.com.cn
		ep.service = labels[0]
	case n == 2 && labels[1] == "us-gov":
		// iam.us-gov.amazonaws.com, route53.us-gov.amazonaws.com
		ep.service, ep.region = labels[0], "us-gov-west-1"
	case n == 2 && regionPattern.MatchString(labels[1]):
		// dynamodb.us-east-1.amazonaws.com, dynamodb-fips.us-east-1...
		ep.service, ep.region = strings.TrimSuffix(labels[0], "-fips"), labels[1]
	case n == 2 && labels[1] == "queue" && regionPattern.MatchString(labels[0]):
		// us-west-2.queue.amazonaws.com (SQS's legacy names)
		ep.service, ep.region = "queue", labels[0]
	case n == 3 && labels[0] == "streams" && labels[1] == "dynamodb" && regionPattern.MatchString(labels[2]):
		ep.service, ep.region = "dynamodb", labels[2]
	case n == 3 && labels[1] == "ddb" && accountPattern.MatchString(labels[0]) && regionPattern.MatchString(labels[2]):
		// 123456789012.ddb.us-east-1.amazonaws.com (account-based endpoints)
		ep.service, ep.region = "dynamodb", labels[2]
	default:
		return ep
	}
	if ep.service == "queue" { // queue.amazonaws.com
		ep.service = "sqs"
		if ep.region == "" && ep.partitions[0] == "aws" {
			ep.region = "us-east-1"
		}
	}
	if ep.region == "" {
		// A global endpoint: signed for the partition's global region.
		r, ok := globalEndpoints[ep.partitions[0]][labels[0]]
		if !ok {
			ep.service = ""
			return ep
		}
		ep.region = r
	}
	return ep
}

// parseS3Host recognises S3's endpoint names, with the bucket (virtual-
// hosted style) or without (path style):
//
//	[bucket.]s3.amazonaws.com               (us-east-1)
//	[bucket.]s3-external-1.amazonaws.com    (us-east-1)
//	[bucket.]s3.REGION.amazonaws.com[.cn]
//	[bucket.]s3-REGION.amazonaws.com        (legacy)
//	[bucket.]s3[-fips].dualstack.REGION.amazonaws.com[.cn]
//	[bucket.]s3-fips.REGION.amazonaws.com
//
// The endpoint part is matched from the right, as DNS resolves it; what
// is left of it is the bucket. Access points, S3 Control, S3 Express and
// website endpoints are not recognised (S3 requests to them are refused).
func parseS3Host(ep *endpoint, labels []string) bool {
	n := len(labels)
	isS3 := func(l string) bool { return l == "s3" || l == "s3-fips" }
	var endpointLabels int
	switch {
	case n >= 3 && labels[n-2] == "dualstack" && isS3(labels[n-3]) && regionPattern.MatchString(labels[n-1]):
		endpointLabels, ep.region = 3, labels[n-1]
	case n >= 2 && isS3(labels[n-2]) && regionPattern.MatchString(labels[n-1]):
		endpointLabels, ep.region = 2, labels[n-1]
	case labels[n-1] == "s3" || labels[n-1] == "s3-external-1":
		if ep.partitions[0] != "aws" { // no global S3 endpoint in China
			return false
		}
		endpointLabels, ep.region, ep.anyRegion = 1, "us-east-1", labels[n-1] == "s3"
	case strings.HasPrefix(labels[n-1], "s3-") && regionPattern.MatchString(labels[n-1][3:]):
		endpointLabels, ep.region = 1, labels[n-1][3:]
	default:
		return false
	}
	ep.service = "s3"
	ep.bucket = strings.Join(labels[:n-endpointLabels], ".")
	return true
}
