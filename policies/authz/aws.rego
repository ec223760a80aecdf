# Authorization for AWS targets.
#
# For a request to an AWS target, input.action.aws holds
#   service    the service's IAM prefix and signing name ("s3", "sts", ...)
#   action     the IAM action the request needs ("s3:GetObject")
#   region     the region it is signed for ("us-east-1")
#   account    the account its resources belong to, when the request names it
#   resources  the ARNs of the resources it names (a bucket, an object, a
#              table, a queue); [] when it names none
# and each permission of an AWS grant is {"aws": {actions, resources,
# regions}}, an IAM-statement-shaped rule of the grant's access policy.
package jitproxy.authz

# A grant permits a request one of its permissions covers.
permit contains grant.id if {
	input.action.kind == "aws"
	some grant in input.grants
	grant.target == input.action.target
	some permission in grant.permissions
	aws_allows(permission.aws, input.action.aws)
}

# A permission covers an action when one of its actions matches the
# action's name (ignoring case, as IAM does), every resource the request
# names matches one of its resources, and the region is one of its regions
# (any, when it lists none).
aws_allows(permission, action) if {
	some pattern in permission.actions
	iam_match(lower(pattern), lower(action.action))
	aws_resources_covered(permission.resources, action.resources)
	aws_region_allowed(permission.regions, action.region)
}

aws_resources_covered(patterns, resources) if {
	count(resources) > 0
	every resource in resources {
		some pattern in patterns
		iam_match(pattern, resource)
	}
}

# An action that names no resource (s3:ListAllMyBuckets) needs "*".
aws_resources_covered(patterns, resources) if {
	count(resources) == 0
	"*" in patterns
}

aws_region_allowed(regions, _) if count(regions) == 0

aws_region_allowed(regions, region) if region in regions

# iam_match matches as IAM does: "*" any run of characters (slashes and
# colons included), "?" any one; every other character stands for itself.
iam_match(pattern, value) if glob.match(glob_escape(pattern), null, value)

glob_escape(pattern) := strings.replace_n({"\\": "\\\\", "[": "\\[", "]": "\\]", "{": "\\{", "}": "\\}"}, pattern)

# No grant lets an agent obtain credentials: the answer would hand it a real
# secret, which jitproxy exists to keep from it.
forbid contains sprintf("%s returns credentials, which agents never hold", [input.action.aws.action]) if {
	input.action.kind == "aws"
	lower(input.action.aws.action) in {
		"sts:assumerole", "sts:assumerolewithsaml", "sts:assumerolewithwebidentity", "sts:assumeroot",
		"sts:getsessiontoken", "sts:getfederationtoken", "sso:getrolecredentials",
		"iam:createaccesskey", "iam:createloginprofile", "iam:updateloginprofile",
		"iam:createservicespecificcredential", "iam:resetservicespecificcredential",
	}
}

# No grant lets an agent change who may do what in the account, or the
# organization: IAM and Organizations are read-only to agents.
forbid contains sprintf("%s changes IAM or Organizations, which agents may only read", [input.action.aws.action]) if {
	input.action.kind == "aws"
	input.action.aws.service in {"iam", "organizations"}
	not read_only(input.action.aws.action)
}

read_only(action) if {
	name := split(action, ":")[1]
	some prefix in {"Get", "List", "Describe", "Generate", "Simulate"}
	startswith(name, prefix)
}

# No grant lets an agent destroy encryption keys (and so every piece of
# data they protect).
forbid contains sprintf("%s destroys KMS key material", [input.action.aws.action]) if {
	input.action.kind == "aws"
	lower(input.action.aws.action) in {"kms:schedulekeydeletion", "kms:deleteimportedkeymaterial", "kms:disablekey"}
}
