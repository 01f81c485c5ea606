// Package store holds Loupe's domain types and the storage contracts the
// other stages depend on. It has no dependencies of its own; each backend
// (store/sqlite, later store/postgres) is its own package and implements
// these interfaces.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned when a requested session does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned by AppendBatch when the batch's page view and
// sequence number were already stored. Callers treat it as success: the
// recorder retried a batch whose acknowledgement it never saw.
var ErrDuplicate = errors.New("duplicate batch")

// Batch is one upload of rrweb events from one page view, as the collector
// hands it to the store after validation.
type Batch struct {
	SessionID  string // proven by the batch's token
	PageViewID string // proven by the batch's token
	Seq        int    // sequence number within the page view, from 0

	// Events is the batch's rrweb events as a JSON array, exactly as
	// received (after transport decompression). The store compresses it.
	Events []byte

	// Summary of the events, derived by the collector from Events.
	EventCount int
	FirstTS    int64  // earliest event timestamp, Unix ms
	LastTS     int64  // latest event timestamp, Unix ms
	Clicks     int    // rrweb MouseInteraction/Click events
	URL        string // href of the batch's first Meta event, or "" if none

	UserAgent  string    // request User-Agent at ingest
	ReceivedAt time.Time // when the collector received the batch
}

// Session is the summary of one visitor session. It is kept current as
// batches arrive; it never requires replaying events.
type Session struct {
	ID         string
	StartedAt  time.Time // timestamp of the session's first event
	EndedAt    time.Time // timestamp of the session's last event
	PageCount  int       // page views that sent at least one event
	ClickCount int
	EventCount int
	EntryURL   string // URL of the first page view
	UserAgent  string // User-Agent of the first batch
	// Bytes is the size of the session's events as received (uncompressed
	// JSON); StoredBytes is what the store holds for them.
	Bytes       int64
	StoredBytes int64
}

// Duration is the time from the first to the last event.
func (s *Session) Duration() time.Duration { return s.EndedAt.Sub(s.StartedAt) }

// SessionFilter selects sessions for listing. The zero value lists the
// newest sessions up to a backend default limit.
type SessionFilter struct {
	Limit  int // 0 means 50; at most 1000
	Offset int
}

// Store is what the collector and the replay server need from storage.
type Store interface {
	// AppendBatch durably stores one batch and updates the session summary
	// in the same transaction. It returns ErrDuplicate, storing nothing,
	// if the page view's sequence number is already stored.
	AppendBatch(ctx context.Context, b *Batch) error

	// Sessions lists sessions, newest first.
	Sessions(ctx context.Context, f SessionFilter) ([]*Session, error)

	// Session returns one session or ErrNotFound.
	Session(ctx context.Context, id string) (*Session, error)

	// WriteEvents streams the session's events, in time order, to w as one
	// JSON array, decompressing one stored chunk at a time. It returns
	// ErrNotFound, writing nothing, if the session does not exist.
	WriteEvents(ctx context.Context, id string, w io.Writer) error

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	Close() error
}
