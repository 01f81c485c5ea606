package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestForwardIngestChain: a proxy forwarding ingest to a remote collector
// passes on the visitor's address from a trusted hop in front of it, and
// believes nothing an untrusted peer claims.
func TestForwardIngestChain(t *testing.T) {
	var got string
	coll := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("X-Forwarded-For")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer coll.Close()
	u, _ := url.Parse(coll.URL)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"trusted hop", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9, 127.0.0.1"},
		{"untrusted peer", nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(forwardIngest(u, tc.trusted, log))
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/__loupe/ingest", strings.NewReader("{}"))
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent || got != tc.want {
				t.Errorf("status %d, collector saw X-Forwarded-For %q, want %q", resp.StatusCode, got, tc.want)
			}
		})
	}
}
