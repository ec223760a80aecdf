# Authorization and admission for Kubernetes targets.
#
# jitproxy evaluates data.jitproxy.authz for every proxied request with
#   input.caller  the agent session (session, agent, user, groups)
#   input.action  the classified request (kind, target, verb, api_group,
#                 resource, subresource, namespace, name, path, ...)
#   input.body    the request body as JSON, for create, update and patch
#   input.grants  the caller's ACTIVE grants (id, policy, target, namespace,
#                 permissions)
# A request is allowed when `permit` holds at least one grant ID (or
# `permit_discovery` holds) and `forbid` holds no reason: deny by default,
# and forbid beats permit.
package jitproxy.authz

# A grant permits a resource request its permissions cover, in its namespace.
permit contains grant.id if {
	input.action.kind == "kubernetes"
	some grant in input.grants
	grant.target == input.action.target
	in_scope(grant, input.action)
	some permission in grant.permissions
	allows(permission, input.action)
}

# Any session may read the discovery documents kubectl fetches before every
# command: they describe the API, not its objects. jitproxy sends them with
# the target's discovery identity, which can read them and nothing else, so
# that kubectl gets as far as the request that needs a grant.
permit_discovery if {
	input.action.kind == "kubernetes"
	not input.action.resource_request
	input.action.verb == "get"
	discovery_path(input.action.path)
}

# A grant with no namespace is cluster-wide; otherwise it covers requests in
# its own namespace only, never cluster-scoped or all-namespace requests.
in_scope(grant, _) if grant.namespace == ""

in_scope(grant, action) if {
	grant.namespace != ""
	grant.namespace == action.namespace
}

allows(permission, action) if {
	action.resource_request
	listed(permission.verbs, action.verb)
	listed(permission.apiGroups, action.api_group)
	resource_listed(permission.resources, action)
	name_listed(permission, action)
}

allows(permission, action) if {
	not action.resource_request
	listed(permission.verbs, action.verb)
	some url in permission.nonResourceURLs
	url_matches(url, action.path)
}

listed(list, _) if "*" in list

listed(list, value) if value in list

resource_listed(list, _) if "*" in list

resource_listed(list, action) if {
	action.subresource == ""
	action.resource in list
}

resource_listed(list, action) if {
	action.subresource != ""
	some pattern in {
		sprintf("%s/%s", [action.resource, action.subresource]),
		sprintf("%s/*", [action.resource]),
		sprintf("*/%s", [action.subresource]),
	}
	pattern in list
}

name_listed(permission, _) if count(object.get(permission, "resourceNames", [])) == 0

name_listed(permission, action) if {
	action.name != ""
	action.name in permission.resourceNames
}

url_matches(url, path) if url == path

url_matches(url, path) if {
	endswith(url, "*")
	startswith(path, trim_suffix(url, "*"))
}

discovery_path(path) if path in {"/api", "/apis", "/version"}

discovery_path(path) if {
	some prefix in {"/api/", "/apis/", "/openapi/"}
	startswith(path, prefix)
}

# Interactive access to the control plane's own pods is never granted.
forbid contains "exec, attach and port-forward into kube-system are forbidden" if {
	input.action.kind == "kubernetes"
	input.action.namespace == "kube-system"
	input.action.resource == "pods"
	input.action.subresource in {"exec", "attach", "portforward"}
}

# Admission: no grant lets an agent run a privileged container.
forbid contains sprintf("container %q must not be privileged", [container.name]) if {
	input.action.kind == "kubernetes"
	input.action.verb in {"create", "update", "patch"}
	some container in pod_containers
	container.securityContext.privileged == true
}

# Admission: no grant lets an agent share the node's namespaces.
forbid contains sprintf("pods must not set %s", [field]) if {
	input.action.kind == "kubernetes"
	input.action.verb in {"create", "update", "patch"}
	some field in {"hostNetwork", "hostPID", "hostIPC"}
	pod_spec[field] == true
}

# The pod spec of a pod or of a workload's pod template, from the body.
pod_spec := input.body.spec if input.action.resource == "pods"

pod_spec := input.body.spec.template.spec if {
	input.action.resource in {"deployments", "replicasets", "statefulsets", "daemonsets", "jobs"}
}

pod_spec := input.body.spec.jobTemplate.spec.template.spec if input.action.resource == "cronjobs"

pod_containers contains container if {
	some list in ["containers", "initContainers", "ephemeralContainers"]
	some container in pod_spec[list]
}
