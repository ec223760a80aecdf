// Package aws is the AWS protocol of jitproxy's pipeline. Classify reads
// what an AWS API request does in IAM's terms (service, action, region,
// resource ARNs) from what the SDK or CLI sends: the SigV4 credential
// scope or the endpoint name, and the operation as each protocol names it
// (Action= for the query protocol, X-Amz-Target for the JSON protocol, a
// route table for REST services, S3's own bucket, key and subresource
// rules). It refuses what it cannot read exactly as AWS will, so that a
// policy never judges one request while AWS performs another.
//
// Protocol puts this to work in the pipeline: it forwards an allow-list of
// headers (the agent's Authorization, session token and signing headers
// never reach AWS), signs each request anew with the grant's minted
// credential using the AWS SDK's SigV4 signer, and answers errors in the
// format of the request's protocol (S3's <Error>, the query and REST-XML
// <ErrorResponse>, the JSON __type), which the AWS CLI and SDKs print.
// Agents sign with placeholder keys; jitproxy never checks that signature.
package aws
