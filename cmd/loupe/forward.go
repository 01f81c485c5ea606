package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"

	"github.com/loupe-dev/loupe/proxy"
)

// forwardIngest returns the ingest handler of a proxy whose collector runs
// elsewhere: it forwards each batch to coll unchanged. X-Forwarded-For
// names the visitor (through the hops in trusted, as for the origin), so
// the collector sees the client when this proxy is among its trusted
// proxies. While the collector cannot be reached the
// recorder is told 503 with Retry-After, as when the store is down, and
// keeps the batch to retry.
func forwardIngest(coll *url.URL, trusted []netip.Prefix, log *slog.Logger) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(coll)
			proxy.SetForwarded(pr, trusted)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the visitor went away; nothing to answer
			}
			log.Warn("forward ingest", "collector", coll.Redacted(), "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "collector unavailable, retry later"})
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
