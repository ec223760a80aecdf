package aws

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jitproxy/jitproxy/internal/access"
)

// ErrPresigned is the error (wrapped) for a presigned URL: one that
// carries its signature in the query string (X-Amz-Signature,
// X-Amz-Credential, X-Amz-Algorithm, or SigV2's Signature and
// AWSAccessKeyId). The agent's placeholder keys cannot make a working
// presigned URL, and jitproxy does not sign URLs for it.
var ErrPresigned = errors.New("presigned URLs are refused: jitproxy signs each request itself, so send the request without a signature in the query string")

// presignParams are the query parameters of signatures in URLs.
var presignParams = []string{
	"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm", "X-Amz-Security-Token",
	"Signature", "AWSAccessKeyId",
}

// Classify reads what the AWS API request r does, in IAM's terms.
//
// The service and region come from the credential scope of r's SigV4
// Authorization header, or, for an unsigned request, from its host name
// (S3, STS, SQS, DynamoDB, Lambda, Route 53, IAM... endpoint names of the
// aws, aws-cn and aws-us-gov partitions); when both are there they must
// agree. The action and resources come from the service's protocol: the
// Action parameter (query protocol), the X-Amz-Target header (JSON
// protocol), a route table (Lambda, Route 53), or S3's own rules.
//
// body returns r's body, read once within a size limit; Classify calls it
// only when the answer is in the body (query-protocol forms, the JSON of
// operations that name a table or queue, S3 DeleteObjects), and returns
// its error wrapped.
//
// Resources are ARNs of the request's partition. Where the request does
// not name the account a resource belongs to (a DynamoDB table name, a
// Lambda function name), the ARN's account field is "*", which an IAM-style
// pattern matches only with a wildcard, and Account is empty; Account is
// set when every resource the request names is in one account. S3 ARNs
// have empty region and account fields, as in IAM (arn:aws:s3:::bucket,
// arn:aws:s3:::bucket/key). An operation whose resources Classify does not
// know, or that names none, has no Resources (a permission then needs
// "*"): Classify never returns some of an operation's resources.
//
// Region is the region the request is signed for; for a global service
// (IAM, Route 53, the global STS endpoint) it is the partition's signing
// region, for example us-east-1.
//
// Classify refuses, with an error whose message is safe to show the agent
// (it never quotes a credential), what it cannot read exactly as AWS will:
// presigned URLs (ErrPresigned), SigV2 and other signature schemes,
// services and operations it does not know, non-canonical paths, repeated
// or conflicting parameters, and requests that need more than one IAM
// action to be allowed.
func Classify(r *http.Request, body func() ([]byte, error)) (access.AWSAction, error) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return access.AWSAction{}, err
	}
	if err := checkPresigned(q); err != nil {
		return access.AWSAction{}, err
	}
	host, err := requestHost(r)
	if err != nil {
		return access.AWSAction{}, err
	}
	ep := parseHost(host)
	service, region, err := signingScope(r.Header, ep)
	if err != nil {
		return access.AWSAction{}, err
	}
	partition, err := partitionOf(region)
	if err != nil {
		return access.AWSAction{}, err
	}
	svc, ok := services[service]
	if !ok {
		return access.AWSAction{}, fmt.Errorf("jitproxy does not know the AWS service %q, so it cannot tell what the request does", service)
	}
	c := &call{r: r, body: body, query: q, ep: ep, service: service, region: region, partition: partition}
	op, err := svc.classify(c)
	if err != nil {
		return access.AWSAction{}, err
	}
	return access.AWSAction{
		Service:   service,
		Action:    service + ":" + op.action,
		Region:    region,
		Account:   op.account(),
		Resources: op.resources,
	}, nil
}

// call is one request being classified.
type call struct {
	r         *http.Request
	body      func() ([]byte, error)
	query     url.Values
	ep        endpoint
	service   string // signing name
	region    string
	partition string
}

// readBody returns the request body.
func (c *call) readBody() ([]byte, error) {
	if c.body == nil {
		return nil, errors.New("the request body is needed to classify the request but is not available")
	}
	b, err := c.body()
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	return b, nil
}

// operation is a classified request: the IAM action (without the service
// prefix) and the ARNs of what it acts on.
type operation struct {
	action    string
	resources []string
	accounts  []string // the account of each resource that names one
}

// add appends a resource ARN, unless already there, and the account it is
// in ("" or "*" when the ARN names none).
func (o *operation) add(arn, account string) {
	if slices.Contains(o.resources, arn) {
		return
	}
	o.resources = append(o.resources, arn)
	if account != "" && account != "*" {
		o.accounts = append(o.accounts, account)
	}
}

// account returns the one account all resources are in, or "".
func (o *operation) account() string {
	if len(o.accounts) == 0 || len(o.accounts) != len(o.resources) {
		return ""
	}
	for _, a := range o.accounts[1:] {
		if a != o.accounts[0] {
			return ""
		}
	}
	return o.accounts[0]
}

// parseQuery parses a query string strictly: a malformed escape is
// refused. Protocols that read a parameter refuse it given twice (see
// singleValued), since AWS might read the other copy.
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errors.New("the query string is malformed")
	}
	return q, nil
}

// checkPresigned refuses parameters that carry a signature.
func checkPresigned(q url.Values) error {
	for k := range q {
		for _, p := range presignParams {
			if strings.EqualFold(k, p) {
				return fmt.Errorf("parameter %s: %w", p, ErrPresigned)
			}
		}
	}
	return nil
}

// scopePart is the shape of a signing name or region in a credential scope.
var scopePart = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// signingScope returns the service (signing name) and region of the
// request: from the SigV4 credential scope when the request is signed,
// else from the host. A host that names a service or region other than the
// signature's is refused.
func signingScope(h http.Header, ep endpoint) (service, region string, err error) {
	auth := h.Values("Authorization")
	switch {
	case len(auth) > 1:
		return "", "", errors.New("the request has more than one Authorization header")
	case len(auth) == 0:
		if ep.service == "" {
			return "", "", fmt.Errorf("the request is not signed and host %q is not an AWS endpoint jitproxy knows, so it cannot tell which service the request is for", ep.host)
		}
		return ep.service, ep.region, nil
	}
	service, region, err = parseAuthorization(auth[0])
	if err != nil {
		return "", "", err
	}
	if ep.service != "" && ep.service != service {
		return "", "", fmt.Errorf("the request is signed for service %q but host %q is an endpoint of %q", service, ep.host, ep.service)
	}
	if ep.region != "" && ep.region != region && !ep.anyRegion {
		return "", "", fmt.Errorf("the request is signed for region %q but host %q is in %q", region, ep.host, ep.region)
	}
	if ep.aws {
		p, err := partitionOf(region)
		if err != nil {
			return "", "", err
		}
		found := false
		for _, ok := range ep.partitions {
			found = found || ok == p
		}
		if !found || (ep.anyRegion && p != "aws") {
			return "", "", fmt.Errorf("the request is signed for region %q, which host %q does not serve", region, ep.host)
		}
	}
	return service, region, nil
}

// parseAuthorization reads the service and region of a SigV4 Authorization
// header:
//
//	AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=...
//
// Errors never quote the header: it holds the agent's (placeholder) key.
func parseAuthorization(v string) (service, region string, err error) {
	scheme, params, _ := strings.Cut(v, " ")
	switch scheme {
	case "AWS4-HMAC-SHA256":
	case "AWS":
		return "", "", errors.New("AWS Signature Version 2 is refused: sign requests with Signature Version 4 (every current AWS SDK and CLI does)")
	case "AWS4-ECDSA-P256-SHA256":
		return "", "", errors.New("AWS Signature Version 4a (multi-region signing) is not supported by jitproxy")
	default:
		return "", "", errors.New("the Authorization header is not an AWS Signature Version 4 (AWS4-HMAC-SHA256) signature")
	}
	malformed := errors.New("the Authorization header is not a well-formed AWS Signature Version 4 signature")
	fields := map[string]string{}
	for _, f := range strings.Split(params, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || val == "" {
			return "", "", malformed
		}
		if _, dup := fields[k]; dup {
			return "", "", malformed
		}
		fields[k] = val
	}
	if len(fields) != 3 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return "", "", malformed
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] == "" || !isDate(scope[1]) || scope[4] != "aws4_request" ||
		!scopePart.MatchString(scope[2]) || !scopePart.MatchString(scope[3]) {
		return "", "", malformed
	}
	return scope[3], scope[2], nil
}

func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
