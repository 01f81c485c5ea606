// Package collector is Loupe's ingest endpoint. It receives batches of rrweb
// events from the recorder, proves which session each belongs to from its
// signed page-view token, validates the events, derives the session summary
// and acknowledges a batch only once the store has committed it.
//
// # Wire format (version 1)
//
// The recorder POSTs one batch per request to <prefix>ingest (by default
// /__loupe/ingest) on the site's own origin. The body is a JSON object:
//
//	{
//	  "v":      1,          // protocol version; required, must be 1
//	  "token":  "…",        // page-view token from the page's recorder tag; required
//	  "pv":     "…",        // page-view id, 32 hex digits, made by the recorder for
//	                        // each document it runs in; optional, defaults to the
//	                        // token's page view (a page restored from the browser's
//	                        // cache carries an old token, so the recorder's own id
//	                        // keeps two loads of one cached page apart)
//	  "seq":    0,          // batch number within the page view, from 0; a retry
//	                        // resends the same seq and is stored once
//	  "events": [ … ]       // rrweb events, each {"type", "data", "timestamp"}
//	}
//
// Each event must be an object with an integer "type" from 0 to 6 (rrweb's
// EventType), a positive numeric "timestamp" in Unix milliseconds, and a
// "data" object. Events are stored as received.
//
// The body may be gzip-compressed (the recorder uses CompressionStream when
// the browser has it). It is recognised by "Content-Encoding: gzip" or by
// the gzip magic bytes, since navigator.sendBeacon cannot set headers.
//
// Answers: 204 once the batch is durable (also for a duplicate seq, which is
// not stored again); 400 for malformed input, with a message; 401 for a
// missing, forged or expired token; 405 for a method other than POST; 413
// above MaxBodyBytes (compressed) or MaxEventsBytes (decompressed), naming the
// limit; 503 while the store is unavailable. Error bodies are JSON:
// {"error": "message"}.
package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Default limits.
const (
	DefaultMaxBodyBytes   = 4 << 20  // compressed request body
	DefaultMaxEventsBytes = 32 << 20 // decompressed request body
)

// Appender is the part of the store the collector writes to.
type Appender interface {
	AppendBatch(ctx context.Context, b *store.Batch) error
}

// Collector serves the ingest endpoint.
type Collector struct {
	Store  Appender
	Tokens *Tokens

	// MaxBodyBytes bounds the request body as sent. If zero,
	// DefaultMaxBodyBytes is used.
	MaxBodyBytes int64
	// MaxEventsBytes bounds the body after decompression. If zero,
	// DefaultMaxEventsBytes is used.
	MaxEventsBytes int64

	// Logger receives one line per failed request. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// wireBatch is the request body; see the package comment.
type wireBatch struct {
	V      int               `json:"v"`
	Token  string            `json:"token"`
	PV     string            `json:"pv"`
	Seq    *int              `json:"seq"`
	Events []json.RawMessage `json:"events"`
}

// wireEvent is the part of an rrweb event the collector validates and reads.
type wireEvent struct {
	Type      *int            `json:"type"`
	Timestamp *float64        `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// rrweb event types and sources the summary needs (see rrweb's EventType,
// IncrementalSource and MouseInteractions enums).
const (
	eventIncremental      = 3
	eventMeta             = 4
	maxEventType          = 6
	sourceMouseInteract   = 2
	mouseInteractionClick = 2
)

// httpError is an error with a status and a message safe for the client.
type httpError struct {
	status int
	msg    string
	err    error // for the log; may be nil
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
	if he.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "POST")
	}
	if he.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(he.status)
	json.NewEncoder(w).Encode(map[string]string{"error": he.msg})
}

func (c *Collector) ingest(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed; POST a batch", r.Method)
	}
	body, err := c.readBody(r)
	if err != nil {
		return err
	}
	b, err := c.decode(body)
	if err != nil {
		return err
	}
	b.UserAgent = r.UserAgent()
	b.ReceivedAt = c.now()
	switch err := c.Store.AppendBatch(r.Context(), b); {
	case err == nil, errors.Is(err, store.ErrDuplicate):
		return nil
	case r.Context().Err() != nil:
		return &httpError{status: 499, msg: "client went away", err: err}
	default:
		return &httpError{status: http.StatusServiceUnavailable, msg: "storage unavailable, retry later", err: err}
	}
}

// readBody reads the request body within the limits, decompressing gzip.
func (c *Collector) readBody(r *http.Request) ([]byte, error) {
	maxBody := c.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	maxEvents := c.MaxEventsBytes
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEventsBytes
	}
	if r.ContentLength > maxBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body of %d bytes exceeds the limit of %d bytes", r.ContentLength, maxBody)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, msg: "read body", err: err}
	}
	if int64(len(raw)) > maxBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body exceeds the limit of %d bytes", maxBody)
	}
	switch enc := r.Header.Get("Content-Encoding"); {
	case enc == "gzip" || (enc == "" && len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b):
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, &httpError{status: http.StatusBadRequest, msg: "body is not valid gzip", err: err}
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxEvents+1))
		if err != nil {
			return nil, &httpError{status: http.StatusBadRequest, msg: "body is not valid gzip", err: err}
		}
		if int64(len(out)) > maxEvents {
			return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed body exceeds the limit of %d bytes", maxEvents)
		}
		return out, nil
	case enc == "" || enc == "identity":
		return raw, nil
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "content encoding %q not supported; use gzip or none", enc)
	}
}

// decode parses and validates a batch and derives its summary.
func (c *Collector) decode(body []byte) (*store.Batch, error) {
	var wb wireBatch
	if err := json.Unmarshal(body, &wb); err != nil {
		return nil, &httpError{status: http.StatusBadRequest, msg: "body is not a JSON batch", err: err}
	}
	if wb.V != 1 {
		return nil, errorf(http.StatusBadRequest, "unsupported protocol version %d; want 1", wb.V)
	}
	if wb.Token == "" {
		return nil, errorf(http.StatusUnauthorized, "missing token")
	}
	sid, pv, err := c.Tokens.ParsePageViewToken(wb.Token)
	if err != nil {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "invalid or expired token", err: err}
	}
	if wb.PV != "" {
		if !validID(wb.PV) {
			return nil, errorf(http.StatusBadRequest, "pv must be 32 hex digits")
		}
		pv = wb.PV
	}
	if wb.Seq == nil || *wb.Seq < 0 {
		return nil, errorf(http.StatusBadRequest, "seq must be a non-negative integer")
	}
	if len(wb.Events) == 0 {
		return nil, errorf(http.StatusBadRequest, "events must be a non-empty array")
	}
	b := &store.Batch{SessionID: sid, PageViewID: pv, Seq: *wb.Seq, EventCount: len(wb.Events)}
	var buf bytes.Buffer
	buf.Grow(len(body))
	buf.WriteByte('[')
	for i, raw := range wb.Events {
		var ev wireEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, errorf(http.StatusBadRequest, "event %d is not an object", i)
		}
		if ev.Type == nil || *ev.Type < 0 || *ev.Type > maxEventType {
			return nil, errorf(http.StatusBadRequest, "event %d has no valid type", i)
		}
		if ev.Timestamp == nil || *ev.Timestamp <= 0 {
			return nil, errorf(http.StatusBadRequest, "event %d has no valid timestamp", i)
		}
		if len(ev.Data) == 0 || ev.Data[0] != '{' {
			return nil, errorf(http.StatusBadRequest, "event %d has no data object", i)
		}
		ts := int64(*ev.Timestamp)
		if b.FirstTS == 0 || ts < b.FirstTS {
			b.FirstTS = ts
		}
		if ts > b.LastTS {
			b.LastTS = ts
		}
		summarize(b, *ev.Type, ts, ev.Data)
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(raw)
	}
	buf.WriteByte(']')
	b.Events = buf.Bytes()
	return b, nil
}

// summarize adds what one event contributes to the session summary.
func summarize(b *store.Batch, typ int, ts int64, data json.RawMessage) {
	switch typ {
	case eventMeta:
		if b.URL != "" {
			return
		}
		var m struct {
			Href string `json:"href"`
		}
		if json.Unmarshal(data, &m) == nil {
			b.URL = m.Href
		}
	case eventIncremental:
		var m struct {
			Source *int `json:"source"`
			Type   *int `json:"type"`
		}
		if json.Unmarshal(data, &m) == nil && m.Source != nil && m.Type != nil &&
			*m.Source == sourceMouseInteract && *m.Type == mouseInteractionClick {
			b.Clicks = append(b.Clicks, store.Click{PageViewID: b.PageViewID, At: ts})
		}
	}
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
