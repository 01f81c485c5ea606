// Package collector is Loupe's ingest endpoint. It receives batches of rrweb
// events from the recorder, proves which session each belongs to from its
// signed page-view token, validates the events, derives the session summary
// and its rows (clicks, inputs, errors, scroll depth, viewport, page and
// client details) and acknowledges a batch only once the store has
// committed it.
//
// # Wire format (version 1)
//
// The recorder POSTs one batch per request to <prefix>ingest (by default
// /__loupe/ingest) on the site's own origin. The body is a JSON object;
// members may come in any order and unknown members are ignored, so later
// additions stay version 1 as long as they are optional:
//
//	{
//	  "v":      1,     // protocol version; required, must be 1
//	  "token":  "…",   // page-view token from the page's recorder tag; required.
//	                   // Proves the session, its start time and the page view.
//	  "pv":     "…",   // page-view id, 32 lowercase hex digits, made by the
//	                   // recorder for each document it runs in; optional,
//	                   // defaults to the token's page view (a page restored from
//	                   // the browser's cache carries an old token, so the
//	                   // recorder's own id keeps two loads of one cached page apart)
//	  "seq":    0,     // batch number within the page view, an integer from 0;
//	                   // required. A retry resends the same seq; it is stored once.
//	  "events": [ … ], // rrweb events, each {"type", "data", "timestamp"}; required,
//	                   // non-empty, stored byte for byte as received
//	  "page": {        // optional (added in version 1, 2026-11); read on seq 0 only
//	    "referrer": "…", // document.referrer, "" if none; kept up to 2 KB
//	    "language": "…", // navigator.language, e.g. "en-GB"; kept up to 35 bytes
//	    "tab": "…"       // optional (2026-11): 32 hex digits naming the browser
//	                     // tab, the same for every page of the tab
//	                     // (sessionStorage): a new page view ends the
//	                     // unfinished ones of its own tab only (store.Batch.Tab)
//	  }
//	}
//
// Each event must be an object with an integer "type" from 0 to 6 (rrweb's
// EventType), a "timestamp" in Unix milliseconds (a positive number) and a
// "data" object. Within a batch an event's timestamp may precede the latest
// earlier one by at most Limits.MaxBackstep (5 s), and no timestamp may be
// more than Limits.MaxFutureSkew (24 h) ahead of the collector's clock; a
// violation rejects the batch with 400 naming the event's index (from 0).
//
// The body may be gzip-compressed (the recorder uses CompressionStream when
// the browser has it). It is recognised by "Content-Encoding: gzip" or by
// the gzip magic bytes, since navigator.sendBeacon cannot set headers.
//
// # Answers
//
// Every error body is JSON, {"error": "message"}, with a message safe to
// show; the recorder's handling is in brackets.
//
//   - 204 No Content: the batch is durably stored, or was already (a
//     duplicate seq). [next batch]
//   - 400 Bad Request: malformed body, batch or event; the message names the
//     problem and, for an event, its index. [drop the batch]
//   - 401 Unauthorized: token missing, forged or expired (older than
//     TokenTTL, 24 h). [stop recording this page]
//   - 403 Forbidden: a valid token whose session is older than
//     Limits.MaxSessionLength (12 h by default). The proxy starts a new
//     session on the next page load; this page's recording is over. [stop]
//   - 405 Method Not Allowed: not a POST.
//   - 413 Content Too Large: the body as sent is over Limits.MaxBodyBytes, the
//     decompressed batch over Limits.MaxBatchBytes, or one event over
//     Limits.MaxEventBytes; the message gives the limit in bytes. [do not
//     retry; split events above 1 MiB before sending]
//   - 415 Unsupported Media Type: a Content-Encoding other than gzip.
//   - 429 Too Many Requests: the session or the client address is over its
//     rate (Limits); Retry-After gives the whole seconds to wait. [retry
//     after that]
//   - 503 Service Unavailable: the store did not commit the batch;
//     Retry-After gives seconds. [retry with backoff]
//
// Checks run in this order: method, client rate, body size, decoding and
// event validation, token, session length, session rate, store.
//
// # Assets
//
// The batch also records the absolute URLs of the stylesheets, fonts and
// images its events reference (archive.AssetURLs, at most MaxAssetURLs),
// which asset retention keeps; once the batch is stored they are handed to
// Collector.Assets, which fetches into the archive what the proxy never
// served.
//
// # Derived rows
//
// One pass over the body validates it and fills the store.Batch summary,
// without decoding event data the collector does not need:
//
//   - Clicks: IncrementalSnapshot (3) events of source MouseInteraction (2)
//     and type Click (2): time, x, y (viewport CSS pixels) and target node id.
//   - Inputs: source Input (5): time and node id; the value is never read.
//   - Errors: Custom (5) events tagged "loupe.error" whose payload is
//     {message, stack, source, line, column, kind: "error"|"rejection"}, and
//     Plugin (6) events of "rrweb/console@1" at level "error" (Kind
//     "console"; message from the logged arguments, stack from the trace).
//     Messages are cut to 1 KB, stacks to 8 KB, sources to 2 KB.
//   - ScrollDepth: the largest document scroll offset (source Scroll (3) on
//     the document node, the full snapshot's root id or rrweb's 1) plus the
//     viewport height then known (from the Meta event or a ViewportResize,
//     source 4); a Meta event alone counts as depth = its height.
//   - ViewportW/H and URL: the batch's first Meta (4) event.
//   - Page (seq 0 only): the wire "page" member plus the utm_source,
//     utm_medium, utm_campaign, utm_term and utm_content parameters of URL.
//   - Signal facts (signals.go): the recorder's Custom events
//     "loupe/click" {node, x, y, target, field, submit} (a readable description
//     of the clicked element, sent right after rrweb's click event; never
//     an input's value), "loupe/request" {start} (a fetch/XHR start, Unix
//     ms, from Resource Timing) and "loupe/pagehide" {}, plus the times of
//     DOM mutations, inputs and scrolls after each click. The store turns
//     them into signals (store.DeriveSignals).
//   - User ids (user.go): a Custom event "loupe/user" {user} carries the
//     text of the element a site's dom: rule names; the first one of a batch
//     (cut to MaxUserID bytes) becomes the session's user id unless it has
//     one (UserSetter).
//
// # Network log (version 1)
//
// A proxy whose collector runs elsewhere (loupe proxy --collector URL) posts
// its network log (see package proxy) to the collector's own listener,
// never to the site's origin (RequestsHandler, RequestClient):
//
//	POST /__loupe/requests
//	Content-Type: application/json
//	X-Loupe-Signature: t=<unix seconds>,mac=<base64url>
//
//	{
//	  "v": 1,             // required, must be 1
//	  "requests": [       // required, 1 to MaxLoggedRequests entries
//	    {
//	      "session_id":   "…", // 32 lowercase hex digits; required
//	      "page_view_id": "…", // page view the proxy minted for an HTML
//	                           // response, 32 hex digits; "" or absent otherwise
//	      "at":           0,   // when the request arrived, Unix ms; required, > 0
//	      "method":       "GET",
//	      "url":          "/path?query", // as the visitor asked; at most 2 KiB
//	      "status":       200, // status sent; 101 for a protocol switch,
//	                           // 0 for no response
//	      "duration_ms":  0,   // arrival to last body byte written
//	      "bytes":        0,   // response body bytes sent
//	      "page_url":     "…", // absolute URL of the page (its Referer); optional
//	      "user_id":      "…", // user id the proxy's rules found; optional
//	      "stream":       false // WebSocket or event stream: never slow; optional
//	    }
//	  ]
//	}
//
// The signature proves the proxy holds the deployment's shared secret: mac
// is the base64url (unpadded) of the first 18 bytes of HMAC-SHA256 keyed
// with the secret over "requests1", a zero byte, the decimal t, "." and the
// body as sent. A t more than RequestsSkew away from the collector's clock
// is refused, which bounds replays; delivery is at least once (a retried
// batch whose answer was lost is stored twice).
//
// Answers: 204 stored; 400 malformed body or entry (the message names the
// entry's index) and 401 missing, forged or stale signature, neither worth
// retrying; 405 not a POST; 413 over MaxRequestsBody or MaxLoggedRequests;
// 503 the store failed, retry.
//
// # Client details
//
// The client address is the request's peer address, or, when the peer is
// in TrustedProxies, the right-most address of X-Forwarded-For that is not
// itself trusted. The store receives a keyed hash of it (Tokens.HashIP), the
// address itself only when KeepIP is set, and its country when GeoIP is set.
// Browser, version, OS and device class (desktop, mobile, tablet, bot) come
// from the User-Agent, of which the first 512 bytes are kept and parsed.
package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/store"
)

// AssetWanter is told the asset URLs of every batch the store committed,
// so that assets the proxy never served (other origins, a page's CDN
// fonts) are fetched into the archive (*archive.Archiver). Want must not
// block.
type AssetWanter interface {
	Want(urls []string)
}

// MaxAssetURLs bounds the asset URLs one batch records; a page
// referencing more keeps the first ones in event order.
const MaxAssetURLs = 500

// Appender is the part of the store the collector writes to. The batch's
// Events lie in a buffer the collector reuses once AppendBatch returns: an
// Appender that keeps them must copy them.
type Appender interface {
	AppendBatch(ctx context.Context, b *store.Batch) error
}

// Collector serves the ingest endpoint. Set its fields before the first
// request and do not change them afterwards.
type Collector struct {
	Store  Appender // required
	Tokens *Tokens  // required; verifies tokens and keys IP hashes

	// Limits bounds sizes, rates and session length; the zero value means
	// the documented defaults.
	Limits Limits

	// TrustedProxies are the peers whose X-Forwarded-For is believed (load
	// balancers, the proxy nodes in front of the collector). If empty, the
	// peer address is the client.
	TrustedProxies []netip.Prefix
	// KeepIP stores the client address in Client.IP. If false, only its
	// keyed hash is stored.
	KeepIP bool
	// GeoIP finds the client's country. If nil, Client.Country is "".
	GeoIP CountryLookup
	// Assets is told each stored batch's asset URLs. If nil, archiving is
	// off: batches are not scanned for asset URLs (a quarter of ingest's
	// CPU) and Batch.AssetURLs stays empty.
	Assets AssetWanter
	// ConversionURL is a glob (see ConvertedURL) a page URL reaching
	// which makes the session converted, lowering its friction score; ""
	// for none.
	ConversionURL string

	// Logger receives one line per failed request. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time

	init     sync.Once
	sessions *Limiter[string]
	clients  *Limiter[netip.Addr]
	uaParser *userAgents
}

// uaCacheSize is how many distinct User-Agent strings stay parsed.
const uaCacheSize = 4096

func (c *Collector) setup() {
	c.init.Do(func() {
		l := &c.Limits
		keys := orDefault(l.LimiterKeys, DefaultLimiterKeys)
		c.sessions = NewLimiter[string](orDefault(l.SessionRate, DefaultSessionRate), orDefault(l.SessionBurst, DefaultSessionBurst), keys)
		c.clients = NewLimiter[netip.Addr](orDefault(l.ClientRate, DefaultClientRate), orDefault(l.ClientBurst, DefaultClientBurst), keys)
		c.uaParser = newUserAgents(uaCacheSize)
	})
}

func (c *Collector) userAgents() *userAgents {
	c.setup()
	return c.uaParser
}

// httpError is an error with a status and a message safe for the client.
type httpError struct {
	status     int
	msg        string
	retryAfter time.Duration // for 429 and 503
	err        error         // for the log; may be nil
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.err }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// storeRetryAfter is the Retry-After of a 503.
const storeRetryAfter = 5 * time.Second

// ServeHTTP handles one ingest request.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := c.ingest(r)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, msg: "internal error", err: err}
	}
	c.logger().Warn("ingest rejected", "status", he.status, "err", err, "remote", r.RemoteAddr)
	h := w.Header()
	if he.status == http.StatusMethodNotAllowed {
		h.Set("Allow", "POST")
	}
	if he.retryAfter > 0 {
		h.Set("Retry-After", RetryAfter(he.retryAfter))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(he.status)
	json.NewEncoder(w).Encode(map[string]string{"error": he.msg})
}

func (c *Collector) ingest(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed; POST a batch", r.Method)
	}
	c.setup()
	now := c.now()
	ip := ClientIP(r, c.TrustedProxies)
	if ip.IsValid() {
		if d := c.clients.Wait(ClientKey(ip), now); d > 0 {
			return &httpError{status: http.StatusTooManyRequests, msg: "too many requests from this address; retry later", retryAfter: d}
		}
	}
	body, release, err := c.readBody(r)
	if err != nil {
		return err
	}
	defer release() // nothing below keeps body or a slice of it past AppendBatch
	wb, err := decode(body, &c.Limits, now)
	if err != nil {
		return err
	}
	if wb.token == "" {
		return errorf(http.StatusUnauthorized, "missing token")
	}
	tok, err := c.Tokens.ParsePageViewToken(wb.token)
	if err != nil {
		return &httpError{status: http.StatusUnauthorized, msg: "invalid or expired token", err: err}
	}
	if !wb.hasSeq {
		return errorf(http.StatusBadRequest, "seq must be a non-negative integer")
	}
	if max := c.Limits.maxSessionLength(); now.Sub(tok.SessionStart) > max {
		return errorf(http.StatusForbidden, "session is older than the maximum session length of %v; a new page load starts a new session", max)
	}
	if d := c.sessions.Wait(tok.SessionID, now); d > 0 {
		return &httpError{status: http.StatusTooManyRequests, msg: "too many batches for this session; retry later", retryAfter: d}
	}

	b := &wb.batch
	b.SessionID, b.PageViewID, b.Seq = tok.SessionID, tok.ID, wb.seq
	if wb.pv != "" {
		b.PageViewID = wb.pv
	}
	for i := range b.Clicks {
		b.Clicks[i].PageViewID = b.PageViewID
	}
	for i := range b.Inputs {
		b.Inputs[i].PageViewID = b.PageViewID
	}
	for i := range b.Errors {
		b.Errors[i].PageViewID = b.PageViewID
	}
	if b.Seq == 0 && (wb.page != nil || b.URL != "") {
		b.Page = wb.page
		if b.Page == nil {
			b.Page = &store.PageInfo{}
		}
		utm(b.Page, b.URL)
	}
	ua := r.UserAgent()
	b.UserAgent = cut(ua, maxUserAgent)
	b.Client = c.enrich(ip, b.UserAgent)
	b.ReceivedAt = now
	b.Signals.Converted = ConvertedURL(c.ConversionURL, b.URL)

	if c.Assets != nil {
		b.AssetURLs = c.assetURLs(b.Events)
	}

	switch err := c.Store.AppendBatch(r.Context(), b); {
	case err == nil:
		if c.Assets != nil && len(b.AssetURLs) > 0 {
			c.Assets.Want(b.AssetURLs)
		}
		c.setUser(r.Context(), b.SessionID, wb.user)
		return nil
	case errors.Is(err, store.ErrDuplicate):
		c.setUser(r.Context(), b.SessionID, wb.user)
		return nil
	case r.Context().Err() != nil:
		return &httpError{status: 499, msg: "client went away", err: err}
	default:
		return &httpError{status: http.StatusServiceUnavailable, msg: "storage unavailable, retry later", retryAfter: storeRetryAfter, err: err}
	}
}

// assetURLs returns the batch's asset references, at most MaxAssetURLs.
// The batch is valid already: a reference the archive cannot read costs
// the replay an archived copy, never the visitor the batch.
func (c *Collector) assetURLs(events []byte) []string {
	urls, err := archive.AssetURLs(events)
	if err != nil {
		c.logger().Debug("asset urls", "err", err)
	}
	if len(urls) > MaxAssetURLs {
		urls = urls[:MaxAssetURLs:MaxAssetURLs]
	}
	return urls
}

// readBody reads the request body within the limits, decompressing gzip.
// The body is in a pooled buffer: release returns it, after which the
// body and everything aliasing it must no longer be used.
func (c *Collector) readBody(r *http.Request) (body []byte, release func(), err error) {
	maxBody, maxBatch := c.Limits.maxBodyBytes(), c.Limits.maxBatchBytes()
	if r.ContentLength > maxBody {
		return nil, nil, errorf(http.StatusRequestEntityTooLarge, "body of %d bytes exceeds the limit of %d bytes", r.ContentLength, maxBody)
	}
	rawBuf := getBuffer()
	if r.ContentLength > 0 {
		rawBuf.Grow(int(r.ContentLength) + 1) // +1: ReadFrom then sees EOF without growing
	}
	_, err = rawBuf.ReadFrom(io.LimitReader(r.Body, maxBody+1))
	raw := rawBuf.Bytes()
	if err != nil {
		putBuffer(rawBuf)
		return nil, nil, &httpError{status: http.StatusBadRequest, msg: "read body", err: err}
	}
	if int64(len(raw)) > maxBody {
		putBuffer(rawBuf)
		return nil, nil, errorf(http.StatusRequestEntityTooLarge, "body exceeds the limit of %d bytes", maxBody)
	}
	switch enc := r.Header.Get("Content-Encoding"); {
	case enc == "gzip" || (enc == "" && len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b):
		out, err := gunzip(raw, maxBatch)
		putBuffer(rawBuf)
		if err != nil {
			return nil, nil, err
		}
		return out.Bytes(), func() { putBuffer(out) }, nil
	case enc == "" || enc == "identity":
		if int64(len(raw)) > maxBatch {
			putBuffer(rawBuf)
			return nil, nil, errorf(http.StatusRequestEntityTooLarge, "batch exceeds the limit of %d bytes", maxBatch)
		}
		return raw, func() { putBuffer(rawBuf) }, nil
	default:
		putBuffer(rawBuf)
		return nil, nil, errorf(http.StatusUnsupportedMediaType, "content encoding %q not supported; use gzip or none", enc)
	}
}

// gunzip decompresses a gzip body of at most maxBatch bytes into a pooled
// buffer.
func gunzip(raw []byte, maxBatch int64) (*bytes.Buffer, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(raw))
	} else {
		err = zr.Reset(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, msg: "body is not valid gzip", err: err}
	}
	defer gzipReaders.Put(zr)
	// rrweb JSON compresses about 5-10x: size the buffer once rather
	// than let it double from 512 bytes.
	buf := getBuffer()
	buf.Grow(int(min(int64(len(raw))*8, maxBatch+1)))
	_, err = buf.ReadFrom(io.LimitReader(zr, maxBatch+1))
	if int64(buf.Len()) > maxBatch {
		putBuffer(buf)
		return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed batch exceeds the limit of %d bytes", maxBatch)
	}
	if err != nil {
		putBuffer(buf)
		return nil, &httpError{status: http.StatusBadRequest, msg: "body is not valid gzip", err: err}
	}
	return buf, nil
}

// Pools of request body buffers and gzip readers (a gzip reader's
// decompressor holds ~40 KB of window and tables).
var (
	gzipReaders sync.Pool // of *gzip.Reader
	buffers     sync.Pool // of *bytes.Buffer
)

// maxPooledBuffer: larger buffers (rare, huge batches) are left to the GC
// rather than kept in the pool.
const maxPooledBuffer = 4 << 20

func getBuffer() *bytes.Buffer {
	if b, ok := buffers.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	buffers.Put(b)
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
