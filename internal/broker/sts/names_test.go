package sts

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestNames(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "session name: grant and user", got: roleSessionName("g-abcdefghijklmnop", "alice@example.com"), want: "g-abcdefghijklmnop.alice@example.com"},
		{name: "session name: no user", got: roleSessionName("g-abc", ""), want: "g-abc"},
		{name: "session name: nothing", got: roleSessionName("", ""), want: "jitproxy"},
		{name: "session name: space replaced, digest added", got: roleSessionName("g-1", "Alice Smith"), want: "g-1.Alice_Smith.6af3e295"},
		{name: "session name: cut to 64", got: roleSessionName("g-1", long), want: "g-1." + strings.Repeat("a", 51) + ".3ad63e17"},
		{name: "source identity: as it is", got: sourceIdentity("alice"), want: "alice"},
		{name: "source identity: too short", got: sourceIdentity("a"), want: "a.ca978112"},
		{name: "source identity: aws: prefix", got: sourceIdentity("aws:root"), want: "aws_root.931d7d02"},
		{name: "source identity: non-ASCII", got: sourceIdentity("élise"), want: "_lise.d0f9b0b2"},
		{name: "source identity: cut to 64", got: sourceIdentity(long), want: strings.Repeat("a", 55) + ".6bd5e503"},
		{name: "source identity: a name like a fitted one", got: sourceIdentity("a_b.6af3e295"), want: "a_b.6af3e295.70172968"},
		{name: "tag value: letters, spaces, numbers kept", got: tagValue("Élise Dupont 2"), want: "Élise Dupont 2"},
		{name: "tag value: empty is allowed", got: tagValue(""), want: ""},
		{name: "tag value: others replaced", got: tagValue("claude<code>"), want: "claude_code_.0206a74f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	tagValueRE    = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// FuzzNames: whatever the user, agent and grant, what is sent fits STS's
// rules, and different users give different source identities.
func FuzzNames(f *testing.F) {
	f.Add("g-abc", "alice", "bob")
	f.Add("", "a", "aws:x")
	f.Add("g-1", "Élise\x00\xff", strings.Repeat("ü", 300))
	f.Fuzz(func(t *testing.T, grant, user, other string) {
		if n := roleSessionName(grant, user); !sessionNameRE.MatchString(n) {
			t.Errorf("roleSessionName(%q, %q) = %q", grant, user, n)
		}
		if user == "" {
			return
		}
		si := sourceIdentity(user)
		if !sessionNameRE.MatchString(si) || strings.HasPrefix(si, "aws:") {
			t.Errorf("sourceIdentity(%q) = %q", user, si)
		}
		if user != other && si == sourceIdentity(other) {
			t.Errorf("sourceIdentity(%q) = sourceIdentity(%q) = %q", user, other, si)
		}
		if v := tagValue(user); !tagValueRE.MatchString(v) || utf8.RuneCountInString(v) > maxTagValue {
			t.Errorf("tagValue(%q) = %q", user, v)
		}
	})
}
