package aws

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// actionName is the shape of every classified action.
var actionName = regexp.MustCompile(`^[a-z0-9-]+:[A-Z][A-Za-z0-9]*$`)

// FuzzClassify feeds raw HTTP requests to Classify: it must not panic, and
// what it classifies must be well formed: a service, an action of that
// service, a region, and ARNs of the request's partition whose account
// field is the action's account, "*" or (S3, Route 53) empty.
func FuzzClassify(f *testing.F) {
	for _, tc := range sdkCases() {
		region := tc.region
		if region == "" {
			region = "us-west-2"
		}
		f.Add(sdkRequest(f, region, tc.call))
	}
	for _, tc := range rawCases() {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			return
		}
		calls := 0
		a, err := Classify(r, func() ([]byte, error) {
			calls++
			return body, nil
		})
		if calls > 1 {
			t.Errorf("Classify read the body %d times", calls)
		}
		if err != nil {
			for _, s := range r.Header.Values("Authorization") {
				if len(s) > 16 && strings.Contains(err.Error(), s) {
					t.Errorf("error %q quotes the Authorization header", err)
				}
			}
			return
		}
		if a.Service == "" || !actionName.MatchString(a.Action) || !strings.HasPrefix(a.Action, a.Service+":") {
			t.Fatalf("Classify returned service %q and action %q", a.Service, a.Action)
		}
		partition, err := partitionOf(a.Region)
		if err != nil {
			t.Fatalf("Classify returned region %q: %v", a.Region, err)
		}
		if a.Account != "" && !accountPattern.MatchString(a.Account) {
			t.Fatalf("Classify returned account %q", a.Account)
		}
		for _, res := range a.Resources {
			p, err := arn.Parse(res)
			if err != nil {
				t.Fatalf("resource %q does not parse: %v", res, err)
			}
			if p.Partition != partition {
				t.Errorf("resource %q is not in partition %s of region %s", res, partition, a.Region)
			}
			switch {
			case p.Service == "s3" || p.Service == "route53":
				if p.Region != "" || p.AccountID != "" {
					t.Errorf("resource %q has a region or account", res)
				}
			case p.Service == "iam":
			case p.Region != a.Region:
				t.Errorf("resource %q is not in region %s", res, a.Region)
			}
			if a.Account != "" && p.AccountID != "" && p.AccountID != a.Account {
				t.Errorf("resource %q is not in account %s", res, a.Account)
			}
			if a.Account == "" && p.AccountID != "" && p.AccountID != unknownAccount && len(a.Resources) == 1 {
				t.Errorf("resource %q names an account but Account is empty", res)
			}
		}
	})
}
