package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"path"
	"strings"

	"github.com/loupe-dev/loupe/collector"
)

// RecordRules say which pages of a site get the recorder. Rules builds the
// decision function for Config.Record from them.
type RecordRules struct {
	// Sampling is the fraction of sessions recorded, from 0 to 1. It is
	// decided from the session id, so a session is recorded on all of its
	// pages or on none. The zero value records no session; 1 records all.
	Sampling float64
	// Include are URL path globs (see PathGlob) of the pages recorded. If
	// empty, every path is.
	Include []string
	// Exclude are URL path globs of pages never recorded; they win over
	// Include.
	Exclude []string
	// IgnorePrivacySignals records visitors who send Do-Not-Track
	// ("DNT: 1") or Global Privacy Control ("Sec-GPC: 1"). If false, their
	// pages pass through untouched: no recorder, no session cookie.
	IgnorePrivacySignals bool
}

// Func compiles the rules into a Config.Record function. A malformed glob or
// a sampling rate outside 0..1 is an error.
func (rr RecordRules) Func() (func(*http.Request) bool, error) {
	if math.IsNaN(rr.Sampling) || rr.Sampling < 0 || rr.Sampling > 1 {
		return nil, fmt.Errorf("sampling %v is not between 0 and 1", rr.Sampling)
	}
	var errs []error
	for _, g := range append(append([]string(nil), rr.Include...), rr.Exclude...) {
		if err := CheckPathGlob(g); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rr.record, nil
}

func (rr RecordRules) record(r *http.Request) bool {
	if !rr.IgnorePrivacySignals && PrivacySignal(r) {
		return false
	}
	p := r.URL.Path
	for _, g := range rr.Exclude {
		if PathGlob(g, p) {
			return false
		}
	}
	if len(rr.Include) > 0 {
		in := false
		for _, g := range rr.Include {
			if in = PathGlob(g, p); in {
				break
			}
		}
		if !in {
			return false
		}
	}
	switch {
	case rr.Sampling <= 0:
		return false
	case rr.Sampling >= 1:
		return true
	}
	return sampled(SessionID(r), rr.Sampling)
}

// PrivacySignal reports whether r's browser asks not to be tracked:
// "DNT: 1" or Global Privacy Control's "Sec-GPC: 1".
func PrivacySignal(r *http.Request) bool {
	return strings.TrimSpace(r.Header.Get("DNT")) == "1" || strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1"
}

// sampled reports whether the session id falls in the recorded fraction:
// the first 53 bits of its FNV-1a hash, as a number in [0, 1), are below
// rate. The same id gives the same answer in every process and release.
func sampled(id string, rate float64) bool {
	if id == "" {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return float64(h.Sum64()>>11)/(1<<53) < rate
}

// CheckPathGlob reports whether g is a well-formed PathGlob pattern.
func CheckPathGlob(g string) error {
	if !strings.HasPrefix(g, "/") {
		return fmt.Errorf("path glob %q does not start with /", g)
	}
	for _, seg := range strings.Split(g[1:], "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("path glob %q: ** must be a whole path segment", g)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("path glob %q: %w", g, err)
		}
	}
	return nil
}

// PathGlob reports whether the URL path p matches the glob g. g is a path
// of segments, each a path.Match pattern ("*" matches within one segment),
// or "**", which matches any number of segments, none included:
// "/checkout/**" matches /checkout, /checkout/ and /checkout/pay/card. A
// malformed pattern matches nothing.
func PathGlob(g, p string) bool {
	if !strings.HasPrefix(g, "/") || !strings.HasPrefix(p, "/") {
		return false
	}
	return matchSegments(strings.Split(g[1:], "/"), strings.Split(p[1:], "/"))
}

func matchSegments(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			rest := g[1:]
			for len(rest) > 0 && rest[0] == "**" {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return true
			}
			for i := 0; i <= len(p); i++ {
				if matchSegments(rest, p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, err := path.Match(g[0], p[0]); err != nil || !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}

// pageSessionKey carries a *pageSession in the request Config.Record sees.
type pageSessionKey struct{}

// sampledOutKey carries the sampled-out cookie's value from the inbound
// request to recording, as sessionCookieKey does the session cookie's.
type sampledOutKey struct{}

// sampledOutCookie names the cookie of a session a Record decision kept
// out: it holds a session cookie value, so that the session's next pages
// are decided the same way, but under another name than the session
// cookie's, which means "recorded" (the network log follows that one).
func (p *Proxy) sampledOutCookie() string { return p.cfg.CookieName + "_out" }

// pageSession resolves the session of the page being decided, only if the
// decision asks for it: the session cookie's, else the sampled-out
// cookie's, else a new one.
type pageSession struct {
	p      *Proxy
	resp   *http.Response
	sess   collector.Session
	asked  bool
	hadOut bool // the session came from the sampled-out cookie
}

func (ps *pageSession) id() string {
	if ps.asked {
		return ps.sess.ID
	}
	ps.asked = true
	ctx, tk := ps.resp.Request.Context(), ps.p.cfg.Tokens
	if v, _ := ctx.Value(sessionCookieKey{}).(string); v != "" {
		if s, err := tk.ParseSessionCookie(v); err == nil {
			ps.sess = s
			return s.ID
		}
	}
	if v, _ := ctx.Value(sampledOutKey{}).(string); v != "" {
		if s, err := tk.ParseSessionCookie(v); err == nil {
			ps.sess, ps.hadOut = s, true
			return s.ID
		}
	}
	ps.sess = tk.NewSession()
	return ps.sess.ID
}

// SessionID returns the id of the session the page answering r belongs
// to, for a Config.Record function: the one the visitor's cookie proves,
// or the new one the proxy starts. A decision that asks for it is one
// about the session, and the visitor keeps the session whatever the
// answer: a recorded page continues it under the session cookie, one that
// is not gets the sampled-out cookie, so that the next page load is
// decided the same way. It returns "" for a request the proxy did not
// hand to Config.Record.
func SessionID(r *http.Request) string {
	ps, _ := r.Context().Value(pageSessionKey{}).(*pageSession)
	if ps == nil {
		return ""
	}
	return ps.id()
}

// recording reports whether resp, an HTML page, is to get the recorder,
// asking Config.Record. The request Record sees is the visitor's as the
// upstream got it, but with the public URL path (without the upstream's
// base path). If the decision asked for the session, it is settled here
// (see SessionID).
func (p *Proxy) recording(resp *http.Response) bool {
	if p.cfg.Record == nil {
		return true
	}
	ps := &pageSession{p: p, resp: resp}
	req := resp.Request
	r := req.WithContext(context.WithValue(req.Context(), pageSessionKey{}, ps))
	u := *req.URL
	u.Path = strings.TrimPrefix(u.Path, strings.TrimSuffix(p.cfg.Upstream.Path, "/"))
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	u.RawPath = ""
	r.URL = &u
	rec := p.cfg.Record(r)
	if !ps.asked {
		return rec
	}
	h := resp.Header
	out := &http.Cookie{
		Name:     p.sampledOutCookie(),
		Value:    p.cfg.Tokens.SessionCookie(ps.sess),
		Path:     "/",
		MaxAge:   int(collector.IdleTimeout.Seconds()),
		HttpOnly: true,
		Secure:   req.Header.Get("X-Forwarded-Proto") == "https",
		SameSite: http.SameSiteLaxMode,
	}
	if rec {
		// inject's own p.session finds this session, new or not, and
		// issues the session cookie; the sampled-out one goes.
		resp.Request = req.WithContext(context.WithValue(req.Context(), sessionCookieKey{}, out.Value))
		if ps.hadOut {
			out.Value, out.MaxAge = "", -1
			h.Add("Set-Cookie", out.String())
		}
		return true
	}
	h.Add("Set-Cookie", out.String())
	h.Set("Cache-Control", privateCacheControl(h.Get("Cache-Control")))
	return false
}
