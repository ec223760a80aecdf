package webhook

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Slack payloads. With Payload "slack" each record is POSTed alone as a
// Slack message (an incoming webhook's JSON: text, and Block Kit blocks):
// what happened to which grant or lock, by whom, and for a grant request
// a button to the approval page. The records must be in the native
// format, which the message is made from.

// slackMessage is the Slack message of one native record. approvalURL,
// if not empty, is the approval page's address with "{grant}" where the
// grant's ID goes.
func slackMessage(r audit.Record, approvalURL string) ([]byte, error) {
	var e audit.Event
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return nil, fmt.Errorf("record %s is not a native jitproxy event (a slack payload needs format native): %w", r.ID, err)
	}
	text := slackText(&e)
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": text}},
		map[string]any{"type": "context", "elements": []any{
			map[string]string{"type": "mrkdwn", "text": slackEscape(fmt.Sprintf("jitproxy · %s · %s", e.Type, e.Time.UTC().Format(time.RFC3339)))},
		}},
	}
	if g := e.Grant; g != nil && approvalURL != "" && (e.Type == audit.TypeGrantRequested || e.Type == audit.TypeGrantApproved) {
		link := strings.ReplaceAll(approvalURL, "{grant}", url.PathEscape(g.ID))
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{
			map[string]any{"type": "button", "text": map[string]string{"type": "plain_text", "text": "Review the request"}, "url": link},
		}})
	}
	return json.Marshal(map[string]any{"text": text, "blocks": blocks})
}

// slackText says what e is about, in Slack's mrkdwn, every value escaped.
func slackText(e *audit.Event) string {
	actor := "jitproxy"
	if e.Actor != nil && e.Actor.Name != "" {
		actor = e.Actor.Name
	}
	q := slackEscape
	if g := e.Grant; g != nil {
		grant := fmt.Sprintf("grant %s (*%s* on %s", q(g.ID), q(g.Policy), q(g.Target))
		if g.Namespace != "" {
			grant += ", namespace " + q(g.Namespace)
		}
		grant += ") for *" + q(g.User) + "*"
		switch e.Type {
		case audit.TypeGrantRequested:
			return fmt.Sprintf("*%s* requested %s: %s", q(actor), grant, q(g.Reason))
		case audit.TypeGrantApproved:
			return fmt.Sprintf("*%s* approved %s", q(actor), grant)
		case audit.TypeGrantDenied:
			return fmt.Sprintf("*%s* denied %s", q(actor), grant)
		case audit.TypeGrantActivated:
			return fmt.Sprintf("%s is active until %s", upper(grant), g.ExpiresAt.UTC().Format(time.RFC3339))
		case audit.TypeGrantExpired:
			return fmt.Sprintf("%s has expired", upper(grant))
		case audit.TypeGrantRevoked:
			return fmt.Sprintf("*%s* revoked %s", q(actor), grant)
		case audit.TypeGrantSuspended:
			return fmt.Sprintf("%s is suspended: %s", upper(grant), q(g.Suspended))
		case audit.TypeGrantResumed:
			return fmt.Sprintf("%s is resumed", upper(grant))
		}
		return fmt.Sprintf("%s: %s", q(e.Type), grant)
	}
	if l := e.Lock; l != nil {
		what := l.Target()
		verb := "locked"
		if e.Type == audit.TypeLockRemoved {
			verb = "unlocked"
		}
		return fmt.Sprintf("*%s* %s %s: %s", q(actor), verb, q(what), q(l.Reason))
	}
	return fmt.Sprintf("%s by *%s*", q(e.Type), q(actor))
}

func upper(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// slackEscape escapes what Slack's mrkdwn reads as markup in a value (a
// reason could otherwise carry a link or a mention): &, < and >.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
