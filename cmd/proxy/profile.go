package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/profile"
)

var (
	_ intercept.ProfileRecorder = (*profile.Recorder)(nil)
	_ jit.ProfileReader         = profileReader{}
)

// profileReader serves the admin API the profiles of learning grants: a
// learning grant not used yet has an empty profile.
type profileReader struct{ r *profile.Recorder }

func (p profileReader) ReadProfile(ctx context.Context, grantID string) (any, error) {
	pr, err := p.r.Read(ctx, grantID)
	if errors.Is(err, profile.ErrNotFound) {
		return &profile.Profile{Grant: grantID, Uses: []profile.Use{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jit.ErrUnavailable, err)
	}
	return pr, nil
}

// profileAnswer is GET /v1/profiles/{id} as the CLI reads it.
type profileAnswer struct {
	Grant   *jit.Grant       `json:"grant"`
	Profile *profile.Profile `json:"profile"`
}

func getProfile(ctx context.Context, c *client, id string) (*profileAnswer, error) {
	var a profileAnswer
	if err := c.do(ctx, "GET", "/v1/profiles/"+url.PathEscape(id), nil, &a); err != nil {
		return nil, err
	}
	if a.Grant == nil || a.Profile == nil {
		return nil, fmt.Errorf("profile of grant %s: incomplete answer", id)
	}
	return &a, nil
}

// profileSource is what an export needs of the learning grant g.
func profileSource(g *jit.Grant) profile.Source {
	return profile.Source{
		Grant: g.ID, Policy: g.Policy, Target: g.Target, Namespace: g.Namespace, User: g.User, Duration: g.Duration,
		ApprovalsRequired: g.RequiredApprovals, ApproverUsers: g.Approvers.Users, ApproverGroups: g.Approvers.Groups,
		Provider: g.Credential.Provider, Options: g.Credential.Options,
	}
}

func printProfile(w io.Writer, output string, a *profileAnswer) error {
	if output == "json" {
		return printJSON(w, a)
	}
	g := a.Grant
	fmt.Fprintf(w, "profile of learning grant %s (%s, %s, %s)\n", esc(g.ID), esc(g.Policy), esc(g.User), esc(string(g.State)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tFIRST\tLAST\tACTION")
	for _, u := range a.Profile.Uses {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", u.Count, u.First.Format(time.RFC3339), u.Last.Format(time.RFC3339), esc(describeUse(u)))
	}
	return tw.Flush()
}

// describeUse says what u was, for people.
func describeUse(u profile.Use) string {
	if u.Kind == "aws" {
		s := u.Action
		if u.Region != "" {
			s += " in " + u.Region
		}
		if len(u.Resources) > 0 {
			s += " on " + strings.Join(u.Resources, ", ")
		}
		return s
	}
	if u.Path != "" {
		return u.Verb + " " + u.Path
	}
	res := u.Resource
	if u.APIGroup != "" {
		res += "." + u.APIGroup
	}
	if u.Subresource != "" {
		res += "/" + u.Subresource
	}
	s := u.Verb + " " + res
	if u.Name != "" {
		s += " " + strconv.Quote(u.Name)
	}
	if u.Namespace != "" {
		s += " in namespace " + u.Namespace
	}
	return s
}
