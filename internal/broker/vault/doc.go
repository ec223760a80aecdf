// Package vault mints Kubernetes credentials with Vault's kubernetes secrets
// engine (POST MOUNT/creds/ROLE): for each grant Vault creates a
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
// jitproxy authenticates to Vault with a token, or (the in-cluster default)
// with Vault's kubernetes auth method, logging in again before its Vault
// token expires, and at once when Vault refuses it (a Vault restarted or
// restored without its storage no longer knows it): the call that met the
// refusal is made again with the new token.
package vault
