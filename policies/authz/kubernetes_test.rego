package jitproxy.authz_test

import data.jitproxy.authz

pod_reader := {
	"id": "g-read",
	"policy": "pod-reader",
	"target": "demo",
	"namespace": "demo",
	"permissions": [{"kubernetes": {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "pods/log"]}}],
}

deployer := {
	"id": "g-deploy",
	"policy": "deployer",
	"target": "demo",
	"namespace": "demo",
	"permissions": [
		{"kubernetes": {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]}},
		{"kubernetes": {"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]}},
	],
}

cluster_viewer := {
	"id": "g-cluster",
	"policy": "node-viewer",
	"target": "demo",
	"namespace": "",
	"permissions": [{"kubernetes": {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["nodes"], "resourceNames": ["node-a"]}}],
}

# action(overrides) is a Kubernetes action: overrides name fields of
# input.action.kubernetes, and "target" and "path" of input.action.
action(overrides) := {
	"kind": "kubernetes",
	"target": object.get(overrides, "target", "demo"),
	"method": "GET",
	"path": object.get(overrides, "path", "/api/v1/namespaces/demo/pods"),
	"kubernetes": object.union(
		{
			"verb": "list",
			"resource_request": true,
			"api_group": "",
			"api_version": "v1",
			"resource": "pods",
			"subresource": "",
			"namespace": "demo",
			"name": "",
		},
		object.remove(overrides, ["target", "path"]),
	),
}

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
	not allowed({"action": object.union(discovery, {"kubernetes": object.union(discovery.kubernetes, {"verb": "post"})}), "grants": []})
	not allowed({"action": action({}), "grants": []})
}

# Admission: pod templates in every kind that carries one.

admin_grant := object.union(deployer, {"id": "g-admin", "permissions": [{"kubernetes": {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}}]})

app := {"name": "app", "image": "registry.k8s.io/pause"}

benign_spec := {"containers": [app]}

# Pod specs the baseline level forbids.
bad_specs := {
	"privileged container": {"containers": [object.union(app, {"securityContext": {"privileged": true}})]},
	"hostPID": {"hostPID": true, "containers": [app]},
	"hostPath /": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": [app]},
}

meta := {"name": "web", "namespace": "demo"}

template(spec) := {"metadata": {"labels": {"app": "web"}}, "spec": spec}

# writes(spec) maps each kind that carries a pod template to a write of an
# object of that kind built around spec: the group and resource the request
# names, and the object the apiserver would store.
writes(spec) := {
	"Pod": ["", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}],
	"PodTemplate": ["", "podtemplates", {"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": template(spec)}],
	"ReplicationController": ["", "replicationcontrollers", {
		"apiVersion": "v1", "kind": "ReplicationController", "metadata": meta,
		"spec": {"replicas": 1, "selector": {"app": "web"}, "template": template(spec)},
	}],
	"ReplicaSet": ["apps", "replicasets", {
		"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
		"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template(spec)},
	}],
	"Deployment": ["apps", "deployments", {
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
		"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template(spec)},
	}],
	"StatefulSet": ["apps", "statefulsets", {
		"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
		"spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}}, "template": template(spec)},
	}],
	"DaemonSet": ["apps", "daemonsets", {
		"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
		"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(spec)},
	}],
	"Job": ["batch", "jobs", {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template(spec)}}],
	"CronJob": ["batch", "cronjobs", {
		"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
		"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template(spec)}}},
	}],
	"Rollout": ["argoproj.io", "rollouts", {
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": meta,
		"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template(spec), "strategy": {"canary": {}}},
	}],
}

# write_of(kind, spec) is the write of writes(spec) for kind.
write_of(kind, spec) := w if {
	ws := writes(spec)
	w := ws[kind]
}

write_input(w, verb) := {
	"action": action({"verb": verb, "api_group": w[0], "resource": w[1], "name": "web"}),
	"object": w[2],
	"grants": [admin_grant],
}

test_admission_forbids_bad_templates_in_every_kind if {
	every _, spec in bad_specs {
		every _, w in writes(spec) {
			every verb in ["create", "update", "patch"] {
				inp := write_input(w, verb)
				authz.permit == {"g-admin"} with input as inp
				reasons := authz.forbid with input as inp
				count(reasons) > 0
				every reason in reasons {
					contains(reason, `violates PodSecurity "baseline:latest": `)
				}
			}
		}
	}
}

test_admission_allows_benign_templates_in_every_kind if {
	every _, w in writes(benign_spec) {
		every verb in ["create", "update", "patch"] {
			allowed(write_input(w, verb))
		}
	}
}

test_admission_covers_every_kind if {
	count(writes(benign_spec)) == 10
	every _, w in writes(benign_spec) {
		count(authz.pod_templates(w[2])) == 1
	}
}

test_forbid_reasons_name_the_place_level_reason_and_detail if {
	authz.forbid == {`pod violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)`} with input as write_input(write_of("Pod", bad_specs["privileged container"]), "create")
	authz.forbid == {`pod template at spec.template violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`} with input as write_input(write_of("Deployment", bad_specs.hostPID), "create")
	authz.forbid == {`pod template at template violates PodSecurity "baseline:latest": hostPath volumes (volume "root")`} with input as write_input(write_of("PodTemplate", bad_specs["hostPath /"]), "create")
	authz.forbid == {`pod template at spec.jobTemplate.spec.template violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`} with input as write_input(write_of("CronJob", bad_specs.hostPID), "create")
}

test_every_violation_is_a_reason if {
	spec := {"hostPID": true, "containers": [object.union(app, {"securityContext": {"privileged": true}})]}
	authz.forbid == {
		`pod violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`,
		`pod violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)`,
	} with input as write_input(write_of("Pod", spec), "create")
}

test_forbid_beats_permit if {
	inp := write_input(write_of("Pod", bad_specs["privileged container"]), "create")
	authz.permit == {"g-admin"} with input as inp
	count(authz.forbid) == 1 with input as inp
	not allowed(inp)
}

test_privileged_ephemeral_container_is_forbidden if {
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
		"containers": [app],
		"ephemeralContainers": [{"name": "debugger", "image": "busybox", "securityContext": {"privileged": true}}],
	}}
	every verb in ["update", "patch"] {
		inp := {"action": action({"verb": verb, "subresource": "ephemeralcontainers", "name": "web"}), "object": pod, "grants": [admin_grant]}
		authz.permit == {"g-admin"} with input as inp
		authz.forbid == {`pod violates PodSecurity "baseline:latest": privileged (container "debugger" must not set securityContext.privileged=true)`} with input as inp
	}
	allowed({
		"action": action({"verb": "patch", "subresource": "ephemeralcontainers", "name": "web"}),
		"object": json.patch(pod, [{"op": "remove", "path": "/spec/ephemeralContainers/0/securityContext"}]),
		"grants": [admin_grant],
	})
}

test_objects_without_pod_templates_are_unaffected if {
	widget := {
		"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta,
		"spec": {"hostPID": true, "privileged": true, "template": {"spec": {"hostPID": true}}, "jobTemplate": {"spec": {"template": {"hostPID": true}}}},
	}
	allowed({"action": action({"verb": "create", "api_group": "example.com", "resource": "widgets"}), "object": widget, "grants": [admin_grant]})
	config := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"spec": "privileged: true"}}
	allowed({"action": action({"verb": "create", "resource": "configmaps"}), "object": config, "grants": [admin_grant]})
	count(authz.pod_templates(widget)) == 0
}

test_requests_without_an_object_are_unaffected if {
	allowed({"action": action({}), "grants": [pod_reader]})
	allowed({"action": action({"verb": "get", "name": "web"}), "grants": [pod_reader]})
	allowed({"action": action({"verb": "delete", "name": "web"}), "grants": [admin_grant]})
}

test_the_body_is_not_judged if {
	inp := {
		"action": action({"verb": "create", "resource": "pods"}),
		"body": {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": bad_specs["privileged container"]},
		"grants": [admin_grant],
	}
	count(authz.forbid) == 0 with input as inp
}

test_restricted_is_a_one_line_switch if {
	benign := write_input(write_of("Deployment", benign_spec), "create")
	allowed(benign)
	not allowed(benign) with data.jitproxy.authz.pod_security_level as "restricted"
	reasons := authz.forbid with input as benign with data.jitproxy.authz.pod_security_level as "restricted"
	count(reasons) > 0
	every reason in reasons {
		startswith(reason, `pod template at spec.template violates PodSecurity "restricted:latest": `)
	}
	hardened := {
		"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
		"containers": [object.union(app, {"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})],
	}
	allowed(write_input(write_of("Deployment", hardened), "create")) with data.jitproxy.authz.pod_security_level as "restricted"
}

test_exec_into_kube_system_is_forbidden if {
	admin := object.union(deployer, {"namespace": "", "permissions": [{"kubernetes": {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}}]})
	not allowed({"action": action({"verb": "create", "subresource": "exec", "namespace": "kube-system", "name": "etcd"}), "grants": [admin_grant]})
	allowed({"action": action({"verb": "create", "subresource": "exec", "namespace": "demo", "name": "web"}), "grants": [admin_grant]})
}
