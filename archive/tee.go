package archive

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// Tee arranges for resp's body to be archived as it streams to the
// visitor, if the policy allows. It replaces resp.Body with a reader that
// returns the origin's bytes unchanged, with the same timing, and copies
// them into a pooled buffer of at most Policy.MaxBytes. When the reader
// reaches a clean EOF the buffer is queued for a background worker
// without waiting; a full queue drops it. A read error, a body over the
// bound, or Close before EOF discards it. Tee never fails: at worst a
// body is not archived. Call it once per response, before the body is
// read.
func (a *Archiver) Tee(resp *http.Response) {
	if a == nil || resp == nil || resp.Body == nil || resp.Body == http.NoBody || a.closed.Load() {
		return
	}
	if a.policy.policySkip(resp) != "" {
		return
	}
	raw, ok := a.cfg.URL(resp)
	if !ok {
		return
	}
	u, err := NormalizeURL(raw)
	if err != nil {
		return
	}
	codings, _ := decodable(resp.Header.Values("Content-Encoding"))
	buf, _ := a.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	resp.Body = &teeBody{
		rc: resp.Body,
		a:  a,
		c: &capture{
			url:         u,
			contentType: resp.Header.Get("Content-Type"),
			encodings:   codings,
			buf:         buf,
			at:          a.now(),
		},
		max: a.policy.maxBytes(),
	}
}

// teeBody is the visitor's body with a copy on the side.
type teeBody struct {
	rc  io.ReadCloser
	a   *Archiver
	max int64

	mu sync.Mutex // guards c: Close may come from another goroutine than Read
	c  *capture   // nil once handed off or discarded
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	if c := t.c; c != nil {
		switch {
		case int64(c.buf.Len()+n) > t.max:
			t.teeDiscard()
		case err == nil || err == io.EOF:
			c.buf.Write(p[:n])
			if err == io.EOF {
				t.c = nil
				c.body = c.buf.Bytes()
				t.a.teeEnqueue(c)
			}
		default:
			t.teeDiscard()
		}
	}
	t.mu.Unlock()
	return n, err
}

func (t *teeBody) Close() error {
	t.mu.Lock()
	if t.c != nil {
		t.teeDiscard()
	}
	t.mu.Unlock()
	return t.rc.Close()
}

// teeDiscard returns the buffer to the pool; t.mu is held.
func (t *teeBody) teeDiscard() {
	t.a.release(t.c)
	t.c = nil
}

// teeEnqueue hands a complete body to the workers without blocking.
func (a *Archiver) teeEnqueue(c *capture) {
	if a.closed.Load() {
		a.dropped.Add(1)
		a.release(c)
		return
	}
	select {
	case a.queue <- c:
	default:
		a.dropped.Add(1)
		a.release(c)
	}
}
