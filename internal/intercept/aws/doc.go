// Package aws is the AWS protocol of jitproxy's pipeline. Classify reads
// what an AWS API request does in IAM's terms (service, action, region,
// resource ARNs) from what the SDK or CLI sends: the SigV4 credential
// scope or the endpoint name, and the operation as each protocol names it
// (Action= for the query protocol, X-Amz-Target for the JSON protocol, a
// route table for REST services, S3's own bucket, key and subresource
// rules). It refuses what it cannot read exactly as AWS will, so that a
// policy never judges one request while AWS performs another.
package aws
