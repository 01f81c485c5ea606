// Package store holds Loupe's domain types and the storage contracts the
// other stages depend on. It has no dependencies of its own; each backend
// (store/sqlite, later store/postgres) is its own package and implements
// these interfaces.
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned when a requested session does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned by AppendBatch when the batch's page view and
// sequence number were already stored. Callers treat it as success: the
// recorder retried a batch whose acknowledgement it never saw.
var ErrDuplicate = errors.New("duplicate batch")

// Batch is one upload of rrweb events from one page view, as the collector
// hands it to the store after validation. Everything but the events is
// derived by the collector; the store writes the events and every derived
// row in one transaction.
type Batch struct {
	SessionID  string // proven by the batch's token
	PageViewID string // proven by the batch's token, or made by the recorder
	Seq        int    // sequence number within the page view, from 0

	// Events is the batch's rrweb events as a JSON array, exactly as
	// received (after transport decompression). The store compresses it.
	Events []byte

	// Summary of the events, derived by the collector from Events.
	EventCount int
	FirstTS    int64  // earliest event timestamp, Unix ms
	LastTS     int64  // latest event timestamp, Unix ms
	URL        string // href of the batch's first Meta event, or "" if none

	// Derived rows, in event order. len(Clicks) is the batch's click count.
	Clicks []Click
	Inputs []Input
	Errors []JSError
	// ScrollDepth is the deepest point of the page seen in this batch: the
	// largest scroll offset plus the viewport height, in CSS pixels; 0 if
	// the batch has no scroll or Meta event.
	ScrollDepth int
	// Viewport of the batch's first Meta event, CSS pixels; 0 if none.
	ViewportW, ViewportH int
	// Signals holds what the signal rules need beyond the rows above; the
	// store derives the batch's signals from it (DeriveSignals).
	Signals SignalFacts

	// Page holds what the recorder says about its document; set on the
	// first batch of a page view (seq 0), nil otherwise.
	Page *PageInfo

	// AssetURLs are the absolute URLs of stylesheets, fonts and images the
	// batch's events reference (attributes, srcset, inline styles, inlined
	// CSS), normalized with archive.NormalizeURL, without duplicates. The
	// store records them as the session's references, which asset
	// retention keeps.
	AssetURLs []string

	UserAgent  string    // request User-Agent at ingest
	Client     Client    // enrichment of the request
	ReceivedAt time.Time // when the collector received the batch
}

// Validate checks what every backend relies on before storing a batch.
func (b *Batch) Validate() error {
	switch {
	case b == nil:
		return errors.New("nil batch")
	case b.SessionID == "":
		return errors.New("empty session id")
	case b.PageViewID == "":
		return errors.New("empty page view id")
	case b.Seq < 0:
		return fmt.Errorf("negative seq %d", b.Seq)
	case b.EventCount < 0:
		return errors.New("negative count")
	}
	// Derived rows belong to the batch's page view; "" stands for it.
	for i, c := range b.Clicks {
		if c.PageViewID != "" && c.PageViewID != b.PageViewID {
			return fmt.Errorf("click %d: page view %q is not the batch's", i, c.PageViewID)
		}
	}
	for i, in := range b.Inputs {
		if in.PageViewID != "" && in.PageViewID != b.PageViewID {
			return fmt.Errorf("input %d: page view %q is not the batch's", i, in.PageViewID)
		}
	}
	for i, e := range b.Errors {
		if e.PageViewID != "" && e.PageViewID != b.PageViewID {
			return fmt.Errorf("error %d: page view %q is not the batch's", i, e.PageViewID)
		}
	}
	_, err := EventsInner(b.Events)
	return err
}

// EventsInner returns what lies between the outer brackets of a JSON array
// of events, trimmed of JSON whitespace; it is empty for an empty array.
// Backends splice stored chunks into one array with it. It checks only the
// brackets: the collector has validated the JSON.
func EventsInner(b []byte) ([]byte, error) {
	b = bytes.Trim(b, " \t\r\n")
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, errors.New("events are not a JSON array")
	}
	return bytes.Trim(b[1:len(b)-1], " \t\r\n"), nil
}

// PageInfo is what the recorder reports about the document it runs in.
type PageInfo struct {
	Referrer string // document.referrer, "" if none
	Language string // navigator.language, e.g. "en-GB"
	// Tab identifies the browser tab (the recorder's id, per tab); "" if
	// unknown. A new page view ends unfinished ones only in its own tab.
	Tab string
	// UTM parameters of the page's URL.
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent string
}

// Client is what the collector derives about the visitor's browser and
// network from the request. Every field is "" when unknown.
type Client struct {
	Browser        string // e.g. "Chrome"
	BrowserVersion string // e.g. "126.0"
	OS             string // e.g. "Windows", "iOS"
	Device         string // "desktop", "mobile", "tablet" or "bot"
	Country        string // ISO 3166-1 alpha-2, from a MaxMind-format database
	// IPHash is a keyed hash of the client address (hex), so that visits
	// from one address can be grouped without keeping the address.
	IPHash string
	// IP is the client address, kept only when the operator configured it.
	IP string
}

// Click is one click, from rrweb's MouseInteraction Click events.
type Click struct {
	PageViewID string
	At         int64 // Unix ms
	X, Y       int   // viewport coordinates, CSS pixels
	NodeID     int   // rrweb node id of the target
	// Target is the recorder's readable description of the element (its
	// "loupe/click" event), e.g. `button#buy.btn "Add to cart"`; "" if none.
	Target string

	// For the signal rules only; not stored.
	Field   bool // the target is a form field (focusing it changes nothing)
	Submit  bool // the target submits a form
	Mutated bool // a DOM mutation followed within DeadWindow in the same batch
}

// Input is a change of a form field's value. Values are never kept.
type Input struct {
	PageViewID string
	At         int64 // Unix ms
	NodeID     int   // rrweb node id of the field
}

// JSError is a script error or unhandled rejection the recorder reported.
type JSError struct {
	PageViewID string
	At         int64  // Unix ms
	Kind       string // "error", "rejection" or "console"
	Message    string
	Stack      string
	Source     string // script URL, "" if unknown
	Line       int
	Column     int
}

// PageView is one document the recorder ran in.
type PageView struct {
	ID          string
	SessionID   string
	URL         string
	StartedAt   time.Time
	EndedAt     time.Time
	Referrer    string
	ViewportW   int
	ViewportH   int
	ScrollDepth int // deepest point reached, CSS pixels
	ClickCount  int
	InputCount  int
	ErrorCount  int
	EventCount  int
}

// Activity is the derived rows of one session, each list in time order.
type Activity struct {
	PageViews []*PageView
	Clicks    []Click
	Inputs    []Input
	Errors    []JSError
}

// Session is the summary of one visitor session. It is kept current as
// batches arrive; it never requires replaying events.
type Session struct {
	ID         string
	StartedAt  time.Time // timestamp of the session's first event
	EndedAt    time.Time // timestamp of the session's last event
	PageCount  int       // page views that sent at least one event
	ClickCount int
	InputCount int
	ErrorCount int
	EventCount int
	EntryURL   string // URL of the first page view
	UserAgent  string // User-Agent of the first batch
	// Bytes is the size of the session's events as received (uncompressed
	// JSON); StoredBytes is what the store holds for them.
	Bytes       int64
	StoredBytes int64

	// Client of the first batch received.
	Client Client
	// Acquisition and environment, from the entry page view (the earliest
	// one that reported them).
	Referrer             string
	Language             string
	ViewportW, ViewportH int
	UTMSource            string
	UTMMedium            string
	UTMCampaign          string

	// Behaviour (see signals.go).
	Signals   SignalCounts
	Friction  float64
	Converted bool
	ExitURL   string // URL of the latest page view
	UserID    string // "" if not identified
}

// Duration is the time from the first to the last event.
func (s *Session) Duration() time.Duration { return s.EndedAt.Sub(s.StartedAt) }

// SessionFilter selects sessions for listing. The zero value lists the
// newest sessions up to a backend default limit.
type SessionFilter struct {
	Limit  int // 0 means 50; at most 1000
	Offset int

	// Signals: the session has at least one signal of each kind.
	Signals []string
	// URL: a page view's URL contains URL, or, if URL has * or ?, matches
	// it as a glob (* any run of characters, ? one), case-sensitively.
	// Entry and Exit likewise for the entry and exit page.
	URL, Entry, Exit string
	// Exact matches ("" means any).
	UserID, Browser, OS, Device, Country, Tag string
	// Referrer contains Referrer; UTMSource is exact.
	Referrer, UTMSource string
	// Duration bounds, inclusive; 0 means none.
	MinDuration, MaxDuration time.Duration
	// Page count bounds, inclusive; 0 means none.
	MinPages, MaxPages int
	// Started at or after From, before To; zero means unbounded.
	From, To time.Time
	// Sort is SortRecent (also ""), SortFriction, SortDuration or
	// SortPages, each descending, then newest first, then by id.
	Sort string
}

// Session list orders.
const (
	SortRecent   = "recent"
	SortFriction = "friction"
	SortDuration = "duration"
	SortPages    = "pages"
)

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

	// Activity returns the session's derived rows, or ErrNotFound.
	Activity(ctx context.Context, id string) (*Activity, error)

	// WriteEvents streams the session's events, in time order, to w as one
	// JSON array, decompressing one stored chunk at a time. It returns
	// ErrNotFound, writing nothing, if the session does not exist.
	WriteEvents(ctx context.Context, id string, w io.Writer) error

	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error

	Close() error
}

// Asset is one archived capture: the body an asset URL had at a moment.
// Bodies are content-addressed: identical bodies are stored once, whatever
// URL or time they were captured at.
type Asset struct {
	URL         string    // normalized absolute URL (archive.NormalizeURL)
	Hash        string    // hex SHA-256 of the body as stored (decoded, identity)
	ContentType string    // media type as the origin sent it, e.g. "text/css; charset=utf-8"
	Size        int64     // body length in bytes
	CapturedAt  time.Time // when the body was captured
}

// Check validates a capture of body before it is stored and returns the
// body's hash, lowercased: URL and CapturedAt set, Hash the hex SHA-256 of
// body (either case).
func (a *Asset) Check(body []byte) (string, error) {
	switch {
	case a == nil:
		return "", errors.New("nil asset")
	case a.URL == "":
		return "", errors.New("empty url")
	case a.CapturedAt.IsZero():
		return "", errors.New("no capture time")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if !strings.EqualFold(a.Hash, hash) {
		return "", fmt.Errorf("hash %q is not the body's SHA-256 %s", a.Hash, hash)
	}
	return hash, nil
}

// AssetStore is the archive's storage. Both backends implement it beside
// Store.
type AssetStore interface {
	// PutAsset stores body under a.Hash unless a body with that hash is
	// already stored, and records the capture unless the URL's latest
	// capture already has that hash (so a thousand visits add nothing).
	// Both happen in one transaction. It reports whether a new body was
	// stored. a.Hash must be the SHA-256 of body; the store checks it.
	PutAsset(ctx context.Context, a *Asset, body []byte) (newBody bool, err error)

	// HasBody reports whether a body with this hash is stored.
	HasBody(ctx context.Context, hash string) (bool, error)

	// Capture returns the capture of url closest before t, or if there is
	// none, the first after t; ErrNotFound if the URL was never captured.
	Capture(ctx context.Context, url string, t time.Time) (*Asset, error)

	// Body returns a stored body and the newest capture's content type;
	// ErrNotFound if absent.
	Body(ctx context.Context, hash string) (body []byte, contentType string, err error)

	// SessionAssets returns the captures a session references (its
	// AssetURLs), each the one closest to the session's start as Capture
	// chooses; URLs never captured are left out. ErrNotFound for an unknown
	// session.
	SessionAssets(ctx context.Context, sessionID string) ([]*Asset, error)

	// PruneAssets removes captures made before cutoff whose URL no session
	// started at or after cutoff references, then bodies no capture uses.
	// It returns the number of bodies removed.
	PruneAssets(ctx context.Context, cutoff time.Time) (bodies int, err error)
}
