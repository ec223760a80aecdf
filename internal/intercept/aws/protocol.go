package aws

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

// Config configures the AWS protocol of one target.
type Config struct {
	// Region, if set, is the region every request is signed for, whatever
	// the agent's request says: for an upstream that serves one region
	// under its own name (MinIO, a VPC endpoint). Empty: the request's own.
	Region string
	// MaxSignedBody caps a body jitproxy must read to hash for the
	// signature, when the agent's request does not carry its hash in
	// X-Amz-Content-Sha256; default 64 MiB. Larger ones are refused.
	MaxSignedBody int64
	// Now is the signing clock; default time.Now.
	Now func() time.Time
}

// Protocol implements intercept.Protocol for AWS APIs: it classifies
// requests as IAM actions, forwards an allow-list of headers and signs
// each request anew with the grant's minted credential (SigV4, with the
// AWS SDK's signer), so that the agent's placeholder keys and signature
// never reach AWS. The zero value is not usable; call New.
type Protocol struct {
	cfg    Config
	signer *v4.Signer
}

// New returns the AWS protocol.
func New(cfg Config) *Protocol {
	if cfg.MaxSignedBody <= 0 {
		cfg.MaxSignedBody = 64 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Protocol{cfg: cfg, signer: v4.NewSigner()}
}

// Kind returns access.KindAWS.
func (*Protocol) Kind() string { return access.KindAWS }

// Classify reads the IAM action of r; see the package function Classify.
func (p *Protocol) Classify(r *http.Request, body func() ([]byte, error)) (access.Action, error) {
	a, err := Classify(r, body)
	if err != nil {
		return access.Action{}, err
	}
	if p.cfg.Region != "" {
		a.Region = p.cfg.Region
	}
	return access.Action{Method: r.Method, Path: r.URL.Path, AWS: &a}, nil
}

// NeedsBody is false: policies judge AWS requests by their action and
// resources, not their bodies.
func (*Protocol) NeedsBody(access.Action) bool { return false }

// DecodeBody returns nil.
func (*Protocol) DecodeBody(access.Action, string, []byte) (any, error) { return nil, nil }

// Describe names an action the way IAM does: "s3:GetObject on
// arn:aws:s3:::reports/q3.csv in us-east-1".
func (*Protocol) Describe(action access.Action) string {
	a := action.AWS
	if a == nil {
		return action.Method + " " + action.Path
	}
	s := a.Action
	if len(a.Resources) > 0 {
		s += " on " + strings.Join(a.Resources, ", ")
	}
	if a.Region != "" {
		s += " in " + a.Region
	}
	return s
}

// forwardedHeaders are the request headers, besides the x-amz- ones that
// allowedAmzHeader lets through, that reach AWS: the standard headers AWS
// APIs read as request parameters (S3's object metadata and conditions),
// content negotiation and the SDKs' own. The signature jitproxy makes
// covers each of them.
var forwardedHeaders = map[string]bool{
	"Accept":                true,
	"Accept-Encoding":       true,
	"Cache-Control":         true,
	"Content-Disposition":   true,
	"Content-Encoding":      true,
	"Content-Language":      true,
	"Content-Md5":           true,
	"Content-Type":          true,
	"Expires":               true,
	"If-Match":              true,
	"If-Modified-Since":     true,
	"If-None-Match":         true,
	"If-Unmodified-Since":   true,
	"Range":                 true,
	"User-Agent":            true,
	"Amz-Sdk-Invocation-Id": true,
	"Amz-Sdk-Request":       true,
	"Te":                    true, // "trailers", set by httputil.ReverseProxy
}

// strippedAmzHeaders are the x-amz- headers that carry or make the agent's
// credential and signature; jitproxy's signature sets its own.
var strippedAmzHeaders = map[string]bool{
	"X-Amz-Security-Token": true,
	"X-Amz-Date":           true,
	"X-Amz-Credential":     true,
	"X-Amz-Signature":      true,
	"X-Amz-Signedheaders":  true,
	"X-Amz-Algorithm":      true,
	"X-Amz-Expires":        true,
	"X-Amz-Content-Sha256": false, // kept: the payload's hash, which jitproxy signs
}

// allowedAmzHeader: every x-amz- header is a request parameter of an AWS
// API (S3 alone has dozens, and new ones come), except the ones that carry
// the agent's credential or signature.
func allowedAmzHeader(k string) bool {
	return strings.HasPrefix(k, "X-Amz-") && !strippedAmzHeaders[k]
}

// ForwardedHeaders returns the names of the headers (besides x-amz- ones
// other than the credential's) that may reach the upstream, for tests and
// documentation.
func ForwardedHeaders() []string {
	out := make([]string, 0, len(forwardedHeaders))
	for k := range forwardedHeaders {
		out = append(out, k)
	}
	return out
}

// OutboundHeader keeps the allowed headers of h; Authorization, the
// session token and the agent's signing headers are dropped.
func (*Protocol) OutboundHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		if forwardedHeaders[ck] || allowedAmzHeader(ck) {
			out[ck] = vs
		}
	}
	return out
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Payload hash values an agent's request may carry that jitproxy signs as
// they are: the body is sent unchanged and AWS checks it against them.
const (
	unsignedPayload       = "UNSIGNED-PAYLOAD"
	streamingUnsigned     = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	streamingSignedPrefix = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingECDSAPrefix  = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
	emptyPayloadSHA256    = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// errSignedChunks refuses uploads whose chunks the agent signed with its
// placeholder key: each chunk's signature chains from the request's, so
// they would need signing anew chunk by chunk.
var errSignedChunks = errors.New("uploads with signed chunks (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD) cannot be re-signed by jitproxy; configure the client to send unsigned payloads over HTTPS (the AWS CLI and current SDKs do)")

// Authorize signs out with the minted AWS credential (SigV4, the AWS
// SDK's signer) for the upstream's host, the action's service and region.
// The payload hash is the one the agent's request carried in
// X-Amz-Content-Sha256 (a SHA-256, UNSIGNED-PAYLOAD or an unsigned
// streaming upload with trailing checksums), which AWS checks against the
// body; without one, jitproxy reads the body (at most MaxSignedBody) and
// hashes it.
func (p *Protocol) Authorize(out *http.Request, action access.Action, c broker.Credential) error {
	a := action.AWS
	if a == nil || a.Service == "" {
		return errors.New("the request was not classified as an AWS request")
	}
	if c.AccessKeyID.IsZero() || c.SecretAccessKey.IsZero() {
		return errors.New("the credential is not an AWS key")
	}
	hash, err := p.payloadHash(out)
	if err != nil {
		return err
	}
	region := a.Region
	if region == "" {
		region = "us-east-1"
	}
	creds := awssdk.Credentials{
		AccessKeyID:     c.AccessKeyID.Reveal(),
		SecretAccessKey: c.SecretAccessKey.Reveal(),
		SessionToken:    c.SessionToken.Reveal(),
	}
	return p.signer.SignHTTP(out.Context(), creds, out, hash, a.Service, region, p.cfg.Now().UTC(), func(o *v4.SignerOptions) {
		// S3 takes the path as sent; every other service escapes it once more.
		o.DisableURIPathEscaping = a.Service == "s3"
	})
}

func (p *Protocol) payloadHash(out *http.Request) (string, error) {
	h := out.Header.Get("X-Amz-Content-Sha256")
	switch {
	case sha256Hex.MatchString(h), h == unsignedPayload, h == streamingUnsigned:
		return h, nil
	case strings.HasPrefix(h, streamingSignedPrefix), strings.HasPrefix(h, streamingECDSAPrefix):
		return "", errSignedChunks
	case h != "":
		return "", fmt.Errorf("x-amz-content-sha256 is neither a SHA-256 nor a payload type jitproxy can sign")
	}
	if out.Body == nil || out.Body == http.NoBody || out.ContentLength == 0 {
		return emptyPayloadSHA256, nil
	}
	raw, err := io.ReadAll(io.LimitReader(out.Body, p.cfg.MaxSignedBody+1))
	out.Body.Close()
	if err != nil {
		return "", errors.New("cannot read the request body to sign it")
	}
	if int64(len(raw)) > p.cfg.MaxSignedBody {
		return "", fmt.Errorf("a request body over %d bytes must carry its SHA-256 in x-amz-content-sha256 (or UNSIGNED-PAYLOAD for S3)", p.cfg.MaxSignedBody)
	}
	out.Body = io.NopCloser(bytes.NewReader(raw))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	out.ContentLength = int64(len(raw))
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// RewriteForUpstream moves the bucket of a virtual-hosted S3 request
// (bucket.s3.REGION.amazonaws.com/KEY), told by host, the host the agent
// addressed, into the path (/BUCKET/KEY): a fixed upstream serves every
// bucket under its own host name. Requests of other services, and S3
// requests in path style, are left alone.
func (*Protocol) RewriteForUpstream(out *http.Request, host string) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	bucket := parseHost(strings.ToLower(host)).bucket
	if bucket == "" {
		return
	}
	if out.URL.Path == "/" || out.URL.Path == "" {
		// The bucket itself: /bucket, as path-style clients write it.
		out.URL.Path, out.URL.RawPath = "/"+bucket, ""
		return
	}
	out.URL.Path = "/" + bucket + out.URL.Path
	if out.URL.RawPath != "" {
		out.URL.RawPath = "/" + bucket + out.URL.RawPath
	}
}

// WriteError answers in the error format of the request's AWS protocol,
// so that the AWS CLI and SDKs show the message: S3's <Error>, the JSON
// protocols' __type, or the query and REST-XML protocols' <ErrorResponse>.
func (*Protocol) WriteError(w http.ResponseWriter, r *http.Request, status int, message string) {
	code := errorCode(status)
	requestID := w.Header().Get("X-Jitproxy-Request-Id")
	w.Header().Set("X-Amzn-RequestId", requestID)
	w.Header().Set("X-Amz-Request-Id", requestID)
	switch errorFamily(r) {
	case familyJSON:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": message, "Message": message})
	case familyS3:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		writeXML(w, s3Error{Code: code, Message: message, RequestID: requestID})
	default:
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		writeXML(w, errorResponse{Error: queryError{Type: kind, Code: code, Message: message}, RequestID: requestID})
	}
}

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	RequestID string `xml:"RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Error     queryError
	RequestID string `xml:"RequestId"`
}

type queryError struct {
	Type    string
	Code    string
	Message string
}

func writeXML(w io.Writer, v any) {
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(v)
}

func errorCode(status int) string {
	switch status {
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusUnauthorized:
		return "InvalidClientTokenId"
	case http.StatusRequestEntityTooLarge:
		return "EntityTooLarge"
	case http.StatusRequestTimeout:
		return "RequestTimeout"
	case http.StatusTooManyRequests:
		return "Throttling"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "ServiceUnavailable"
	case http.StatusInternalServerError:
		return "InternalFailure"
	}
	if status >= 400 && status < 500 {
		return "InvalidRequest"
	}
	return "InternalFailure"
}

type family int

const (
	familyQuery family = iota // query and REST-XML: <ErrorResponse>
	familyJSON                // JSON and REST-JSON: __type
	familyS3                  // S3: <Error>
)

// restJSONServices are the signing names of services with the REST-JSON
// protocol that jitproxy knows.
var restJSONServices = map[string]bool{"lambda": true}

// errorFamily tells the error format a client expects from the request
// alone, before (or without) classification.
func errorFamily(r *http.Request) family {
	if r == nil {
		return familyQuery
	}
	service := signingService(r)
	switch {
	case service == "s3":
		return familyS3
	case r.Header.Get("X-Amz-Target") != "", strings.Contains(r.Header.Get("Content-Type"), "amz-json"), restJSONServices[service]:
		return familyJSON
	}
	return familyQuery
}

// signingService is the service of the request's credential scope, or
// else of its host ("s3" for bucket.s3.us-east-1.amazonaws.com), read as
// Classify reads them; "" when neither names one.
func signingService(r *http.Request) string {
	if service, _, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		return service
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return parseHost(strings.ToLower(host)).service
}
