package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
)

// receiver is a webhook endpoint that keeps every JSON line it accepts.
type receiver struct {
	mu      sync.Mutex
	token   string // the accepted bearer token; "" accepts any request
	status  int    // the answer when not 0 (and the token is right)
	header  http.Header
	lines   []string
	ids     []string
	queries int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.queries++
	rc.header = r.Header.Clone()
	if rc.token != "" && r.Header.Get("Authorization") != "Bearer "+rc.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if rc.status != 0 {
		w.WriteHeader(rc.status)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "want a POST of application/x-ndjson", http.StatusBadRequest)
		return
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		http.Error(w, "the body does not end with a newline", http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.ID == "" {
			http.Error(w, fmt.Sprintf("line %q is not an audit record", sc.Text()), http.StatusBadRequest)
			return
		}
		rc.lines = append(rc.lines, sc.Text())
		rc.ids = append(rc.ids, rec.ID)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (rc *receiver) got() (lines, ids []string, queries int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.lines...), append([]string(nil), rc.ids...), rc.queries
}

func (rc *receiver) set(f func(*receiver)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(rc)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNewReportsEveryProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "nothing", cfg: Config{}, want: []string{"url is required"}},
		{name: "scheme", cfg: Config{URL: "ftp://example.com/x"}, want: []string{"scheme must be http or https"}},
		{name: "no host", cfg: Config{URL: "https:///x"}, want: []string{"no host"}},
		{name: "user info", cfg: Config{URL: "https://user:pw@example.com/x"}, want: []string{"credentials in the URL"}},
		{
			name: "all at once",
			cfg:  Config{TokenFile: "/nonexistent/token", CAFile: "/nonexistent/ca.pem", Timeout: -time.Second},
			want: []string{"url is required", "token_file", "ca_file", "timeout -1s"},
		},
		{name: "empty token", cfg: Config{URL: "https://example.com", TokenFile: writeFile(t, "token", " \n")}, want: []string{"is empty"}},
		{name: "not a CA", cfg: Config{URL: "https://example.com", CAFile: writeFile(t, "ca.pem", "hello")}, want: []string{"no PEM certificate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDeliverPostsJSONLines(t *testing.T) {
	rc := &receiver{token: "tok-1"}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := newSink(t, Config{URL: srv.URL + "/audit", TokenFile: writeFile(t, "token", "tok-1\n")})

	stream := audittest.NewStream("wh")
	batch := stream.Next(t, 3)
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(t.Context(), nil); err != nil {
		t.Fatalf("Deliver(empty) = %v", err)
	}
	lines, _, queries := rc.got()
	var want []string
	for _, r := range batch {
		want = append(want, string(r.Data))
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("lines received (-want +got):\n%s", diff)
	}
	if queries != 1 {
		t.Errorf("%d requests, want 1 (an empty batch sends nothing)", queries)
	}
	// The records are sealed: the receiver can check the chain.
	c := audit.NewChainer(nil)
	prev := ""
	for i, l := range lines {
		h, err := c.Open(prev, []byte(l))
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		prev = h
	}
}

func TestStatuses(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		retry     string
		wantErr   bool
		transient bool
		say       string
	}{
		{name: "200", status: 200},
		{name: "204", status: 204},
		{name: "400", status: 400, wantErr: true, say: "will likely fail the same way"},
		{name: "404", status: 404, wantErr: true, say: "will likely fail the same way"},
		{name: "403", status: 403, wantErr: true, say: "check token_file"},
		{name: "413", status: 413, wantErr: true, say: "lower the batch size"},
		{name: "408", status: 408, wantErr: true, transient: true, say: "408 Request Timeout"},
		{name: "429", status: 429, retry: "7", wantErr: true, transient: true, say: "retry after 7s"},
		{name: "500", status: 500, wantErr: true, transient: true, say: "500 Internal Server Error"},
		{name: "503", status: 503, wantErr: true, transient: true, say: "503 Service Unavailable"},
		{name: "304", status: 304, wantErr: true, say: "not followed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retry != "" {
					w.Header().Set("Retry-After", tt.retry)
				}
				w.WriteHeader(tt.status)
				if tt.status != 204 && tt.status != 304 {
					io.WriteString(w, "some\x00 text\nfrom the endpoint")
				}
			}))
			defer srv.Close()
			s := newSink(t, Config{URL: srv.URL})
			err := s.Deliver(t.Context(), audittest.NewStream("st").Next(t, 1))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Deliver = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			se, ok := errors.AsType[*StatusError](err)
			if !ok {
				t.Fatalf("Deliver = %v, not a *StatusError", err)
			}
			if se.Transient() != tt.transient {
				t.Errorf("Transient() = %v, want %v", se.Transient(), tt.transient)
			}
			if !strings.Contains(err.Error(), tt.say) {
				t.Errorf("error %q does not say %q", err, tt.say)
			}
			if strings.ContainsAny(se.Body, "\x00\n") {
				t.Errorf("Body %q is not one printable line", se.Body)
			}
		})
	}
}

func TestToken(t *testing.T) {
	const first, second = "canary-token-one-5f1d", "canary-token-two-93ab"
	rc := &receiver{token: first}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	tokenFile := writeFile(t, "token", first)
	s := newSink(t, Config{URL: srv.URL, TokenFile: tokenFile})
	stream := audittest.NewStream("tok")

	if err := s.Deliver(t.Context(), stream.Next(t, 1)); err != nil {
		t.Fatal(err)
	}

	t.Run("read again at every delivery", func(t *testing.T) {
		rc.set(func(r *receiver) { r.token = second })
		if err := os.WriteFile(tokenFile, []byte(second+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.Deliver(t.Context(), stream.Next(t, 1)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("read again on 401", func(t *testing.T) {
		// The token rotates between the sink's read and the endpoint's
		// check: the first POST gets 401, the second the new token.
		var posts []string
		rotating := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			posts = append(posts, r.Header.Get("Authorization"))
			if r.Header.Get("Authorization") != "Bearer "+first {
				os.WriteFile(tokenFile, []byte(first), 0o600)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusOK)
		}))
		defer rotating.Close()
		s := newSink(t, Config{URL: rotating.URL, TokenFile: tokenFile})
		if err := s.Deliver(t.Context(), stream.Next(t, 1)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"Bearer " + second, "Bearer " + first}, posts); diff != "" {
			t.Errorf("Authorization of each POST (-want +got):\n%s", diff)
		}
	})

	t.Run("never in an error", func(t *testing.T) {
		// The endpoint refuses every token and echoes it.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "refused %q", r.Header.Get("Authorization"))
		}))
		defer echo.Close()
		s := newSink(t, Config{URL: echo.URL, TokenFile: tokenFile})
		err := s.Deliver(t.Context(), stream.Next(t, 1))
		if err == nil {
			t.Fatal("Deliver = nil")
		}
		for _, tok := range []string{first, second} {
			if strings.Contains(err.Error(), tok) || strings.Contains(fmt.Sprintf("%#v", err), tok) {
				t.Errorf("the error shows the token: %v", err)
			}
		}
		t.Logf("error: %v", err)
	})
}

func TestRedirects(t *testing.T) {
	rc := &receiver{}
	var other receiver
	otherSrv := httptest.NewServer(&other)
	defer otherSrv.Close()
	mux := http.NewServeMux()
	mux.Handle("/in", rc)
	mux.Handle("/moved", http.RedirectHandler("/in", http.StatusPermanentRedirect))
	mux.Handle("/temp", http.RedirectHandler("/in", http.StatusTemporaryRedirect))
	mux.Handle("/found", http.RedirectHandler("/in", http.StatusFound))
	mux.Handle("/see-other", http.RedirectHandler("/in", http.StatusSeeOther))
	mux.Handle("/elsewhere", http.RedirectHandler(otherSrv.URL+"/in", http.StatusTemporaryRedirect))
	mux.Handle("/loop", http.RedirectHandler("/loop", http.StatusTemporaryRedirect))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tt := range []struct {
		path string
		say  string // "" for delivered
	}{
		{path: "/moved"},
		{path: "/temp"},
		{path: "/found", say: "resend the batch as a GET without a body, not followed"},
		{path: "/see-other", say: "resend the batch as a GET without a body, not followed"},
		{path: "/elsewhere", say: "redirected to http://" + otherSrv.Listener.Addr().String() + ", not followed"},
		{path: "/loop", say: "stopped after 5 redirects"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			s := newSink(t, Config{URL: srv.URL + tt.path})
			batch := audittest.NewStream("redirect").Next(t, 2)
			_, before, _ := rc.got()
			err := s.Deliver(t.Context(), batch)
			_, after, _ := rc.got()
			if tt.say == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(after)-len(before) != 2 {
					t.Errorf("the endpoint got %d records, want 2", len(after)-len(before))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.say) {
				t.Fatalf("Deliver = %v, want an error saying %q", err, tt.say)
			}
			if len(after) != len(before) {
				t.Errorf("the endpoint got %d records through a refused redirect", len(after)-len(before))
			}
		})
	}
	if _, _, n := other.got(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestNoEnvironmentProxy(t *testing.T) {
	// The environment's proxy settings are read once per process by
	// net/http and never apply to loopback addresses, so an end-to-end
	// check cannot tell; the transport's Proxy must be nil.
	s := newSink(t, Config{URL: "https://audit.example.com/in"})
	tr, ok := s.client.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatalf("the sink's transport %T uses a proxy function", s.client.Transport)
	}
}

func TestCAFile(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewUnstartedServer(rc)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	batch := audittest.NewStream("tls").Next(t, 1)

	s := newSink(t, Config{URL: srv.URL})
	if err := s.Deliver(t.Context(), batch); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Deliver without ca_file = %v, want a certificate error", err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	s = newSink(t, Config{URL: srv.URL, CAFile: writeFile(t, "ca.pem", string(ca))})
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatalf("Deliver with ca_file = %v", err)
	}
}

func TestTimeoutAndContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	batch := audittest.NewStream("slow").Next(t, 1)

	s := newSink(t, Config{URL: srv.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	if err := s.Deliver(t.Context(), batch); err == nil {
		t.Fatal("Deliver to a hanging endpoint = nil")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Deliver took %s with a 200ms timeout", took)
	}

	s = newSink(t, Config{URL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Deliver(ctx, batch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver = %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Deliver took %s with a 200ms context", took)
	}
}

// restartable serves h on one address that can stop listening and start
// again.
type restartable struct {
	h    http.Handler
	addr string
	srv  *httptest.Server
}

func startRestartable(t *testing.T, h http.Handler) *restartable {
	r := &restartable{h: h}
	r.srv = httptest.NewServer(h)
	r.addr = r.srv.Listener.Addr().String()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *restartable) stop(t *testing.T) { r.srv.Close() }

func (r *restartable) start(t *testing.T) {
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.srv = httptest.NewUnstartedServer(r.h)
	r.srv.Listener = l
	r.srv.Start()
}

func TestOutage(t *testing.T) {
	t.Run("server stopped", func(t *testing.T) {
		rc := &receiver{}
		srv := startRestartable(t, rc)
		s := newSink(t, Config{URL: "http://" + srv.addr + "/in", Timeout: time.Second})
		audittest.CheckOutage(t, s, audittest.Destination{
			Stop:  srv.stop,
			Start: srv.start,
			IDs:   func(*testing.T) []string { _, ids, _ := rc.got(); return ids },
		})
	})
	t.Run("server failing", func(t *testing.T) {
		rc := &receiver{}
		srv := httptest.NewServer(rc)
		defer srv.Close()
		s := newSink(t, Config{URL: srv.URL, Timeout: time.Second})
		audittest.CheckOutage(t, s, audittest.Destination{
			Stop:  func(*testing.T) { rc.set(func(r *receiver) { r.status = http.StatusServiceUnavailable }) },
			Start: func(*testing.T) { rc.set(func(r *receiver) { r.status = 0 }) },
			IDs:   func(*testing.T) []string { _, ids, _ := rc.got(); return ids },
		})
	})
}
