package replayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/store"
)

// Assets is the part of the asset archive the replay server reads
// (store.AssetStore).
type Assets interface {
	Capture(ctx context.Context, url string, t time.Time) (*store.Asset, error)
	Body(ctx context.Context, hash string) (body []byte, contentType string, err error)
	SessionAssets(ctx context.Context, sessionID string) ([]*store.Asset, error)
}

// errNoArchive answers the archive routes of a server without an archive.
var errNoArchive = &Error{http.StatusNotFound, "no asset archive"}

// assets returns the archive, or errNoArchive.
func (s *Server) assets() (Assets, error) {
	if s.cfg.Assets == nil {
		return nil, errNoArchive
	}
	return s.cfg.Assets, nil
}

// archivePath is where the replay server serves archived bodies.
const archivePath = "/archive/"

// archiveURL is the replay URL of a capture: the body by its hash, with the
// original URL and the session's start, against which an archived
// stylesheet's own references are resolved and chosen.
func archiveURL(hash, orig string, t time.Time) string {
	return archivePath + hash + "?u=" + url.QueryEscape(orig) + "&t=" + strconv.FormatInt(t.UnixMilli(), 10)
}

// captureMapper maps asset URLs to their archived copies closest to one
// moment, asking the store once per URL. It is an archive.Mapper.
type captureMapper struct {
	ctx    context.Context
	as     Assets
	at     time.Time
	onErr  func(url string, err error) // called once per failing URL
	mu     sync.Mutex
	cache  map[string]string // absolute URL → archive URL, "" if none
	missed bool              // some URL had no capture
}

func newMapper(ctx context.Context, as Assets, at time.Time, onErr func(string, error)) *captureMapper {
	return &captureMapper{ctx: ctx, as: as, at: at, onErr: onErr, cache: map[string]string{}}
}

// mapURL returns the archive URL of abs's capture closest to the moment,
// or false when the archive does not hold it (the URL then stays as
// recorded). A store error counts as not held: the replay falls back to
// the live URL rather than failing.
func (m *captureMapper) mapURL(abs string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.cache[abs]; ok {
		if u == "" {
			m.missed = true
		}
		return u, u != ""
	}
	out := ""
	if norm, err := archive.NormalizeURL(abs); err == nil {
		a, err := m.as.Capture(m.ctx, norm, m.at)
		switch {
		case err == nil:
			out = archiveURL(a.Hash, norm, m.at)
		case !errors.Is(err, store.ErrNotFound) && m.onErr != nil:
			m.onErr(norm, err)
		}
	}
	m.cache[abs] = out
	if out == "" {
		m.missed = true
	}
	return out, out != ""
}

// writeArchivedEvents streams the session's events through
// archive.RewriteEvents, which rewrites every asset URL the archive holds.
func (s *Server) writeArchivedEvents(ctx context.Context, w io.Writer, as Assets, sess *store.Session) error {
	m := newMapper(ctx, as, sess.StartedAt, func(u string, err error) {
		s.log.Warn("archive lookup", "session", sess.ID, "url", u, "err", err)
	})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.cfg.Store.WriteEvents(ctx, sess.ID, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	err := archive.RewriteEvents(w, pr, m.mapURL)
	// Unblock the writer if the rewriter stopped early.
	pr.CloseWithError(errors.New("rewriter stopped"))
	if werr := <-done; werr != nil {
		return fmt.Errorf("write events: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("rewrite events: %w", err)
	}
	return nil
}

// Cache lifetimes of archived bodies.
const (
	// A body is named by its hash: it never changes.
	immutable = "private, max-age=31536000, immutable"
	// A stylesheet some of whose references the archive did not hold yet
	// (the fetcher may still bring them) is rewritten again soon.
	revisit = "private, max-age=300"
)

// getArchived serves an archived body. Bodies are untrusted bytes from the
// recorded site: they are served with their recorded type, never sniffed,
// and sandboxed should one be opened as a document. ?u= (the original
// absolute URL) and ?t= (Unix ms) let a stylesheet's url() and @import be
// rewritten to the captures closest to t, resolved against u.
func (s *Server) getArchived(w http.ResponseWriter, r *http.Request) error {
	as, err := s.assets()
	if err != nil {
		return err
	}
	hash := r.PathValue("hash")
	if !isHash(hash) {
		return &Error{http.StatusNotFound, "asset not found"}
	}
	q := r.URL.Query()
	var base *url.URL
	if v := q.Get("u"); v != "" {
		base, err = url.Parse(v)
		if err != nil || !base.IsAbs() || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return &Error{http.StatusBadRequest, "u must be an absolute http or https URL"}
		}
	}
	at := s.now()
	if v := q.Get("t"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return &Error{http.StatusBadRequest, "t must be Unix milliseconds"}
		}
		at = time.UnixMilli(ms)
	}
	body, ct, err := as.Body(r.Context(), hash)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{http.StatusNotFound, "asset not found"}
	}
	if err != nil {
		return fmt.Errorf("archived body: %w", err)
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Cache-Control", immutable)
	// The URL names the body and the moment: equal URLs mean equal bytes.
	h.Set("ETag", `"`+hash+`"`)
	if mt, _, _ := mime.ParseMediaType(ct); mt == "text/css" && base != nil {
		m := newMapper(r.Context(), as, at, func(u string, err error) {
			s.log.Warn("archive lookup", "url", u, "err", err)
		})
		body = archive.RewriteCSS(body, base, m.mapURL)
		if m.missed {
			h.Set("Cache-Control", revisit)
			h.Del("ETag") // the next answer may differ
		}
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	// The replay frame is sandboxed without allow-same-origin, so its
	// origin is opaque and fonts (always CORS-mode fetches) need this.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

// isHash reports whether s is a hex SHA-256 as the store names bodies.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
