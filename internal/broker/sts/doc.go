// Package sts mints AWS credentials with STS AssumeRole, as jitproxy's own
// AWS identity, narrowed by an inline session policy to exactly what the
// grant allows.
//
// The access policy names the role to assume:
//
//	credential:
//	  provider: sts
//	  options:
//	    roleArn: arn:aws:iam::123456789012:role/jitproxy-s3   # required
//	    maxDuration: "3600"        # seconds or a Go duration; default 1h, 15m to 12h
//	    sourceIdentity: "false"    # do not set SourceIdentity (default true)
//	    sessionTags: "false"       # do not pass session tags (default true)
//
// For each grant, the provider calls AssumeRole with:
//   - Policy: a session policy generated from the grant's AWS permissions
//     (SessionPolicy): one Allow statement per permission, with its actions
//     and resources, and a condition on aws:RequestedRegion when the
//     permission names regions. The credential can then do at most what
//     both the role's policies and the grant allow, whatever the role
//     allows. A grant whose policy would exceed the 2,048 characters STS
//     accepts is refused, never replaced by something broader; STS may
//     still refuse a policy and tags that exceed its packed size limit,
//     and then the mint fails too.
//   - RoleSessionName: the grant's ID and the user, as GRANT.USER, cut to
//     STS's 64 characters and its character set; it appears in CloudTrail
//     and in the assumed role's ARN.
//   - SourceIdentity: the user. It stays with the session through role
//     chaining and shows in CloudTrail; the role's trust policy must allow
//     sts:SetSourceIdentity.
//   - Tags: jitproxy-user, jitproxy-agent and jitproxy-grant (TagUser,
//     TagAgent, TagGrant), not transitive; the trust policy must allow
//     sts:TagSession. The agent is that of the session the credential was
//     first minted for: the credential is shared by every session using the
//     grant on the target.
//   - DurationSeconds: the grant's remaining lifetime rounded up to the
//     second, but at least the 900 seconds STS accepts and at most
//     maxDuration, which must not exceed the role's maximum session
//     duration (1h unless raised; 1h at most when jitproxy's own identity
//     is itself an assumed role). The broker mints a new credential when a
//     grant outlives one.
//
// Values STS would reject are made to fit: characters outside the allowed
// set become '_', and a value so changed or cut ends with '.' and eight hex
// digits of its SHA-256, so that two users never share one name. S3-like
// servers (MinIO) and some trust policies reject SourceIdentity or session
// tags; sourceIdentity and sessionTags turn them off.
//
// STS credentials cannot be revoked one by one: the provider is no
// broker.Releaser, and a credential works until it expires, at most
// maxDuration and at most 15 minutes past its grant's end for a shorter
// grant. The broker stops handing it out when the grant ends. (Revoking
// every session of a role, with an aws:TokenIssueTime condition, is an
// administrator's emergency measure, outside jitproxy.)
//
// jitproxy's own calls to STS never go through a proxy from the
// environment (HTTPS_PROXY may be jitproxy itself): the provider clears the
// proxy of its HTTP transport. The caller should likewise give
// config.LoadDefaultConfig an HTTP client without a proxy (DirectHTTPClient)
// for the credential chain's own calls.
package sts
