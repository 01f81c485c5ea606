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
	"strconv"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// The network log route: see "Network log" in the package comment.

// MaxRequestsBody bounds a network log batch's body, in bytes.
const MaxRequestsBody = 4 << 20

// MaxLoggedRequests bounds the entries of one network log batch.
const MaxLoggedRequests = 5000

// RequestsSkew is how far a signature's time may be from the collector's.
const RequestsSkew = 5 * time.Minute

// ErrRejected wraps a refusal of a network log batch that no retry can
// change (400, 401, 413): RequestClient returns it, and the proxy's queue
// drops the batch at once.
var ErrRejected = errors.New("rejected")

const requestsDomain = "requests1"

// wireRequest is one entry of the network log wire format.
type wireRequest struct {
	SessionID  string `json:"session_id"`
	PageViewID string `json:"page_view_id,omitempty"`
	At         int64  `json:"at"`
	Method     string `json:"method"`
	URL        string `json:"url"`
	Status     int    `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Bytes      int64  `json:"bytes"`
	PageURL    string `json:"page_url,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	Stream     bool   `json:"stream,omitempty"`
}

type wireRequests struct {
	V        int           `json:"v"`
	Requests []wireRequest `json:"requests"`
}

// signRequests returns the X-Loupe-Signature of body at t.
func (t *Tokens) signRequests(at time.Time, body []byte) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return "t=" + ts + ",mac=" + t.sign(requestsDomain, ts+"."+string(body))
}

// verifyRequests checks a signature header against body at now.
func (t *Tokens) verifyRequests(header string, body []byte, now time.Time) error {
	var ts, mac string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "mac":
			mac = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || mac == "" {
		return errors.New("missing or malformed signature")
	}
	if !t.verify(requestsDomain, ts+"."+string(body), mac) {
		return errors.New("bad signature")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > RequestsSkew || d < -RequestsSkew {
		return fmt.Errorf("signature time is %v away from the collector's clock", d.Round(time.Second))
	}
	return nil
}

// RequestAppender is the part of the store the network log route writes to.
type RequestAppender interface {
	AppendRequests(ctx context.Context, reqs []store.Request) error
}

// RequestsHandler serves the network log route, POST /__loupe/requests, on
// a collector's listener. Set its fields before the first request.
type RequestsHandler struct {
	Store  RequestAppender // required
	Tokens *Tokens         // required; verifies signatures
	// Logger receives one line per refused batch. If nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

func (h *RequestsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := h.serve(r)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, msg: "internal error", err: err}
	}
	log := h.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("network log batch refused", "status", he.status, "err", err, "remote", r.RemoteAddr)
	if he.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "POST")
	}
	if he.retryAfter > 0 {
		w.Header().Set("Retry-After", RetryAfter(he.retryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(he.status)
	json.NewEncoder(w).Encode(map[string]string{"error": he.msg})
}

func (h *RequestsHandler) serve(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed; POST a batch", r.Method)
	}
	if r.ContentLength > MaxRequestsBody {
		return errorf(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxRequestsBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestsBody+1))
	if err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "read body", err: err}
	}
	if len(body) > MaxRequestsBody {
		return errorf(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxRequestsBody)
	}
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	if err := h.Tokens.verifyRequests(r.Header.Get("X-Loupe-Signature"), body, now); err != nil {
		return &httpError{status: http.StatusUnauthorized, msg: "invalid signature", err: err}
	}
	reqs, err := decodeRequests(body)
	if err != nil {
		return err
	}
	if err := h.Store.AppendRequests(r.Context(), reqs); err != nil {
		if r.Context().Err() != nil {
			return &httpError{status: 499, msg: "client went away", err: err}
		}
		return &httpError{status: http.StatusServiceUnavailable, msg: "storage unavailable, retry later", retryAfter: storeRetryAfter, err: err}
	}
	return nil
}

// decodeRequests parses and validates a network log batch.
func decodeRequests(body []byte) ([]store.Request, error) {
	var wr wireRequests
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&wr); err != nil {
		return nil, badRequest("body is not a network log batch: %v", err)
	}
	switch {
	case wr.V != 1:
		return nil, badRequest("v must be 1")
	case len(wr.Requests) == 0:
		return nil, badRequest("no requests")
	case len(wr.Requests) > MaxLoggedRequests:
		return nil, errorf(http.StatusRequestEntityTooLarge, "%d requests, more than %d", len(wr.Requests), MaxLoggedRequests)
	}
	out := make([]store.Request, len(wr.Requests))
	for i, w := range wr.Requests {
		if !validID(w.SessionID) || (w.PageViewID != "" && !validID(w.PageViewID)) {
			return nil, badRequest("request %d: session or page view id is not 32 lowercase hex digits", i)
		}
		if w.Method == "" || len(w.Method) > 32 || strings.ContainsAny(w.Method, " \t\r\n") {
			return nil, badRequest("request %d: bad method", i)
		}
		out[i] = store.Request{
			SessionID:  w.SessionID,
			PageViewID: w.PageViewID,
			At:         w.At,
			Method:     w.Method,
			URL:        w.URL,
			Status:     w.Status,
			DurationMS: w.DurationMS,
			Bytes:      w.Bytes,
			PageURL:    cut(w.PageURL, store.MaxRequestURL),
			UserID:     CleanUserID(w.UserID),
			Stream:     w.Stream,
		}
		if err := out[i].Validate(); err != nil {
			return nil, badRequest("request %d: %v", i, err)
		}
	}
	return out, nil
}

// RequestClient posts a proxy's network log to a remote collector's
// network log route. It is a proxy.RequestSink.
type RequestClient struct {
	// URL is the route's absolute URL, e.g.
	// http://10.0.0.5:8082/__loupe/requests. Required.
	URL string
	// Tokens signs the batches. Required.
	Tokens *Tokens
	// Client sends them. If nil, http.DefaultClient.
	Client *http.Client
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// AppendRequests posts reqs as one batch. A refusal no retry can change
// wraps ErrRejected.
func (c *RequestClient) AppendRequests(ctx context.Context, reqs []store.Request) error {
	wr := wireRequests{V: 1, Requests: make([]wireRequest, len(reqs))}
	for i, r := range reqs {
		wr.Requests[i] = wireRequest{
			SessionID: r.SessionID, PageViewID: r.PageViewID, At: r.At, Method: r.Method, URL: r.URL,
			Status: r.Status, DurationMS: r.DurationMS, Bytes: r.Bytes,
			PageURL: r.PageURL, UserID: r.UserID, Stream: r.Stream,
		}
	}
	body, err := json.Marshal(wr)
	if err != nil {
		return fmt.Errorf("post network log: %w", err)
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post network log: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Loupe-Signature", c.Tokens.signRequests(now, body))
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post network log: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusUnauthorized,
		resp.StatusCode == http.StatusRequestEntityTooLarge, resp.StatusCode == http.StatusNotFound,
		resp.StatusCode == http.StatusMethodNotAllowed:
		return fmt.Errorf("post network log: %s: %s: %w", resp.Status, bytes.TrimSpace(msg), ErrRejected)
	default:
		return fmt.Errorf("post network log: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}
