package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// fakeAdmin serves one canned answer to every call.
func fakeAdmin(t *testing.T, status int, body any) *client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &client{base: u, auth: func(*http.Request) {}, http: srv.Client()}
}

func TestClientEscapesAPIError(t *testing.T) {
	c := fakeAdmin(t, http.StatusBadRequest, map[string]string{"error": "denied\x1b]0;pwned\x07\nforged line"})
	err := c.do(context.Background(), "GET", "/v1/grants", nil, nil)
	want := `"denied\x1b]0;pwned\a\nforged line"`
	if err == nil || err.Error() != want {
		t.Errorf("do() error = %v, want %s", err, want)
	}
}
