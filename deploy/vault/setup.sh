#!/usr/bin/env bash
# Configures Vault as jitproxy's credential source for one Kubernetes cluster:
#
#   - the kubernetes secrets engine at $MOUNT, which creates a ServiceAccount,
#     a Role with the role's generated_role_rules and a RoleBinding for each
#     lease, returns the ServiceAccount's token, and deletes all three when
#     the lease is revoked (jitproxy revokes it when the grant ends);
#   - roles pod-reader and namespace-editor, matching the example access
#     policies in deploy/vault/access/;
#   - the kubernetes auth method at auth/$AUTH_MOUNT with role "jitproxy", so
#     jitproxy logs in with its ServiceAccount token; and the Vault policy
#     "jitproxy", which may ask for credentials and revoke their leases.
#
# Vault's own identity in the cluster needs deploy/vault/vault-rbac.yaml.
# Run it again at will: every step is idempotent.
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN   a Vault admin (the vault CLI's own variables)
#   KUBE_HOST                 the apiserver URL, as Vault reaches it
#   KUBE_CA_FILE              the apiserver's CA certificate
#   VAULT_KUBE_TOKEN_FILE     Vault's own bearer token for the apiserver
#   MOUNT                     secrets engine path (default kubernetes)
#   AUTH_MOUNT                auth method path (default kubernetes)
#   JITPROXY_SA               jitproxy's ServiceAccount, namespace/name
#                             (default jitproxy-system/jitproxy)
#   VAULT                     the vault CLI (default: vault on PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${VAULT_ADDR:?}" "${VAULT_TOKEN:?}" "${KUBE_HOST:?}" "${KUBE_CA_FILE:?}" "${VAULT_KUBE_TOKEN_FILE:?}"
MOUNT=${MOUNT:-kubernetes}
AUTH_MOUNT=${AUTH_MOUNT:-kubernetes}
JITPROXY_SA=${JITPROXY_SA:-jitproxy-system/jitproxy}
vault=${VAULT:-vault}

# Whether something is mounted is asked of the one mount, never by piping a
# listing into grep: under pipefail, grep -q exiting at its first match can
# kill the writer with SIGPIPE and make a present mount look absent.
mounted() { "$vault" read -format=json "sys/mounts/$1" >/dev/null 2>&1; }
auth_enabled() { "$vault" read -format=json "sys/auth/$1" >/dev/null 2>&1; }

if ! mounted "$MOUNT"; then
	"$vault" secrets enable -path="$MOUNT" kubernetes
fi
"$vault" write "$MOUNT/config" \
	kubernetes_host="$KUBE_HOST" \
	kubernetes_ca_cert=@"$KUBE_CA_FILE" \
	service_account_jwt=@"$VAULT_KUBE_TOKEN_FILE" \
	disable_local_ca_jwt=true

# token_max_ttl is each access policy's maximum duration: jitproxy asks for
# the grant's remaining time, at least the 10 minutes the apiserver requires.
"$vault" write "$MOUNT/roles/pod-reader" \
	allowed_kubernetes_namespaces="demo,staging" \
	kubernetes_role_type=Role \
	generated_role_rules=@"$here/roles/pod-reader.yaml" \
	token_default_ttl=15m token_max_ttl=1h
"$vault" write "$MOUNT/roles/namespace-editor" \
	allowed_kubernetes_namespaces="demo,staging" \
	kubernetes_role_type=Role \
	generated_role_rules=@"$here/roles/namespace-editor.yaml" \
	token_default_ttl=30m token_max_ttl=4h

"$vault" policy write jitproxy - <<POLICY
path "$MOUNT/creds/*" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
POLICY

if ! auth_enabled "$AUTH_MOUNT"; then
	"$vault" auth enable -path="$AUTH_MOUNT" kubernetes
fi
"$vault" write "auth/$AUTH_MOUNT/config" \
	kubernetes_host="$KUBE_HOST" \
	kubernetes_ca_cert=@"$KUBE_CA_FILE" \
	token_reviewer_jwt=@"$VAULT_KUBE_TOKEN_FILE" \
	disable_local_ca_jwt=true
"$vault" write "auth/$AUTH_MOUNT/role/jitproxy" \
	bound_service_account_names="${JITPROXY_SA#*/}" \
	bound_service_account_namespaces="${JITPROXY_SA%%/*}" \
	token_policies=jitproxy \
	token_ttl=1h token_max_ttl=24h
echo "vault: kubernetes secrets engine at $MOUNT/, auth method at auth/$AUTH_MOUNT/, policy jitproxy: configured"
