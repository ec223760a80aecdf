// Package vault mints credentials through HashiCorp Vault's secrets
// engines: Kubernetes credentials with the kubernetes engine (provider
// "vault", Provider) and AWS credentials with the AWS engine (provider
// "vault-aws", AWSProvider). Both share how jitproxy authenticates to
// Vault.
//
// # Kubernetes
//
// Provider asks POST MOUNT/creds/ROLE: for each grant Vault creates a
// ServiceAccount, a Role with the Vault role's generated rules and a
// RoleBinding, and returns the ServiceAccount's token under a lease. When
// the grant ends, the broker releases the credential and this provider
// revokes the lease, and Vault deletes what it created.
//
// The access policy names the Vault role:
//
//	credential:
//	  provider: vault
//	  options:
//	    role: pod-reader             # required: a role of the secrets engine
//	    namespace: tools             # default: the grant's namespace
//	    clusterRoleBinding: "true"   # bind cluster-wide (cluster-wide grants)
//
// # AWS
//
// AWSProvider asks the AWS secrets engine for keys of a Vault role:
//
//	credential:
//	  provider: vault-aws
//	  options:
//	    role: s3-reports-reader           # required: a role of the secrets engine
//	    credentialType: assumed_role      # assumed_role, federation_token or iam_user;
//	                                      # default: whatever the Vault role is
//	    roleArn: arn:aws:iam::123456789012:role/reader   # assumed_role, when the
//	                                      # Vault role allows several ARNs
//
// With credentialType assumed_role or federation_token it writes
// MOUNT/sts/ROLE; with iam_user, or none, MOUNT/creds/ROLE, which serves
// every type of a role made with Vault's current parameters (a legacy role,
// made with policy or arn, needs credentialType). STS credentials are asked
// for the grant's remaining lifetime (ttl), at least 15 minutes, at most
// AWSConfig.MaxTTL and the Vault role's max_sts_ttl; an assumed role's
// session is named GRANT.USER (role_session_name) for CloudTrail.
//
// What the credential can do is the Vault role's, not the grant's. Vault's
// endpoint takes per call only ttl, role_arn, role_session_name and
// mfa_code: no policy_document, policy_arns, session tags or source
// identity. So, per credential type:
//   - assumed_role: Vault calls AssumeRole with the Vault role's
//     policy_document, policy_arns and iam_groups' policies as session
//     policies. jitproxy can narrow the lifetime (ttl) and choose among the
//     Vault role's role_arns (roleArn), nothing else; session tags and an
//     external ID come from the Vault role. The keys cannot be revoked:
//     they work until they expire, at most 15 minutes past a short grant.
//   - federation_token: GetFederationToken with the Vault role's policies;
//     jitproxy narrows the lifetime only. Not revocable either. Vault's own
//     credentials must be an IAM user's (federation tokens cannot be had
//     from a role's).
//   - iam_user: Vault creates an IAM user with the Vault role's policies,
//     groups and permissions boundary, and returns its access keys under a
//     lease. jitproxy can narrow nothing: not the permissions, nor the
//     lifetime (the lease comes from the engine's config/lease). But the
//     keys can be revoked: at grant end the broker releases them and Vault
//     deletes the user. New IAM keys may take some seconds to work
//     everywhere in AWS; if jitproxy misses a release, they live until the
//     lease ends, so config/lease should not be much longer than a grant.
//
// So that a vault-aws credential is no broader than its grant, the Vault
// role must allow no more than the access policy's AWS permissions; the
// sts provider, which generates the session policy from the grant, needs
// no such care.
//
// # Authentication
//
// jitproxy authenticates to Vault with a token, or (the in-cluster default)
// with Vault's kubernetes auth method, logging in again before its Vault
// token expires, and at once when Vault refuses it (a Vault restarted or
// restored without its storage no longer knows it): the call that met the
// refusal is made again with the new token.
package vault
