package aws

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// S3 (REST-XML with its own rules). The bucket is in the host name
// (virtual-hosted style) or in the first path segment (path style), the
// object key is the rest of the path, decoded once, exactly as S3 reads
// it, and the operation is the method plus at most one subresource in the
// query string. The action is the IAM action the operation needs, which
// is often not the operation's name (ListObjectsV2 needs s3:ListBucket).

type s3Service struct{}

// s3Action is the IAM action of an operation, and the one it needs
// instead when the request names an object version (?versionId=).
type s3Action struct{ action, version string }

// s3Level says what a request addresses: the service (no bucket), a
// bucket, or an object.
type s3Level int

const (
	s3ServiceLevel s3Level = iota
	s3BucketLevel
	s3ObjectLevel
)

type s3Route struct {
	level       s3Level
	method, sub string
}

// s3Actions are the operations jitproxy knows, by level, method and
// subresource ("" for none).
var s3Actions = map[s3Route]s3Action{
	{s3ServiceLevel, "GET", ""}: {action: "ListAllMyBuckets"},

	{s3BucketLevel, "GET", ""}:                       {action: "ListBucket"},
	{s3BucketLevel, "HEAD", ""}:                      {action: "ListBucket"},
	{s3BucketLevel, "PUT", ""}:                       {action: "CreateBucket"},
	{s3BucketLevel, "DELETE", ""}:                    {action: "DeleteBucket"},
	{s3BucketLevel, "GET", "versions"}:               {action: "ListBucketVersions"},
	{s3BucketLevel, "GET", "uploads"}:                {action: "ListBucketMultipartUploads"},
	{s3BucketLevel, "POST", "delete"}:                {action: "DeleteObject", version: "DeleteObjectVersion"},
	{s3BucketLevel, "GET", "location"}:               {action: "GetBucketLocation"},
	{s3BucketLevel, "GET", "acl"}:                    {action: "GetBucketAcl"},
	{s3BucketLevel, "PUT", "acl"}:                    {action: "PutBucketAcl"},
	{s3BucketLevel, "GET", "policy"}:                 {action: "GetBucketPolicy"},
	{s3BucketLevel, "PUT", "policy"}:                 {action: "PutBucketPolicy"},
	{s3BucketLevel, "DELETE", "policy"}:              {action: "DeleteBucketPolicy"},
	{s3BucketLevel, "GET", "policyStatus"}:           {action: "GetBucketPolicyStatus"},
	{s3BucketLevel, "GET", "tagging"}:                {action: "GetBucketTagging"},
	{s3BucketLevel, "PUT", "tagging"}:                {action: "PutBucketTagging"},
	{s3BucketLevel, "DELETE", "tagging"}:             {action: "PutBucketTagging"},
	{s3BucketLevel, "GET", "versioning"}:             {action: "GetBucketVersioning"},
	{s3BucketLevel, "PUT", "versioning"}:             {action: "PutBucketVersioning"},
	{s3BucketLevel, "GET", "lifecycle"}:              {action: "GetLifecycleConfiguration"},
	{s3BucketLevel, "PUT", "lifecycle"}:              {action: "PutLifecycleConfiguration"},
	{s3BucketLevel, "DELETE", "lifecycle"}:           {action: "PutLifecycleConfiguration"},
	{s3BucketLevel, "GET", "cors"}:                   {action: "GetBucketCORS"},
	{s3BucketLevel, "PUT", "cors"}:                   {action: "PutBucketCORS"},
	{s3BucketLevel, "DELETE", "cors"}:                {action: "PutBucketCORS"},
	{s3BucketLevel, "GET", "website"}:                {action: "GetBucketWebsite"},
	{s3BucketLevel, "PUT", "website"}:                {action: "PutBucketWebsite"},
	{s3BucketLevel, "DELETE", "website"}:             {action: "DeleteBucketWebsite"},
	{s3BucketLevel, "GET", "logging"}:                {action: "GetBucketLogging"},
	{s3BucketLevel, "PUT", "logging"}:                {action: "PutBucketLogging"},
	{s3BucketLevel, "GET", "notification"}:           {action: "GetBucketNotification"},
	{s3BucketLevel, "PUT", "notification"}:           {action: "PutBucketNotification"},
	{s3BucketLevel, "GET", "replication"}:            {action: "GetReplicationConfiguration"},
	{s3BucketLevel, "PUT", "replication"}:            {action: "PutReplicationConfiguration"},
	{s3BucketLevel, "DELETE", "replication"}:         {action: "PutReplicationConfiguration"},
	{s3BucketLevel, "GET", "encryption"}:             {action: "GetEncryptionConfiguration"},
	{s3BucketLevel, "PUT", "encryption"}:             {action: "PutEncryptionConfiguration"},
	{s3BucketLevel, "DELETE", "encryption"}:          {action: "PutEncryptionConfiguration"},
	{s3BucketLevel, "GET", "requestPayment"}:         {action: "GetBucketRequestPayment"},
	{s3BucketLevel, "PUT", "requestPayment"}:         {action: "PutBucketRequestPayment"},
	{s3BucketLevel, "GET", "accelerate"}:             {action: "GetAccelerateConfiguration"},
	{s3BucketLevel, "PUT", "accelerate"}:             {action: "PutAccelerateConfiguration"},
	{s3BucketLevel, "GET", "ownershipControls"}:      {action: "GetBucketOwnershipControls"},
	{s3BucketLevel, "PUT", "ownershipControls"}:      {action: "PutBucketOwnershipControls"},
	{s3BucketLevel, "DELETE", "ownershipControls"}:   {action: "PutBucketOwnershipControls"},
	{s3BucketLevel, "GET", "publicAccessBlock"}:      {action: "GetBucketPublicAccessBlock"},
	{s3BucketLevel, "PUT", "publicAccessBlock"}:      {action: "PutBucketPublicAccessBlock"},
	{s3BucketLevel, "DELETE", "publicAccessBlock"}:   {action: "PutBucketPublicAccessBlock"},
	{s3BucketLevel, "GET", "object-lock"}:            {action: "GetBucketObjectLockConfiguration"},
	{s3BucketLevel, "PUT", "object-lock"}:            {action: "PutBucketObjectLockConfiguration"},
	{s3BucketLevel, "GET", "analytics"}:              {action: "GetAnalyticsConfiguration"},
	{s3BucketLevel, "PUT", "analytics"}:              {action: "PutAnalyticsConfiguration"},
	{s3BucketLevel, "DELETE", "analytics"}:           {action: "PutAnalyticsConfiguration"},
	{s3BucketLevel, "GET", "inventory"}:              {action: "GetInventoryConfiguration"},
	{s3BucketLevel, "PUT", "inventory"}:              {action: "PutInventoryConfiguration"},
	{s3BucketLevel, "DELETE", "inventory"}:           {action: "PutInventoryConfiguration"},
	{s3BucketLevel, "GET", "metrics"}:                {action: "GetMetricsConfiguration"},
	{s3BucketLevel, "PUT", "metrics"}:                {action: "PutMetricsConfiguration"},
	{s3BucketLevel, "DELETE", "metrics"}:             {action: "PutMetricsConfiguration"},
	{s3BucketLevel, "GET", "intelligent-tiering"}:    {action: "GetIntelligentTieringConfiguration"},
	{s3BucketLevel, "PUT", "intelligent-tiering"}:    {action: "PutIntelligentTieringConfiguration"},
	{s3BucketLevel, "DELETE", "intelligent-tiering"}: {action: "PutIntelligentTieringConfiguration"},
	{s3ObjectLevel, "GET", ""}:                       {action: "GetObject", version: "GetObjectVersion"},
	{s3ObjectLevel, "HEAD", ""}:                      {action: "GetObject", version: "GetObjectVersion"},
	{s3ObjectLevel, "PUT", ""}:                       {action: "PutObject"},
	{s3ObjectLevel, "DELETE", ""}:                    {action: "DeleteObject", version: "DeleteObjectVersion"},
	{s3ObjectLevel, "POST", "uploads"}:               {action: "PutObject"},
	{s3ObjectLevel, "PUT", "uploadId"}:               {action: "PutObject"},
	{s3ObjectLevel, "POST", "uploadId"}:              {action: "PutObject"},
	{s3ObjectLevel, "DELETE", "uploadId"}:            {action: "AbortMultipartUpload"},
	{s3ObjectLevel, "GET", "uploadId"}:               {action: "ListMultipartUploadParts"},
	{s3ObjectLevel, "GET", "acl"}:                    {action: "GetObjectAcl", version: "GetObjectVersionAcl"},
	{s3ObjectLevel, "PUT", "acl"}:                    {action: "PutObjectAcl", version: "PutObjectVersionAcl"},
	{s3ObjectLevel, "GET", "tagging"}:                {action: "GetObjectTagging", version: "GetObjectVersionTagging"},
	{s3ObjectLevel, "PUT", "tagging"}:                {action: "PutObjectTagging", version: "PutObjectVersionTagging"},
	{s3ObjectLevel, "DELETE", "tagging"}:             {action: "DeleteObjectTagging", version: "DeleteObjectVersionTagging"},
	{s3ObjectLevel, "GET", "retention"}:              {action: "GetObjectRetention"},
	{s3ObjectLevel, "PUT", "retention"}:              {action: "PutObjectRetention"},
	{s3ObjectLevel, "GET", "legal-hold"}:             {action: "GetObjectLegalHold"},
	{s3ObjectLevel, "PUT", "legal-hold"}:             {action: "PutObjectLegalHold"},
	{s3ObjectLevel, "GET", "attributes"}:             {action: "GetObjectAttributes", version: "GetObjectVersionAttributes"},
	{s3ObjectLevel, "POST", "restore"}:               {action: "RestoreObject"},
	{s3ObjectLevel, "GET", "torrent"}:                {action: "GetObjectTorrent", version: "GetObjectVersionTorrent"},
	{s3ObjectLevel, "POST", "select"}:                {action: "GetObject"},
}

// s3Params are query parameters that do not change the operation.
var s3Params = map[string]bool{
	"prefix": true, "delimiter": true, "max-keys": true, "marker": true, "encoding-type": true,
	"list-type": true, "continuation-token": true, "fetch-owner": true, "start-after": true,
	"key-marker": true, "version-id-marker": true, "upload-id-marker": true, "max-uploads": true,
	"max-parts": true, "part-number-marker": true, "max-buckets": true, "bucket-region": true,
	"x-id": true, "id": true, "versionId": true, "partNumber": true, "select-type": true,
	"response-content-type": true, "response-content-language": true, "response-expires": true,
	"response-cache-control": true, "response-content-disposition": true, "response-content-encoding": true,
}

// s3ExtraPermissions are request headers with which an operation needs a
// second IAM action. One decision judges one action, so such requests are
// refused.
var s3ExtraPermissions = map[string][]struct{ header, action string }{
	"PutObject": {
		{"X-Amz-Acl", "PutObjectAcl"}, {"X-Amz-Grant-Read", "PutObjectAcl"},
		{"X-Amz-Grant-Read-Acp", "PutObjectAcl"}, {"X-Amz-Grant-Write-Acp", "PutObjectAcl"},
		{"X-Amz-Grant-Full-Control", "PutObjectAcl"}, {"X-Amz-Tagging", "PutObjectTagging"},
		{"X-Amz-Object-Lock-Mode", "PutObjectRetention"}, {"X-Amz-Object-Lock-Retain-Until-Date", "PutObjectRetention"},
		{"X-Amz-Object-Lock-Legal-Hold", "PutObjectLegalHold"},
	},
	"CreateBucket": {
		{"X-Amz-Acl", "PutBucketAcl"}, {"X-Amz-Grant-Read", "PutBucketAcl"}, {"X-Amz-Grant-Write", "PutBucketAcl"},
		{"X-Amz-Grant-Read-Acp", "PutBucketAcl"}, {"X-Amz-Grant-Write-Acp", "PutBucketAcl"},
		{"X-Amz-Grant-Full-Control", "PutBucketAcl"},
		{"X-Amz-Bucket-Object-Lock-Enabled", "PutBucketObjectLockConfiguration"},
		{"X-Amz-Object-Ownership", "PutBucketOwnershipControls"},
	},
	"DeleteObject":        {{"X-Amz-Bypass-Governance-Retention", "BypassGovernanceRetention"}},
	"DeleteObjectVersion": {{"X-Amz-Bypass-Governance-Retention", "BypassGovernanceRetention"}},
	"PutObjectRetention":  {{"X-Amz-Bypass-Governance-Retention", "BypassGovernanceRetention"}},
}

var (
	// s3HostBucket is a bucket name that can be a DNS label sequence.
	s3HostBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// s3PathBucket also admits the legacy names of us-east-1.
	s3PathBucket = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$`)
)

// maxS3Key is S3's limit on the length of a key, in bytes.
const maxS3Key = 1024

func (s3Service) classify(c *call) (operation, error) {
	if err := singleValued(c.query); err != nil {
		return operation{}, err
	}
	bucket, key, err := s3Target(c)
	if err != nil {
		return operation{}, err
	}
	level := s3ServiceLevel
	switch {
	case key != "":
		level = s3ObjectLevel
	case bucket != "":
		level = s3BucketLevel
	}
	var subs []string
	for k := range c.query {
		switch {
		case s3Params[k]:
		case isS3Subresource(k):
			subs = append(subs, k)
		default:
			return operation{}, fmt.Errorf("jitproxy does not know the S3 query parameter %q, so it refuses the request", k)
		}
	}
	slices.Sort(subs)
	if len(subs) > 1 {
		return operation{}, fmt.Errorf("the request names several S3 subresources (%s); jitproxy cannot tell which operation it is", strings.Join(subs, ", "))
	}
	sub := ""
	if len(subs) == 1 {
		sub = subs[0]
	}
	_, hasPart := c.query["partNumber"]
	if c.r.Method == "PUT" && (sub == "uploadId") != hasPart {
		return operation{}, errors.New("an S3 UploadPart request needs both partNumber and uploadId")
	}
	if sub == "select" && c.query.Get("select-type") != "2" {
		return operation{}, errors.New("an S3 select request needs select-type=2")
	}
	act, ok := s3Actions[s3Route{level, c.r.Method, sub}]
	if !ok {
		what := map[s3Level]string{s3ServiceLevel: "the service", s3BucketLevel: "a bucket", s3ObjectLevel: "an object"}[level]
		if sub != "" {
			return operation{}, fmt.Errorf("jitproxy does not know the S3 operation %s ?%s on %s, so it refuses it", c.r.Method, sub, what)
		}
		return operation{}, fmt.Errorf("jitproxy does not know the S3 operation %s on %s, so it refuses it", c.r.Method, what)
	}
	o := operation{action: act.action}
	if _, v := c.query["versionId"]; v && act.version != "" {
		o.action = act.version
	}
	if len(c.r.Header.Values("X-Amz-Copy-Source")) > 0 {
		return operation{}, errors.New("S3 copies (x-amz-copy-source) are refused: a copy needs s3:GetObject on the source and s3:PutObject on the destination, and jitproxy judges one action per request; download and upload instead")
	}
	for _, x := range s3ExtraPermissions[o.action] {
		if len(c.r.Header.Values(x.header)) > 0 {
			return operation{}, fmt.Errorf("the request sets %s, which needs s3:%s besides s3:%s; jitproxy judges one action per request, so send it without that header", x.header, x.action, o.action)
		}
	}
	arn := "arn:" + c.partition + ":s3:::"
	switch {
	case level == s3BucketLevel && sub == "delete":
		return deleteObjects(c, bucket, o)
	case level == s3BucketLevel:
		o.add(arn+bucket, "")
	case level == s3ObjectLevel:
		o.add(arn+bucket+"/"+key, "")
	}
	return o, nil
}

// isS3Subresource reports whether k is a subresource jitproxy knows.
func isS3Subresource(k string) bool {
	for r := range s3Actions {
		if r.sub == k {
			return true
		}
	}
	return false
}

// s3Target returns the bucket and the key the request addresses ("" for
// none). The key is the path after the bucket, percent-decoded once, as S3
// reads it; it may contain anything but '.' and '..' segments, which an
// intermediary could remove.
func s3Target(c *call) (bucket, key string, err error) {
	path := c.r.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		return "", "", errors.New("the path must be absolute")
	}
	rawKey := path[1:]
	switch {
	case c.ep.bucket != "":
		bucket = c.ep.bucket
		if !s3HostBucket.MatchString(bucket) || strings.Contains(bucket, "..") {
			return "", "", fmt.Errorf("%q is not a valid S3 bucket name", bucket)
		}
	case c.ep.service == "s3" || c.ep.literal:
		// Path style: /BUCKET[/KEY]. Bucket names have no characters that
		// need escaping, so an escape there is refused.
		bucket, rawKey, _ = strings.Cut(rawKey, "/")
		if bucket != "" && (strings.Contains(bucket, "%") || !s3PathBucket.MatchString(bucket)) {
			return "", "", fmt.Errorf("%q is not a valid S3 bucket name", bucket)
		}
		if bucket == "" && rawKey != "" {
			return "", "", errors.New("the path must not start with an empty segment")
		}
	default:
		return "", "", fmt.Errorf("jitproxy cannot tell which S3 bucket a request to host %q is for (it knows the s3[-fips][.dualstack].REGION.amazonaws.com names, with the bucket in the host or the path)", c.ep.host)
	}
	key, err = url.PathUnescape(rawKey)
	if err != nil || !utf8.ValidString(key) {
		return "", "", errors.New("the object key in the path is not validly escaped UTF-8")
	}
	if len(key) > maxS3Key {
		return "", "", fmt.Errorf("the object key is longer than S3's limit of %d bytes", maxS3Key)
	}
	if err := checkKeySegments(key); err != nil {
		return "", "", err
	}
	return bucket, key, nil
}

// checkKeySegments refuses keys with '.' or '..' segments.
func checkKeySegments(key string) error {
	for _, s := range strings.Split(key, "/") {
		if s == "." || s == ".." {
			return errors.New("S3 object keys with '.' or '..' path segments are refused: jitproxy cannot be sure every HTTP layer leaves them alone")
		}
	}
	return nil
}

// singleValued refuses a query parameter given more than once.
func singleValued(q url.Values) error {
	for k, v := range q {
		if len(v) > 1 {
			return fmt.Errorf("query parameter %q is given more than once", k)
		}
	}
	return nil
}
