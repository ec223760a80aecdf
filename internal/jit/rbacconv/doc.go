// Package rbacconv converts Kubernetes RBAC (Roles, ClusterRoles and the
// bindings that grant them) into access policies, so that standing access
// can be replaced by just-in-time grants of the same reach.
//
// Each binding becomes one access policy, named after it: a RoleBinding
// demo/web-editors becomes "demo-web-editors", a ClusterRoleBinding ops
// becomes "ops" (a name that is not a DNS label, or that two bindings
// would share, gets a suffix hashed from its source). Its subjects are the
// binding's users and groups, and its ServiceAccounts as the users the
// apiserver knows them as (system:serviceaccount:NAMESPACE:NAME); its
// permissions are the rules of the role bound (for an aggregated
// ClusterRole, the rules the apiserver filled in). A RoleBinding gives a
// policy for its own namespace, whichever kind of role it binds; a
// ClusterRoleBinding a cluster-wide one.
//
// The conversion never widens access: what RBAC would match nothing with
// (a rule without verbs, resources without apiGroups, "pods/*", which RBAC
// reads as a subresource named "*") or what a policy cannot say (a
// resource name that is not a printable name) is dropped, with a warning;
// so are nonResourceURLs in a RoleBinding's rules, which RBAC ignores
// there. Rules that let their holder escalate (verbs escalate, bind,
// impersonate or "*") are kept, with a warning.
//
// Every policy written is parsed back with jit.ParsePolicies before it is
// returned: a binding whose policy would not load is reported and left out.
package rbacconv
