# Authorization and admission for Kubernetes targets.
#
# jitproxy evaluates data.jitproxy.authz for every proxied request with
#   input.caller      the agent session (session, agent, user, groups,
#                     auth_method, source_address)
#   input.action      the classified request: kind ("kubernetes"), target,
#                     method, path, and input.action.kubernetes (verb,
#                     resource_request, api_group, api_version, resource,
#                     subresource, namespace, name)
#   input.object      the object as the apiserver will store it (a full
#                     Kubernetes object: apiVersion, kind, metadata, spec,
#                     ...), the result of sending the request with
#                     dryRun=All first. Present for create, update and patch
#                     (every patch type) of resources, and for writes of
#                     pods/ephemeralcontainers, where it is the whole Pod.
#                     jitproxy never forwards such a write without it.
#   input.old_object  the stored object an update or patch replaces; absent
#                     for a create
#   input.body        the raw request body as JSON (a manifest or a patch),
#                     for policies that want it; the rules below judge
#                     input.object instead
#   input.grants      the caller's ACTIVE grants (id, policy, target,
#                     namespace, permissions); a permission of a Kubernetes
#                     grant is {"kubernetes": {verbs, apiGroups, resources,
#                     resourceNames, nonResourceURLs}}
# A request is allowed when `permit` holds at least one grant ID (or
# `permit_discovery` holds) and `forbid` holds no reason: deny by default,
# and forbid beats permit.
#
# Policies may call jitproxy.pod_security(level, pod_template), the
# Kubernetes Pod Security Standards as the cluster's own Pod Security
# Admission evaluates them: it returns the failed checks, each
# {"check", "reason", "detail"}, or an empty array.
package jitproxy.authz

# The Pod Security Standards level (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
# every pod and pod template an agent writes must meet. "baseline", the
# default, forbids privileged containers, host namespaces, hostPath volumes,
# host ports, added capabilities and the like. "restricted" forbids that and
# also requires running as non-root, dropping ALL capabilities, a
# RuntimeDefault or Localhost seccomp profile, no privilege escalation and
# only volume types that do not reach into the node. To enforce restricted,
# change "baseline" to "restricted" on the next line ("privileged" turns the
# check off).
pod_security_level := "baseline"

# A grant permits a resource request its permissions cover, in its
# namespace: a grant with no namespace is cluster-wide; otherwise it covers
# requests in its own namespace only, never cluster-scoped or all-namespace
# requests.
permit contains grant.id if {
	input.action.kind == "kubernetes"
	scopes := {"", input.action.kubernetes.namespace}
	some grant in input.grants
	grant.namespace in scopes
	grant.target == input.action.target
	some permission in grant.permissions
	allows(permission.kubernetes, input.action.kubernetes, input.action.path)
}

# Any session may read the discovery documents kubectl fetches before every
# command: they describe the API, not its objects. jitproxy sends them with
# the target's discovery identity, which can read them and nothing else, so
# that kubectl gets as far as the request that needs a grant.
permit_discovery if {
	input.action.kind == "kubernetes"
	not input.action.kubernetes.resource_request
	input.action.kubernetes.verb == "get"
	discovery_path(input.action.path)
}

allows(permission, action, _) if {
	action.resource_request
	listed(permission.verbs, action.verb)
	listed(permission.apiGroups, action.api_group)
	resource_listed(permission.resources, action)
	name_listed(permission, action)
}

allows(permission, action, path) if {
	not action.resource_request
	listed(permission.verbs, action.verb)
	some url in permission.nonResourceURLs
	url_matches(url, path)
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
	input.action.kubernetes.namespace == "kube-system"
	input.action.kubernetes.resource == "pods"
	input.action.kubernetes.subresource in {"exec", "attach", "portforward"}
}

# Admission: no grant lets an agent write a pod, or an object that makes
# pods, that fails the Pod Security Standards at pod_security_level.
forbid contains sprintf("%s violates PodSecurity %q: %s", [where, level, violation_text(violation)]) if {
	input.action.kind == "kubernetes"
	some path, template in pod_templates(input.object)
	some violation in jitproxy.pod_security(pod_security_level, template)
	where := template_place(path)
	level := sprintf("%s:latest", [pod_security_level])
}

# pod_templates(obj) finds the pods obj would run: an object that maps where
# each pod template sits in obj ("" for a Pod itself, else a path such as
# "spec.template") to the template {"metadata": {...}, "spec": {...}}.
# A Pod is matched by its kind; everything else by shape, so custom
# resources that embed a pod template (an Argo Rollout, ...) are covered:
#   template                        PodTemplate
#   spec.template                   ReplicationController, ReplicaSet,
#                                   Deployment, StatefulSet, DaemonSet, Job,
#                                   and custom resources
#   spec.jobTemplate.spec.template  CronJob, and custom resources
pod_templates(obj) := {path: template |
	some path in ["", "template", "spec.template", "spec.jobTemplate.spec.template"]
	template := pod_template_at(obj, path)
}

# A Pod's spec is taken even when missing (null), so that
# jitproxy.pod_security refuses it rather than the Pod go unjudged.
pod_template_at(obj, "") := {"metadata": object.get(obj, "metadata", {}), "spec": object.get(obj, "spec", null)} if {
	obj.apiVersion == "v1"
	obj.kind == "Pod"
}

pod_template_at(obj, path) := template if {
	path != ""
	template := object.get(obj, split(path, "."), null)
	is_array(template.spec.containers)
}

template_place("") := "pod"

template_place(path) := sprintf("pod template at %s", [path]) if path != ""

violation_text(violation) := violation.reason if violation.detail == ""

violation_text(violation) := sprintf("%s (%s)", [violation.reason, violation.detail]) if violation.detail != ""
