package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
)

// The network log: the proxy notes every request of a recorded session —
// one that carries a valid session cookie, and the HTML page request that
// starts a session — with its method, path and query, status, duration
// until the last body byte was written, and the bytes sent. Loupe's own
// routes (Prefix) are never logged. A page's request also carries the page
// view the proxy minted for it; other requests' page view is unknown ("").
//
// Logging never delays the visitor: a wrapper around the ResponseWriter
// counts what passes through, and the finished entry is handed to
// Config.Requests, which must not block (RequestQueue drops when full).

// RequestLogger receives the network log's entries. LogRequest is called
// once per logged request, after its response is finished; it must not
// block.
type RequestLogger interface {
	LogRequest(store.Request)
}

// netlogKey carries a request's *netEntry in its context, so that inject
// can tell which session and page view it gave the response.
type netlogKey struct{}

// netEntry is what the proxy learns about a logged request while serving
// it. Only the request's own goroutine touches it.
type netEntry struct {
	session  string // session id; "" while the request belongs to none
	pageView string // page view minted for an HTML response
}

// noteSession records on ctx's logged request, if any, the session and
// page view an HTML response was given.
func noteSession(ctx context.Context, session, pageView string) {
	if e, ok := ctx.Value(netlogKey{}).(*netEntry); ok {
		e.session, e.pageView = session, pageView
	}
}

func noop() {}

// netlog starts logging r when it may belong to a recorded session. It
// returns the writer and request to serve it with and a function to call
// once the response is finished (also when the handler panics).
func (p *Proxy) netlog(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	if p.cfg.Requests == nil || strings.HasPrefix(r.URL.Path, p.cfg.Prefix) {
		return w, r, noop
	}
	e := &netEntry{}
	if c, err := r.Cookie(p.cfg.CookieName); err == nil {
		if s, err := p.cfg.Tokens.ParseSessionCookie(c.Value); err == nil {
			e.session = s.ID
		}
	}
	if e.session == "" && r.Method != http.MethodGet && r.Method != http.MethodPost {
		return w, r, noop // cannot start a session (see injectable)
	}
	// A visitor who turned Do-Not-Track or Global Privacy Control on after
	// their session began still carries its cookie: where the site honours
	// the signal (Record refuses the request), nothing more is logged.
	if e.session != "" && p.cfg.Record != nil && PrivacySignal(r) && !p.cfg.Record(r) {
		return w, r, noop
	}
	start := time.Now()
	r = r.WithContext(context.WithValue(r.Context(), netlogKey{}, e))
	lw := &logWriter{ResponseWriter: w}
	return lw, r, func() {
		if e.session == "" {
			return // not a recorded session's request
		}
		end := time.Now()
		if !lw.hijacked.IsZero() {
			end = lw.hijacked
		}
		req := store.Request{
			SessionID:  e.session,
			PageViewID: e.pageView,
			At:         start.UnixMilli(),
			Method:     r.Method,
			URL:        clip(r.URL.RequestURI(), store.MaxRequestURL),
			Status:     lw.status,
			DurationMS: end.Sub(start).Milliseconds(),
			Bytes:      lw.bytes,
			Stream:     lw.status == http.StatusSwitchingProtocols || isEventStream(lw.Header()),
		}
		if r.RequestURI != "" && r.RequestURI != "*" {
			req.URL = clip(r.RequestURI, store.MaxRequestURL)
		}
		if e.pageView != "" {
			req.PageURL = clip(publicURL(r), store.MaxRequestURL)
		} else {
			req.PageURL = clip(r.Referer(), store.MaxRequestURL)
		}
		if len(p.cfg.UserRules) > 0 {
			req.UserID = p.cfg.UserRules.FromRequest(r)
		}
		p.cfg.Requests.LogRequest(req)
	}
}

// clip cuts s to n bytes, dropping a split UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func isEventStream(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

// logWriter counts a response's status and body bytes. It implements
// Flush, FlushError and Hijack itself and Unwrap for the rest, so
// http.ResponseController (which ReverseProxy uses to flush streams and to
// hijack WebSocket connections) works through it.
type logWriter struct {
	http.ResponseWriter
	status   int       // final status sent; 0 until one is
	bytes    int64     // body bytes written
	hijacked time.Time // when the connection was hijacked; zero if not
}

func (w *logWriter) WriteHeader(code int) {
	// 1xx answers other than 101 are informational: the final one follows.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err == nil && w.status == 0 {
		w.status = http.StatusOK // flushing sends the header
	}
	return err
}

func (w *logWriter) Flush() { w.FlushError() }

func (w *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		// ReverseProxy hijacks only to switch protocols, and writes the
		// 101 on the connection itself.
		w.hijacked = time.Now()
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return c, brw, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RequestSink is where a RequestQueue delivers the network log: the store
// (store.RequestStore) when the collector runs in process, or a
// collector.RequestClient posting to a remote collector. It must not keep
// reqs after it returns.
type RequestSink interface {
	AppendRequests(ctx context.Context, reqs []store.Request) error
}

// QueueConfig configures a RequestQueue.
type QueueConfig struct {
	// Sink receives the batches. Required.
	Sink RequestSink
	// Size bounds the entries waiting to be sent; when it is full, new
	// entries are dropped and counted. If zero, 10,000.
	Size int
	// Batch is the most entries sent at once; a full batch is sent at
	// once. If zero, 500.
	Batch int
	// Interval is the longest an entry waits for its batch to fill. If
	// zero, 1 s.
	Interval time.Duration
	// Retries is how many times a failed delivery is tried again, after
	// 250 ms, then twice as long each time, before the batch is dropped.
	// If zero, 3; if negative, none. An error wrapping
	// collector.ErrRejected is never retried.
	Retries int
	// Timeout bounds one delivery. If zero, 10 s.
	Timeout time.Duration
	// Logger receives a line per dropped batch and for overflows. If nil,
	// slog.Default().
	Logger *slog.Logger
}

// QueueStats counts a RequestQueue's entries.
type QueueStats struct {
	Sent    int64 // delivered
	Dropped int64 // dropped because the queue was full or closed
	Failed  int64 // dropped after every delivery attempt failed
}

// RequestQueue is a RequestLogger that batches entries in memory and
// delivers them to a sink from one goroutine, every Interval or Batch
// entries. LogRequest never blocks.
type RequestQueue struct {
	cfg  QueueConfig
	ch   chan store.Request
	stop chan struct{}
	done chan struct{}
	once sync.Once

	closed                atomic.Bool
	sent, dropped, failed atomic.Int64
	reported              int64 // dropped count last logged; run's goroutine only
}

var _ RequestLogger = (*RequestQueue)(nil)

// NewRequestQueue starts a queue delivering to cfg.Sink. Close stops it.
func NewRequestQueue(cfg QueueConfig) (*RequestQueue, error) {
	if cfg.Sink == nil {
		return nil, errors.New("request queue needs a sink")
	}
	if cfg.Size <= 0 {
		cfg.Size = 10_000
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q := &RequestQueue{
		cfg:  cfg,
		ch:   make(chan store.Request, cfg.Size),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q, nil
}

// LogRequest queues r, or drops and counts it when the queue is full or
// closed.
func (q *RequestQueue) LogRequest(r store.Request) {
	if q.closed.Load() {
		q.dropped.Add(1)
		return
	}
	select {
	case q.ch <- r:
	default:
		q.dropped.Add(1)
	}
}

// Stats returns the queue's counters.
func (q *RequestQueue) Stats() QueueStats {
	return QueueStats{Sent: q.sent.Load(), Dropped: q.dropped.Load(), Failed: q.failed.Load()}
}

// Close delivers what is queued (one attempt per batch, no more retries),
// stops the queue and waits for it. Entries logged afterwards are dropped.
func (q *RequestQueue) Close() error {
	q.once.Do(func() {
		q.closed.Store(true)
		close(q.stop)
	})
	<-q.done
	return nil
}

func (q *RequestQueue) run() {
	defer close(q.done)
	tick := time.NewTicker(q.cfg.Interval)
	defer tick.Stop()
	batch := make([]store.Request, 0, q.cfg.Batch)
	send := func() {
		if len(batch) > 0 {
			q.deliver(batch)
			batch = batch[:0]
		}
		q.reportDrops()
	}
	for {
		select {
		case r := <-q.ch:
			batch = append(batch, r)
			if len(batch) >= q.cfg.Batch {
				send()
			}
		case <-tick.C:
			send()
		case <-q.stop:
			for {
				select {
				case r := <-q.ch:
					batch = append(batch, r)
					if len(batch) >= q.cfg.Batch {
						send()
					}
				default:
					send()
					return
				}
			}
		}
	}
}

// deliver sends one batch, retrying with backoff, and counts the outcome.
func (q *RequestQueue) deliver(batch []store.Request) {
	wait := 250 * time.Millisecond
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
		err = q.cfg.Sink.AppendRequests(ctx, batch)
		cancel()
		if err == nil {
			q.sent.Add(int64(len(batch)))
			return
		}
		if attempt >= q.cfg.Retries || errors.Is(err, collector.ErrRejected) {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop:
			t.Stop()
			q.fail(batch, fmt.Errorf("closing: %w", err))
			return
		}
		wait *= 2
	}
	q.fail(batch, err)
}

func (q *RequestQueue) fail(batch []store.Request, err error) {
	n := q.failed.Add(int64(len(batch)))
	q.cfg.Logger.Warn("network log entries dropped", "entries", len(batch), "failed_total", n, "err", err)
}

// reportDrops logs overflow drops since the last report.
func (q *RequestQueue) reportDrops() {
	if d := q.dropped.Load(); d > q.reported {
		q.cfg.Logger.Warn("network log queue full; entries dropped", "dropped", d-q.reported, "dropped_total", d)
		q.reported = d
	}
}
