package webhook

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
)

const testKey = "notify-key-0123456789abcdef"

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"text":"hello"}`)
	ts, sig := sign([]byte(testKey), body, now)
	tests := []struct {
		name          string
		key           string
		ts, sig, body string
		at            time.Time
		ok            bool
	}{
		{name: "as signed", key: testKey, ts: ts, sig: sig, body: string(body), at: now, ok: true},
		{name: "within the window", key: testKey, ts: ts, sig: sig, body: string(body), at: now.Add(4 * time.Minute), ok: true},
		{name: "a replay after the window", key: testKey, ts: ts, sig: sig, body: string(body), at: now.Add(6 * time.Minute)},
		{name: "from the future", key: testKey, ts: ts, sig: sig, body: string(body), at: now.Add(-6 * time.Minute)},
		{name: "another body", key: testKey, ts: ts, sig: sig, body: `{"text":"hellO"}`, at: now},
		{name: "another key", key: testKey + "x", ts: ts, sig: sig, body: string(body), at: now},
		{name: "another timestamp", key: testKey, ts: "1800000001", sig: sig, body: string(body), at: now},
		{name: "no prefix", key: testKey, ts: ts, sig: strings.TrimPrefix(sig, "v1="), body: string(body), at: now},
		{name: "not hex", key: testKey, ts: ts, sig: "v1=zz", body: string(body), at: now},
		{name: "not a number", key: testKey, ts: "soon", sig: sig, body: string(body), at: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify([]byte(tt.key), tt.ts, []byte(tt.body), tt.sig, tt.at, 5*time.Minute)
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("the error holds the key: %v", err)
			}
		})
	}
}

// verifier is an endpoint that accepts only POSTs whose signature
// verifies, and keeps their bodies.
type verifier struct {
	mu     sync.Mutex
	fail   int // answer 503 to this many verified POSTs first
	bodies []string
	stamps []string
	bad    int
}

func (v *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := Verify([]byte(testKey), r.Header.Get(TimestampHeader), body, r.Header.Get(SignatureHeader), time.Now(), 5*time.Minute); err != nil {
		v.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	v.stamps = append(v.stamps, r.Header.Get(TimestampHeader))
	if v.fail > 0 {
		v.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	v.bodies = append(v.bodies, string(body))
	w.WriteHeader(http.StatusOK)
}

// TestSignedDeliveries: every POST is signed, a retried one anew, and the
// receiver's check passes; a wrong key fails it.
func TestSignedDeliveries(t *testing.T) {
	v := &verifier{fail: 1}
	srv := httptest.NewServer(v)
	defer srv.Close()
	s := newSink(t, Config{URL: srv.URL, SecretFile: writeFile(t, "key", testKey+"\n")})
	batch := audittest.NewStream("n").Next(t, 2)
	err := s.Deliver(t.Context(), batch)
	if err == nil || strings.Contains(err.Error(), testKey) {
		t.Fatalf("first Deliver (answered 503) = %v", err)
	}
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	if v.bad != 0 || len(v.bodies) != 1 || len(v.stamps) != 2 {
		t.Errorf("%d bad signatures, %d bodies, %d verified POSTs", v.bad, len(v.bodies), len(v.stamps))
	}
	v.mu.Unlock()

	wrong := newSink(t, Config{URL: srv.URL, SecretFile: writeFile(t, "key", "another-key-0123456789")})
	var se *StatusError
	if err := wrong.Deliver(t.Context(), batch); !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("Deliver with another key = %v, want 401", err)
	}
}

func TestSecretFileMustHoldAKey(t *testing.T) {
	for _, content := range []string{"", "short"} {
		if _, err := New(Config{URL: "https://example.com", SecretFile: writeFile(t, "key", content)}); err == nil || !strings.Contains(err.Error(), "secret_file") {
			t.Errorf("New(secret %q) = %v", content, err)
		}
	}
	if _, err := New(Config{URL: "https://example.com", Payload: "xml"}); err == nil || !strings.Contains(err.Error(), `payload "xml"`) {
		t.Errorf("New(payload xml) = %v", err)
	}
}

// TestSlackPayload: each record is one Slack message saying what happened,
// every value escaped, with a button to the approval page for a request.
func TestSlackPayload(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	grant := func(state string) *audit.Grant {
		return &audit.Grant{ID: "g-42", Policy: "pod-reader", State: state, User: "dev", Target: "prod", Namespace: "payments",
			Reason: "debug <https://evil.example|click> & fix", ExpiresAt: t0.Add(time.Hour)}
	}
	bob := &audit.Actor{Name: "bob"}
	tests := []struct {
		event    audit.Event
		text     string
		reviewed bool
	}{
		{event: audit.Event{Type: audit.TypeGrantRequested, Actor: &audit.Actor{Name: "dev", Agent: "claude", Session: "s-1"}, Grant: grant("PENDING")}, reviewed: true,
			text: "*dev* requested grant g-42 (*pod-reader* on prod, namespace payments) for *dev*: debug &lt;https://evil.example|click&gt; &amp; fix"},
		{event: audit.Event{Type: audit.TypeGrantApproved, Actor: bob, Grant: grant("PENDING")}, reviewed: true,
			text: "*bob* approved grant g-42 (*pod-reader* on prod, namespace payments) for *dev*"},
		{event: audit.Event{Type: audit.TypeGrantDenied, Actor: bob, Grant: grant("DENIED")},
			text: "*bob* denied grant g-42 (*pod-reader* on prod, namespace payments) for *dev*"},
		{event: audit.Event{Type: audit.TypeGrantActivated, Actor: &audit.Actor{Name: "jitproxy"}, Grant: grant("ACTIVE")},
			text: "Grant g-42 (*pod-reader* on prod, namespace payments) for *dev* is active until 2026-11-29T11:00:00Z"},
		{event: audit.Event{Type: audit.TypeGrantExpired, Actor: &audit.Actor{Name: "jitproxy"}, Grant: grant("EXPIRED")},
			text: "Grant g-42 (*pod-reader* on prod, namespace payments) for *dev* has expired"},
		{event: audit.Event{Type: audit.TypeGrantRevoked, Actor: bob, Grant: grant("REVOKED")},
			text: "*bob* revoked grant g-42 (*pod-reader* on prod, namespace payments) for *dev*"},
		{event: audit.Event{Type: audit.TypeLockCreated, Actor: bob, Lock: &audit.Lock{ID: "l-1", Agent: "claude", Reason: "incident 7"}},
			text: "*bob* locked agent claude: incident 7"},
	}
	var posts []map[string]any
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&m) != nil {
			http.Error(w, "want a JSON object", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, m)
		mu.Unlock()
	}))
	defer srv.Close()
	s := newSink(t, Config{URL: srv.URL, Payload: "slack", ApprovalURL: "https://jitproxy.example.com/approve/{grant}"})
	var batch []audit.Record
	for i, tt := range tests {
		e := tt.event
		e.Version, e.ID, e.Time = audit.SchemaVersion, strings.Repeat("a", 31)+string(rune('0'+i)), t0
		data, err := audit.EncodeNative(e, audit.Chain{Seq: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, audit.Record{ID: e.ID, Seq: uint64(i + 1), Type: e.Type, Time: t0, Data: data})
	}
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if len(posts) != len(tests) {
		t.Fatalf("%d POSTs for %d records", len(posts), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.event.Type, func(t *testing.T) {
			p := posts[i]
			if diff := cmp.Diff(tt.text, p["text"]); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			b, _ := json.Marshal(p["blocks"])
			hasButton := strings.Contains(string(b), `"url":"https://jitproxy.example.com/approve/g-42"`)
			if hasButton != tt.reviewed {
				t.Errorf("button to the approval page: %v, want %v: %s", hasButton, tt.reviewed, b)
			}
		})
	}
}

// TestSlackPayloadNeedsNativeRecords: an OCSF record cannot be made a
// message; the delivery fails rather than sending something wrong.
func TestSlackPayloadNeedsNativeRecords(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	s := newSink(t, Config{URL: srv.URL, Payload: "slack"})
	err := s.Deliver(t.Context(), []audit.Record{{ID: "x", Seq: 1, Data: []byte(`[1,2]`)}})
	if err == nil || !strings.Contains(err.Error(), "needs format native") {
		t.Errorf("Deliver() = %v", err)
	}
}

// FuzzVerify: whatever a receiver is sent, Verify does not panic, and it
// accepts only the MAC the key makes of that timestamp and body.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	ts, sig := sign([]byte(testKey), []byte("body"), now)
	f.Add(ts, sig, []byte("body"))
	f.Add("-1", "v1=", []byte{})
	f.Add("9999999999999999999999", "v1=00", []byte("x"))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		if Verify([]byte(testKey), ts, body, sig, now, 5*time.Minute) != nil {
			return
		}
		if want := "v1=" + hex.EncodeToString(mac([]byte(testKey), ts, body)); !strings.EqualFold(sig, want) {
			t.Errorf("Verify accepted %q for timestamp %q, want %q", sig, ts, want)
		}
	})
}
