package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Request is one HTTP request of a recorded session as the proxy served it:
// an entry of the proxy's network log. Requests are what the network panel
// shows and where server errors, failed and slow requests come from; no
// JavaScript in the page is involved.
type Request struct {
	SessionID string
	// PageViewID is the page view the proxy minted for an HTML response
	// (the page-view token's id); "" for other requests, whose page the
	// proxy cannot know.
	PageViewID string
	At         int64  // when the request arrived, Unix ms
	Method     string // e.g. "GET"
	// URL is the path and query as the visitor asked, at most
	// MaxRequestURL bytes.
	URL string
	// Status is the status code sent, 101 for a protocol switch
	// (WebSocket), 0 when no response was sent (the upstream failed and
	// the visitor had gone, or the visitor left before the answer).
	Status     int
	DurationMS int64 // from arrival until the last body byte was written
	Bytes      int64 // response body bytes sent (after Loupe's rewriting)

	// The fields below are not columns of the network log.

	// PageURL is the absolute URL of the page the request was made from
	// (its Referer, or the request's own URL for a page); it becomes the
	// url of the request's signal. "" if unknown.
	PageURL string
	// UserID is the user id the proxy's rules found in the request (see
	// collector.UserRules); "" if none. The store sets it on the session
	// unless the session has one.
	UserID string
	// Stream marks a response meant to stay open (WebSocket, server-sent
	// events): its duration is never a slow request.
	Stream bool
}

// MaxRequestURL bounds Request.URL, in bytes; the proxy cuts longer ones.
const MaxRequestURL = 2 << 10

// RequestSlowAfter is the duration over which a request is a
// slow_request signal.
const RequestSlowAfter = 3 * time.Second

// Signal returns the signal r raises, if any, and its detail text: a
// request raises at most one, the first that applies of failed_request
// (Status 0), server_error (Status 500 or more) and slow_request
// (DurationMS over RequestSlowAfter, unless r is a Stream).
func (r *Request) Signal() (kind, detail string) {
	switch {
	case r.Status == 0:
		return SignalFailedRequest, fmt.Sprintf("%s %s: no response after %d ms", r.Method, r.URL, r.DurationMS)
	case r.Status >= 500:
		return SignalServerError, fmt.Sprintf("%s %s: %d in %d ms", r.Method, r.URL, r.Status, r.DurationMS)
	case !r.Stream && r.DurationMS > RequestSlowAfter.Milliseconds():
		return SignalSlowRequest, fmt.Sprintf("%s %s: %d in %d ms", r.Method, r.URL, r.Status, r.DurationMS)
	}
	return "", ""
}

// RequestSignals returns the signals reqs raise, in their order, each with the
// request's session, page view, time, page URL and detail.
func RequestSignals(reqs []Request) []Signal {
	var out []Signal
	for i := range reqs {
		r := &reqs[i]
		if kind, detail := r.Signal(); kind != "" {
			out = append(out, Signal{SessionID: r.SessionID, PageViewID: r.PageViewID, At: r.At, Kind: kind, URL: r.PageURL, Detail: detail})
		}
	}
	return out
}

// SessionEffect is what a batch of requests changes on one session's row.
type SessionEffect struct {
	SessionID string
	UserID    string   // first non-empty UserID of the session's requests
	Signals   []Signal // the signals its requests raise, in their order
}

// RequestEffects returns the sessions whose row reqs change, in session id
// order, so that concurrent writers lock rows in one order.
func RequestEffects(reqs []Request) []SessionEffect {
	byID := map[string]int{}
	var out []SessionEffect
	effect := func(id string) *SessionEffect {
		i, ok := byID[id]
		if !ok {
			i = len(out)
			byID[id] = i
			out = append(out, SessionEffect{SessionID: id})
		}
		return &out[i]
	}
	for _, g := range RequestSignals(reqs) {
		e := effect(g.SessionID)
		e.Signals = append(e.Signals, g)
	}
	for _, r := range reqs {
		if r.UserID != "" {
			if e := effect(r.SessionID); e.UserID == "" {
				e.UserID = r.UserID
			}
		}
	}
	slices.SortFunc(out, func(a, b SessionEffect) int { return strings.Compare(a.SessionID, b.SessionID) })
	return out
}

// Validate checks what every backend relies on before storing r.
func (r *Request) Validate() error {
	switch {
	case r.SessionID == "":
		return errors.New("empty session id")
	case r.At <= 0:
		return errors.New("no time")
	case r.Method == "":
		return errors.New("empty method")
	case r.Status < 0 || r.Status > 999:
		return fmt.Errorf("status %d out of range", r.Status)
	case r.DurationMS < 0 || r.Bytes < 0:
		return errors.New("negative duration or size")
	case len(r.URL) > MaxRequestURL:
		return fmt.Errorf("url of %d bytes is over %d", len(r.URL), MaxRequestURL)
	}
	return nil
}

// RequestStore is the network log's storage. Both backends implement it
// beside Store.
type RequestStore interface {
	// AppendRequests stores the requests and, in the same transaction,
	// the signal each raises (see Request.Signal), the sessions'
	// server_error_count and friction, and a session's user id from the
	// first request that has one, unless the session has one already.
	// It validates every request first and stores nothing if one is
	// invalid.
	//
	// The proxy logs a page's requests before its recorder sends anything,
	// and visitors whose browser runs no script (bots) or whose session is
	// not recorded send nothing at all: AppendRequests never creates a
	// session's row. The requests of a session without one are kept and
	// found once it exists; their signals and user id wait, and the
	// session's first batch applies them (AppendBatch, in its
	// transaction). On PostgreSQL, effects stored while that first batch
	// commits wait for the session's next batch.
	AppendRequests(ctx context.Context, reqs []Request) error

	// Requests returns the session's requests in time order (then in the
	// order stored), an empty list if none; ErrNotFound if the session
	// does not exist. UserID, PageURL and Stream are not kept.
	Requests(ctx context.Context, sessionID string) ([]Request, error)

	// SetSessionUser sets the session's user id unless it has one; for a
	// session without a row yet, the id waits for its first batch, as
	// AppendRequests' do.
	SetSessionUser(ctx context.Context, sessionID, userID string) error
}
