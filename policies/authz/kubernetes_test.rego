package jitproxy.authz_test

import data.jitproxy.authz

pod_reader := {
	"id": "g-read",
	"policy": "pod-reader",
	"target": "demo",
	"namespace": "demo",
	"permissions": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"]}],
}

deployer := {
	"id": "g-deploy",
	"policy": "deployer",
	"target": "demo",
	"namespace": "demo",
	"permissions": [
		{"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]},
		{"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]},
	],
}

cluster_viewer := {
	"id": "g-cluster",
	"policy": "node-viewer",
	"target": "demo",
	"namespace": "",
	"permissions": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes"], "resourceNames": ["node-a"]}],
}

action(overrides) := object.union(
	{
		"kind": "kubernetes",
		"target": "demo",
		"verb": "list",
		"resource_request": true,
		"api_group": "",
		"api_version": "v1",
		"resource": "pods",
		"subresource": "",
		"namespace": "demo",
		"name": "",
		"path": "/api/v1/namespaces/demo/pods",
	},
	overrides,
)

allowed(inp) if {
	count(authz.permit) > 0 with input as inp
	count(authz.forbid) == 0 with input as inp
}

allowed(inp) if {
	authz.permit_discovery with input as inp
	count(authz.forbid) == 0 with input as inp
}

test_no_grant_denies if {
	not allowed({"action": action({}), "grants": []})
}

test_grant_permits_its_verbs if {
	every verb in ["get", "list", "watch"] {
		authz.permit == {"g-read"} with input as {"action": action({"verb": verb}), "grants": [pod_reader]}
	}
}

test_grant_does_not_permit_other_verbs if {
	every verb in ["create", "delete", "deletecollection", "patch"] {
		not allowed({"action": action({"verb": verb}), "grants": [pod_reader]})
	}
}

test_grant_stays_in_its_namespace if {
	not allowed({"action": action({"namespace": "prod"}), "grants": [pod_reader]})
	not allowed({"action": action({"namespace": ""}), "grants": [pod_reader]})
}

test_grant_stays_on_its_target if {
	not allowed({"action": action({"target": "prod-cluster"}), "grants": [pod_reader]})
}

test_subresources_need_listing if {
	allowed({"action": action({"verb": "get", "subresource": "log", "name": "web"}), "grants": [pod_reader]})
	not allowed({"action": action({"verb": "get", "subresource": "exec", "name": "web"}), "grants": [pod_reader]})
}

test_star_verbs_and_groups if {
	allowed({"action": action({"verb": "patch", "api_group": "apps", "resource": "deployments", "name": "web"}), "grants": [deployer]})
	not allowed({"action": action({"verb": "patch", "api_group": "", "resource": "deployments"}), "grants": [deployer]})
}

test_cluster_wide_grant_and_resource_names if {
	allowed({"action": action({"verb": "get", "resource": "nodes", "namespace": "", "name": "node-a"}), "grants": [cluster_viewer]})
	not allowed({"action": action({"verb": "get", "resource": "nodes", "namespace": "", "name": "node-b"}), "grants": [cluster_viewer]})
	not allowed({"action": action({"verb": "list", "resource": "nodes", "namespace": ""}), "grants": [cluster_viewer]})
}

test_discovery_needs_no_grant if {
	discovery := action({"verb": "get", "resource_request": false, "resource": "", "namespace": "", "path": "/apis/apps/v1"})
	authz.permit_discovery with input as {"action": discovery, "grants": []}
	count(authz.permit) == 0 with input as {"action": discovery, "grants": [pod_reader]}
	every path in ["/api", "/apis", "/version", "/api/v1", "/openapi/v3"] {
		authz.permit_discovery with input as {"action": object.union(discovery, {"path": path}), "grants": []}
	}
}

test_only_discovery_needs_no_grant if {
	discovery := action({"verb": "get", "resource_request": false, "resource": "", "namespace": "", "path": "/api"})
	not allowed({"action": object.union(discovery, {"path": "/logs/kubelet"}), "grants": [pod_reader]})
	not allowed({"action": object.union(discovery, {"path": "/metrics"}), "grants": []})
	not allowed({"action": object.union(discovery, {"verb": "post"}), "grants": []})
	not allowed({"action": action({}), "grants": []})
}

test_forbid_beats_permit if {
	inp := {
		"action": action({"verb": "create", "resource": "pods"}),
		"body": {"spec": {"containers": [{"name": "app", "securityContext": {"privileged": true}}]}},
		"grants": [deployer],
	}
	authz.permit == {"g-deploy"} with input as inp
	authz.forbid == {`container "app" must not be privileged`} with input as inp
	not allowed(inp)
}

test_admission_looks_into_workload_templates if {
	inp := {
		"action": action({"verb": "create", "api_group": "apps", "resource": "deployments"}),
		"body": {"spec": {"template": {"spec": {"hostNetwork": true, "containers": [{"name": "app"}]}}}},
		"grants": [deployer],
	}
	authz.forbid == {"pods must not set hostNetwork"} with input as inp
}

test_unprivileged_pod_is_admitted if {
	allowed({
		"action": action({"verb": "create", "resource": "pods"}),
		"body": {"spec": {"containers": [{"name": "app", "securityContext": {"privileged": false}}]}},
		"grants": [deployer],
	})
}

test_exec_into_kube_system_is_forbidden if {
	admin := object.union(deployer, {"namespace": "", "permissions": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]})
	not allowed({"action": action({"verb": "create", "subresource": "exec", "namespace": "kube-system", "name": "etcd"}), "grants": [admin]})
	allowed({"action": action({"verb": "create", "subresource": "exec", "namespace": "demo", "name": "web"}), "grants": [admin]})
}
