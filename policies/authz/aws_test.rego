package jitproxy.authz_test

import data.jitproxy.authz

reports_reader := {
	"id": "g-reports",
	"policy": "reports-reader",
	"target": "aws",
	"namespace": "",
	"permissions": [{"aws": {
		"actions": ["s3:ListBucket", "s3:Get*"],
		"resources": ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"],
		"regions": [],
	}}],
}

orders_writer := {
	"id": "g-orders",
	"policy": "orders-writer",
	"target": "aws",
	"namespace": "",
	"permissions": [{"aws": {
		"actions": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
		"resources": ["arn:aws:dynamodb:eu-west-1:123456789012:table/orders"],
		"regions": ["eu-west-1"],
	}}],
}

admin := {
	"id": "g-admin",
	"policy": "admin",
	"target": "aws",
	"namespace": "",
	"permissions": [{"aws": {"actions": ["*"], "resources": ["*"], "regions": []}}],
}

aws_action(overrides) := {
	"kind": "aws",
	"target": object.get(overrides, "target", "aws"),
	"method": "GET",
	"path": "/",
	"aws": object.union(
		{"service": "s3", "action": "s3:GetObject", "region": "us-east-1", "account": "", "resources": ["arn:aws:s3:::reports/q3.csv"]},
		object.remove(overrides, ["target"]),
	),
}

test_aws_no_grant_denies if {
	not allowed({"action": aws_action({}), "grants": []})
}

test_aws_grant_permits_its_actions_and_resources if {
	every a in [
		{"action": "s3:GetObject", "resources": ["arn:aws:s3:::reports/q3.csv"]},
		{"action": "s3:GetObject", "resources": ["arn:aws:s3:::reports/2026/q3/data.csv"]},
		{"action": "s3:ListBucket", "resources": ["arn:aws:s3:::reports"]},
		{"action": "S3:getobjectversion", "resources": ["arn:aws:s3:::reports/x"]},
	] {
		authz.permit == {"g-reports"} with input as {"action": aws_action(a), "grants": [reports_reader]}
	}
}

test_aws_grant_permits_nothing_else if {
	every a in [
		{"action": "s3:PutObject", "resources": ["arn:aws:s3:::reports/q3.csv"]},
		{"action": "s3:GetObject", "resources": ["arn:aws:s3:::reports-archive/q3.csv"]},
		{"action": "s3:ListBucket", "resources": ["arn:aws:s3:::other"]},
		# A copy names two objects: both must be covered.
		{"action": "s3:GetObject", "resources": ["arn:aws:s3:::reports/a", "arn:aws:s3:::secrets/b"]},
		# An action without resources needs "*".
		{"action": "s3:ListAllMyBuckets", "resources": []},
		{"action": "s3:GetObject", "target": "aws-prod"},
	] {
		not allowed({"action": aws_action(a), "grants": [reports_reader]})
	}
}

test_aws_regions_bound_a_grant if {
	put := {"service": "dynamodb", "action": "dynamodb:PutItem", "resources": ["arn:aws:dynamodb:eu-west-1:123456789012:table/orders"]}
	allowed({"action": aws_action(object.union(put, {"region": "eu-west-1"})), "grants": [orders_writer]})
	not allowed({"action": aws_action(object.union(put, {"region": "us-east-1"})), "grants": [orders_writer]})
	not allowed({"action": aws_action(object.union(put, {"region": "eu-west-1", "action": "dynamodb:DeleteTable"})), "grants": [orders_writer]})
}

test_aws_patterns_are_iam_wildcards_not_globs if {
	brackets := object.union(reports_reader, {"permissions": [{"aws": {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::reports/[ab]"], "regions": []}}]})
	allowed({"action": aws_action({"resources": ["arn:aws:s3:::reports/[ab]"]}), "grants": [brackets]})
	not allowed({"action": aws_action({"resources": ["arn:aws:s3:::reports/a"]}), "grants": [brackets]})
	question := object.union(reports_reader, {"permissions": [{"aws": {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::reports/q?.csv"], "regions": []}}]})
	allowed({"action": aws_action({}), "grants": [question]})
	not allowed({"action": aws_action({"resources": ["arn:aws:s3:::reports/q10.csv"]}), "grants": [question]})
}

test_aws_forbids_beat_any_grant if {
	every a in [
		{"service": "sts", "action": "sts:AssumeRole", "resources": ["arn:aws:iam::123456789012:role/admin"]},
		{"service": "sts", "action": "sts:GetSessionToken", "resources": []},
		{"service": "iam", "action": "iam:CreateAccessKey", "resources": []},
		{"service": "iam", "action": "iam:AttachRolePolicy", "resources": []},
		{"service": "iam", "action": "iam:PutUserPolicy", "resources": []},
		{"service": "organizations", "action": "organizations:LeaveOrganization", "resources": []},
		{"service": "kms", "action": "kms:ScheduleKeyDeletion", "resources": []},
	] {
		authz.permit == {"g-admin"} with input as {"action": aws_action(a), "grants": [admin]}
		not allowed({"action": aws_action(a), "grants": [admin]})
	}
}

test_aws_reads_of_iam_are_not_forbidden if {
	every a in [
		{"service": "iam", "action": "iam:GetRole", "resources": []},
		{"service": "iam", "action": "iam:ListRoles", "resources": []},
		{"service": "organizations", "action": "organizations:DescribeOrganization", "resources": []},
		{"service": "sts", "action": "sts:GetCallerIdentity", "resources": []},
	] {
		allowed({"action": aws_action(a), "grants": [admin]})
	}
}

test_kubernetes_grants_do_not_permit_aws if {
	k8s_admin := {"id": "g-k", "policy": "k", "target": "aws", "namespace": "", "permissions": [{"kubernetes": {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}}]}
	not allowed({"action": aws_action({}), "grants": [k8s_admin]})
}

test_aws_grants_do_not_permit_kubernetes if {
	not allowed({"action": action({"target": "aws"}), "grants": [admin]})
}
