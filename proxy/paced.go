package proxy

import (
	"context"
	"net/http"
	"sync"
)

// pacedWriter is the visitor's side of a proxied response, which a
// rewritten body (stream) may pace.
//
// httputil.ReverseProxy flushes a body of unknown length after every write,
// and sends the header on its own as soon as it is written. A rewritten
// page's length is never known, so each page went out as a write for the
// header and, per piece of 32 KiB, three more (the buffered start of the
// chunk, the rest of it, and its end on the flush). Once inject gives the
// response a stream, the writer ignores ReverseProxy's flushes until the
// body ends, and flushes where the stream asks instead: when a read of
// the origin has waited stallFlush, up to what the rewriter had produced
// by then (flushingReader). Otherwise the page goes out as net/http's
// buffer fills and when the handler returns, its header with its first
// bytes.
//
// The stream asks from its own goroutines while ReverseProxy writes from
// the handler's: mu orders the two, and the stream never touches the
// writer once the handler has returned (finish).
type pacedWriter struct {
	http.ResponseWriter

	mu      sync.Mutex
	paced   bool  // a stream decides when to flush
	done    bool  // the handler returned
	written int64 // body bytes written
	flushAt int64 // flush once written reaches it; -1: no flush pending
}

type pacedKey struct{}

// pacer returns the pacedWriter of the response to the request of ctx,
// or nil.
func pacer(ctx context.Context) *pacedWriter {
	w, _ := ctx.Value(pacedKey{}).(*pacedWriter)
	return w
}

// forward sends r upstream through ReverseProxy, with a writer that a
// rewritten body can pace.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	pw := &pacedWriter{ResponseWriter: w, flushAt: -1}
	defer pw.finish()
	p.rp.ServeHTTP(pw, r.WithContext(context.WithValue(r.Context(), pacedKey{}, pw)))
}

func (w *pacedWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	if err == nil && w.flushAt >= 0 && w.written >= w.flushAt {
		w.flushAt = -1
		err = w.flush()
	}
	return n, err
}

// FlushError flushes, unless a stream paces the body.
func (w *pacedWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paced {
		return nil
	}
	return w.flush()
}

func (w *pacedWriter) Flush() { w.FlushError() }

// Unwrap lets http.ResponseController reach the writer's other methods
// (Hijack, deadlines).
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *pacedWriter) flush() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// pace hands the flushes to the stream about to be the body.
func (w *pacedWriter) pace() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paced = true
}

// unpace gives the flushes back: the stream has ended, and ReverseProxy
// may flush to send trailers.
func (w *pacedWriter) unpace() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paced, w.flushAt = false, -1
}

// flushTo sends the header and the body's first n bytes to the visitor:
// now if they are written, or as soon as they are.
func (w *pacedWriter) flushTo(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done || !w.paced:
	case w.written >= n:
		w.flushAt = -1
		w.flush() // an error shows on the next write
	default:
		w.flushAt = n
	}
}

// finish is called when the handler returns: from then on the writer is
// not to be used.
func (w *pacedWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
