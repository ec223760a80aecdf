package intercept

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestResponsesThroughSharedBuffers: responses larger than a copy buffer,
// streamed and with a length, copied at the same time through buffers the
// upstreams share, each reach their own agent whole.
func TestResponsesThroughSharedBuffers(t *testing.T) {
	body := func(i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("%03d", i)), copyBufferSize) // three buffers' worth
	}
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Query().Get("limit"), "%d", &i)
		if i%2 == 0 {
			w.Header().Set("Content-Length", fmt.Sprint(3*copyBufferSize))
		}
		for b := body(i); len(b) > 0; { // in pieces, flushed: streamed
			n := min(len(b), 1000)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	})})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	c := h.agent()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			resp, err := c.Get(fmt.Sprintf("https://kubernetes.demo/api/v1/namespaces/demo/pods?limit=%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body(i)) {
				t.Errorf("response %d: %s, %d bytes, %v; want 200 and its own %d bytes", i, resp.Status, len(got), err, len(body(i)))
			}
		})
	}
	wg.Wait()
}

func TestBufferPool(t *testing.T) {
	var p bufferPool
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("Get() = %d bytes, want %d", len(b), copyBufferSize)
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // not one of its own: dropped
	for range 3 {
		if b := p.Get(); len(b) != copyBufferSize {
			t.Fatalf("Get() = %d bytes, want %d", len(b), copyBufferSize)
		}
	}
}
