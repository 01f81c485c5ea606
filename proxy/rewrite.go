package proxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
)

// sessionCookieKey carries the visitor's session cookie value from the
// inbound request to modifyResponse.
type sessionCookieKey struct{}

// errPassThrough means the response is sent as the origin sent it.
var errPassThrough = errors.New("pass through")

// modifyResponse injects the recorder into HTML responses and hands other
// full responses to the archiver. It never returns an error: whatever goes
// wrong, the visitor gets the origin's bytes.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if !injectable(resp) {
		if _, public := PublicURL(resp); public && archivable(resp) {
			p.tee(resp)
		}
		return nil
	}
	err := p.inject(resp)
	if err != nil && !errors.Is(err, errPassThrough) {
		p.log.Warn("injection skipped", "path", resp.Request.URL.Path, "err", err)
	}
	return nil
}

// injectable reports whether resp is an HTML document Loupe should record.
func injectable(resp *http.Response) bool {
	// A page answering a form POST is a page view too (legacy sites often
	// render the next page without a redirect). A HEAD answer gets the
	// headers its GET would (inject).
	if m := resp.Request.Method; m != http.MethodGet && m != http.MethodPost && m != http.MethodHead {
		return false
	}
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusPartialContent, http.StatusNotModified:
		return false
	}
	if resp.StatusCode < 200 || resp.Header.Get("Content-Range") != "" {
		return false
	}
	ct := resp.Header.Get("Content-Type")
	if !mayBe(ct, "text/html") {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/html"
}

// mayBe reports whether mime.ParseMediaType(ct) may return the lower-case
// media type mt: false means it cannot, and saves parsing (and allocating
// the parameters of) every stylesheet and image.
func mayBe(ct, mt string) bool {
	base, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(base), mt)
}

// archivable reports whether resp is a complete, non-HTML body the archive
// may keep: the answer to a plain GET, 200 OK, not a range. HTML documents
// are never archived: they carry the visitor's own page. What else to keep
// (types, cache rules, size) is the archiver's policy.
func archivable(resp *http.Response) bool {
	req := resp.Request
	if req.Method != http.MethodGet || req.Header.Get("Range") != "" {
		return false
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Range") != "" {
		return false
	}
	ct := resp.Header.Get("Content-Type")
	if !mayBe(ct, "text/html") && !mayBe(ct, "application/xhtml+xml") {
		return true
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && (mt == "text/html" || mt == "application/xhtml+xml") {
		return false
	}
	return true
}

// tee hands resp to the archiver. A panic there must cost the archive a
// copy, never the visitor the response.
func (p *Proxy) tee(resp *http.Response) {
	body := resp.Body
	defer func() {
		if v := recover(); v != nil {
			resp.Body = body
			p.log.Error("archive tee panic", "panic", v, "path", resp.Request.URL.Path)
		}
	}()
	p.cfg.Archive.Tee(resp)
}

// inject replaces resp's body with one that streams the origin's page
// with the recorder inserted (see newStream), and adjusts the headers to
// the new body. On any failure before the first byte is read it leaves, or
// restores, the origin's bytes and returns the reason.
func (p *Proxy) inject(resp *http.Response) error {
	if !p.recording(resp) {
		return errPassThrough
	}
	h := resp.Header
	in, ok := decodable[strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))]
	if !ok {
		return fmt.Errorf("content encoding %q: %w", h.Get("Content-Encoding"), errPassThrough)
	}
	if resp.ContentLength > p.cfg.MaxRewriteBytes {
		return fmt.Errorf("body of %d bytes over %d: %w", resp.ContentLength, p.cfg.MaxRewriteBytes, errPassThrough)
	}
	out := chooseEncoding(resp.Request.Header.Get("Accept-Encoding"), in)
	if resp.Request.Method == http.MethodHead {
		// No body, no page view: only the headers that describe the body
		// a GET gets, so that neither a length nor a strong validator of
		// the origin's bytes is sent for it, and its policies as a GET's
		// (with a nonce of their own).
		p.recorderCSP(resp)
		rewrittenHeaders(resp, in, out)
		return nil
	}

	sess, cookie := p.session(resp)
	pv := collector.NewID()
	page := injector.Page{PageViewID: pv, Token: p.cfg.Tokens.PageViewToken(sess, pv), CSP: p.recorderCSP(resp)}
	rewrite := func(dst io.Writer, src io.Reader) error {
		return p.cfg.Injector.Rewrite(dst, src, page)
	}
	pw := pacer(resp.Request.Context())
	body, err := newStream(resp.Body, in, out, rewrite, pw, p.log)
	resp.Body = body
	if err != nil {
		return err
	}
	if pw != nil {
		pw.pace()
	}
	rewrittenHeaders(resp, in, out)
	h.Add("Set-Cookie", cookie.String())
	// The network log files the page under the session it now continues.
	noteSession(resp.Request.Context(), sess.ID, pv)
	return nil
}

// rewrittenHeaders adjusts the origin's headers to a rewritten body, sent
// in coding out (in was the origin's).
func rewrittenHeaders(resp *http.Response, in, out string) {
	h := resp.Header
	if out == encIdentity {
		h.Del("Content-Encoding")
	} else {
		h.Set("Content-Encoding", out)
	}
	if in != encIdentity && varyAcceptEncoding(h.Values("Vary")) {
		// The coding sent depends on the visitor's Accept-Encoding.
		h.Add("Vary", "Accept-Encoding")
	}
	// The length is not known until the end: the body goes out chunked.
	resp.ContentLength = -1
	h.Del("Content-Length")
	// Digests and ranges of the origin's bytes do not apply to the new body.
	for _, k := range []string{"Content-MD5", "Digest", "Content-Digest", "Repr-Digest", "Accept-Ranges"} {
		h.Del(k)
	}
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		h.Set("ETag", "W/"+etag)
	}
	// The page now carries a per-visitor token: no shared cache may keep it.
	h.Set("Cache-Control", privateCacheControl(h.Get("Cache-Control")))
}

// session returns the visitor's session, continuing the one its cookie
// proves or starting a new one (no valid cookie, idle too long, or older than
// the maximum session length), and the cookie that renews it.
func (p *Proxy) session(resp *http.Response) (collector.Session, *http.Cookie) {
	v, _ := resp.Request.Context().Value(sessionCookieKey{}).(string)
	sess, err := p.cfg.Tokens.ParseSessionCookie(v)
	if err != nil {
		sess = p.cfg.Tokens.NewSession()
	}
	return sess, &http.Cookie{
		Name:     p.cfg.CookieName,
		Value:    p.cfg.Tokens.SessionCookie(sess),
		Path:     "/",
		MaxAge:   int(collector.IdleTimeout.Seconds()),
		HttpOnly: true,
		Secure:   resp.Request.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteLaxMode,
	}
}

// privateCacheControl turns a response's Cache-Control into one no shared
// cache may store, keeping the browser's own caching rules.
func privateCacheControl(cc string) string {
	var keep []string
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(d)
		name, _, _ := strings.Cut(strings.ToLower(d), "=")
		switch name {
		case "", "public", "private", "s-maxage", "proxy-revalidate":
			continue
		}
		keep = append(keep, d)
	}
	return strings.Join(append([]string{"private"}, keep...), ", ")
}

// stripCookies removes the cookies named in names (an empty name matches
// none) from h's Cookie headers, in one pass, and returns their values in
// the same order.
func stripCookies(h http.Header, names [3]string) (values [3]string) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return values
	}
	found := false
	var kept []string
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			k, v, _ := strings.Cut(part, "=")
			if i := cookieIndex(names, k); i >= 0 {
				values[i] = v
				found = true
				continue
			}
			if part != "" {
				kept = append(kept, part)
			}
		}
	}
	if !found {
		return values
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
	return values
}

func cookieIndex(names [3]string, k string) int {
	for i, n := range names {
		if n != "" && n == k {
			return i
		}
	}
	return -1
}

type readCloser struct {
	io.Reader
	io.Closer
}
