package aws

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// classifier reads one service's protocol.
type classifier interface {
	classify(c *call) (operation, error)
}

// services are the services Classify knows, by signing name, which for
// each of them is also the IAM prefix. A service missing here is refused.
var services = map[string]classifier{
	"s3": s3Service{},

	// Query protocol.
	"sts": &rpcService{query: true, resources: stsResources},
	"iam": &rpcService{query: true},
	"ec2": &rpcService{query: true},
	"sns": &rpcService{query: true},

	// Query protocol (older SDKs) and JSON protocol (current ones).
	"sqs": &rpcService{query: true, targetPrefix: "AmazonSQS", resources: sqsResources, needsBody: sqsNeedsBody, queuePath: true},

	// JSON protocol.
	"dynamodb": &rpcService{
		targetPrefix: "DynamoDB_20120810",
		resources:    dynamodbResources,
		needsBody:    func(op string) bool { return dynamodbTableOps[op] || dynamodbMultiTableOps[op] },
	},
	"logs":           &rpcService{targetPrefix: "Logs_20140328"},
	"kms":            &rpcService{targetPrefix: "TrentService"},
	"secretsmanager": &rpcService{targetPrefix: "secretsmanager"},
	"ssm":            &rpcService{targetPrefix: "AmazonSSM"},
	"kinesis":        &rpcService{targetPrefix: "Kinesis_20131202"},
	"states":         &rpcService{targetPrefix: "AWSStepFunctions"},
	"events":         &rpcService{targetPrefix: "AWSEvents"},
	"ecr":            &rpcService{targetPrefix: "AmazonEC2ContainerRegistry_V20150921"},
	"ecs":            &rpcService{targetPrefix: "AmazonEC2ContainerServiceV20141113"},

	// REST protocols.
	"lambda":  lambdaRoutes,
	"route53": route53Routes,
}

// accountPattern is the shape of an AWS account ID.
var accountPattern = regexp.MustCompile(`^[0-9]{12}$`)

// unknownAccount is the account field of an ARN whose account the request
// does not name.
const unknownAccount = "*"

// parseARN parses an ARN the request names, which must be of the request's
// partition, of service, and (when regional) of the request's region.
func parseARN(c *call, s, service string, regional bool) (arn.ARN, error) {
	a, err := arn.Parse(s)
	if err != nil || a.Partition != c.partition || a.Service != service || a.Resource == "" {
		return arn.ARN{}, fmt.Errorf("%q is not an ARN of %s in partition %s", s, service, c.partition)
	}
	if a.AccountID != "" && !accountPattern.MatchString(a.AccountID) {
		return arn.ARN{}, fmt.Errorf("%q does not name a valid account", s)
	}
	if regional && a.Region != c.region {
		return arn.ARN{}, fmt.Errorf("%q is in region %q, not in %q where the request is sent", s, a.Region, c.region)
	}
	return a, nil
}

// STS: the role an AssumeRole* call assumes.

var roleName = regexp.MustCompile(`^role/[\w+=,.@/-]{1,512}$`)

func stsResources(c *call, op string, p params, o *operation) error {
	switch op {
	case "AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity":
	default:
		return nil
	}
	s, err := p.str("RoleArn")
	if err != nil || s == "" {
		return errors.New("RoleArn is required")
	}
	a, err := parseARN(c, s, "iam", false)
	if err != nil {
		return fmt.Errorf("RoleArn: %w", err)
	}
	if a.Region != "" || a.AccountID == "" || !roleName.MatchString(a.Resource) {
		return fmt.Errorf("RoleArn %q is not an IAM role ARN", s)
	}
	o.add(a.String(), a.AccountID)
	return nil
}

// SQS: the queue, named by QueueUrl (or, to create or look it up, by
// QueueName).

var (
	sqsQueueURLOps = map[string]bool{
		"AddPermission": true, "ChangeMessageVisibility": true, "ChangeMessageVisibilityBatch": true,
		"DeleteMessage": true, "DeleteMessageBatch": true, "DeleteQueue": true, "GetQueueAttributes": true,
		"ListDeadLetterSourceQueues": true, "ListQueueTags": true, "PurgeQueue": true, "ReceiveMessage": true,
		"RemovePermission": true, "SendMessage": true, "SendMessageBatch": true, "SetQueueAttributes": true,
		"TagQueue": true, "UntagQueue": true,
	}
	sqsQueueNameOps = map[string]bool{"CreateQueue": true, "GetQueueUrl": true}
	sqsQueueName    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$`)
)

func sqsNeedsBody(op string) bool { return sqsQueueURLOps[op] || sqsQueueNameOps[op] }

func sqsResources(c *call, op string, p params, o *operation) error {
	switch {
	case sqsQueueURLOps[op]:
		u, err := p.str("QueueUrl")
		if err != nil || u == "" {
			return errors.New("QueueUrl is required")
		}
		account, name, err := parseQueueURL(c, u)
		if err != nil {
			return err
		}
		o.add(arn.ARN{Partition: c.partition, Service: "sqs", Region: c.region, AccountID: account, Resource: name}.String(), account)
	case sqsQueueNameOps[op]:
		name, err := p.str("QueueName")
		if err != nil || !sqsQueueName.MatchString(name) {
			return errors.New("QueueName is missing or not a valid queue name")
		}
		account := unknownAccount
		if op == "GetQueueUrl" {
			if owner, err := p.str("QueueOwnerAWSAccountId"); err != nil {
				return err
			} else if owner != "" {
				if !accountPattern.MatchString(owner) {
					return errors.New("QueueOwnerAWSAccountId is not an account ID")
				}
				account = owner
			}
		}
		o.add(arn.ARN{Partition: c.partition, Service: "sqs", Region: c.region, AccountID: account, Resource: name}.String(), account)
	}
	return nil
}

// parseQueueURL reads the account and queue name of a queue URL
// (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE). A URL whose host is
// an SQS endpoint of another region is refused.
func parseQueueURL(c *call, s string) (account, name string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", "", fmt.Errorf("QueueUrl %q is not a queue URL", s)
	}
	parts := strings.Split(u.EscapedPath(), "/")
	if len(parts) != 3 || parts[0] != "" || !accountPattern.MatchString(parts[1]) || !sqsQueueName.MatchString(parts[2]) {
		return "", "", fmt.Errorf("QueueUrl %q is not of the form https://HOST/ACCOUNT/QUEUE", s)
	}
	if ep := parseHost(strings.ToLower(u.Hostname())); ep.service == "sqs" && ep.region != c.region {
		return "", "", fmt.Errorf("QueueUrl %q is in region %q, not in %q where the request is sent", s, ep.region, c.region)
	}
	return parts[1], parts[2], nil
}

// DynamoDB: the tables (and indexes) an operation reads or writes.

var (
	dynamodbTableOps = map[string]bool{
		"GetItem": true, "PutItem": true, "UpdateItem": true, "DeleteItem": true, "Query": true, "Scan": true,
		"CreateTable": true, "DeleteTable": true, "DescribeTable": true, "UpdateTable": true,
		"DescribeTimeToLive": true, "UpdateTimeToLive": true, "CreateBackup": true,
		"DescribeContinuousBackups": true, "UpdateContinuousBackups": true,
		"DescribeContributorInsights": true, "UpdateContributorInsights": true,
		"DescribeKinesisStreamingDestination": true, "EnableKinesisStreamingDestination": true,
		"DisableKinesisStreamingDestination": true, "UpdateKinesisStreamingDestination": true,
		"DescribeTableReplicaAutoScaling": true, "UpdateTableReplicaAutoScaling": true,
	}
	// dynamodbIndexOps take an IndexName, which IAM sees as the resource
	// table/NAME/index/INDEX.
	dynamodbIndexOps      = map[string]bool{"Query": true, "Scan": true, "DescribeContributorInsights": true, "UpdateContributorInsights": true}
	dynamodbMultiTableOps = map[string]bool{"BatchGetItem": true, "BatchWriteItem": true, "TransactGetItems": true, "TransactWriteItems": true}
	dynamodbTableName     = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	// dynamodbTransactWrite maps the members of a TransactWriteItems item
	// to the IAM action each needs.
	dynamodbTransactWrite = map[string]string{"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
)

func dynamodbResources(c *call, op string, p params, o *operation) error {
	jp, _ := p.(jsonParams)
	switch {
	case dynamodbTableOps[op]:
		t, err := jp.str("TableName")
		if err != nil {
			return err
		}
		index := ""
		if dynamodbIndexOps[op] {
			if index, err = jp.str("IndexName"); err != nil {
				return err
			}
		}
		return addTable(c, o, t, index)
	case op == "BatchGetItem" || op == "BatchWriteItem":
		items, err := jp.obj("RequestItems")
		if err != nil || len(items) == 0 {
			return errors.New("RequestItems is missing or not an object")
		}
		for _, t := range slices.Sorted(maps.Keys(items)) {
			if err := addTable(c, o, t, ""); err != nil {
				return err
			}
		}
	case op == "TransactGetItems" || op == "TransactWriteItems":
		items, err := jp.list("TransactItems")
		if err != nil || len(items) == 0 {
			return errors.New("TransactItems is missing or not a list")
		}
		// IAM authorizes each item with the action of its kind; one
		// decision can judge only one action.
		action := ""
		for _, item := range items {
			if len(item) != 1 {
				return errors.New("each of TransactItems must have exactly one member")
			}
			kind := slices.Collect(maps.Keys(item))[0]
			want := "GetItem"
			if op == "TransactWriteItems" {
				want = dynamodbTransactWrite[kind]
			} else if kind != "Get" {
				want = ""
			}
			if want == "" {
				return fmt.Errorf("TransactItems has an unknown member %q", kind)
			}
			if action != "" && action != want {
				return fmt.Errorf("the items need both dynamodb:%s and dynamodb:%s, which jitproxy cannot judge in one decision; send them as separate requests", action, want)
			}
			action = want
			inner, err := item.obj(kind)
			if err != nil {
				return err
			}
			t, err := inner.str("TableName")
			if err != nil {
				return err
			}
			if err := addTable(c, o, t, ""); err != nil {
				return err
			}
		}
		o.action = action
	}
	return nil
}

// addTable adds the ARN of table t (a name or an ARN), or of its index.
func addTable(c *call, o *operation, t, index string) error {
	account, name := unknownAccount, t
	if strings.HasPrefix(t, "arn:") {
		a, err := parseARN(c, t, "dynamodb", true)
		if err != nil {
			return fmt.Errorf("TableName: %w", err)
		}
		n, ok := strings.CutPrefix(a.Resource, "table/")
		if !ok || a.AccountID == "" {
			return fmt.Errorf("TableName %q is not a table ARN", t)
		}
		account, name = a.AccountID, n
	}
	if !dynamodbTableName.MatchString(name) {
		return fmt.Errorf("TableName %q is missing or not a valid table name", t)
	}
	res := "table/" + name
	if index != "" {
		if !dynamodbTableName.MatchString(index) {
			return fmt.Errorf("IndexName %q is not a valid index name", index)
		}
		res += "/index/" + index
	}
	o.add(arn.ARN{Partition: c.partition, Service: "dynamodb", Region: c.region, AccountID: account, Resource: res}.String(), account)
	return nil
}
