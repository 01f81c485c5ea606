package replayer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Optional parts of the store the API reads when the store has them.
type (
	// activityReader gives a session's derived rows, for the timeline.
	activityReader interface {
		Activity(ctx context.Context, id string) (*store.Activity, error)
	}
	// requestReader gives the proxy's log of a session's requests.
	requestReader interface {
		Requests(ctx context.Context, sessionID string) ([]store.Request, error)
	}
)

// signalsJSON is a session's "signals": its counted signals by kind.
type signalsJSON struct {
	RageClick   int `json:"rage_click"`
	DeadClick   int `json:"dead_click"`
	ErrorClick  int `json:"error_click"`
	JSError     int `json:"js_error"`
	ServerError int `json:"server_error"`
	FormAbandon int `json:"form_abandon"`
}

// behaviourJSON are the session fields added with behaviour signals
// (issue 6).
type behaviourJSON struct {
	Signals   signalsJSON `json:"signals"`
	Friction  float64     `json:"friction"`
	Converted bool        `json:"converted"`
	UserID    string      `json:"user_id"`
	ExitURL   string      `json:"exit_url"`
	Tags      []string    `json:"tags"`
}

func behaviour(s *store.Session, tags []string) behaviourJSON {
	c := s.Signals
	if tags == nil {
		tags = []string{}
	}
	return behaviourJSON{
		Signals: signalsJSON{RageClick: c.RageClick, DeadClick: c.DeadClick, ErrorClick: c.ErrorClick,
			JSError: c.JSError, ServerError: c.ServerError, FormAbandon: c.FormAbandon},
		Friction:  s.Friction,
		Converted: s.Converted,
		UserID:    s.UserID,
		ExitURL:   s.ExitURL,
		Tags:      tags,
	}
}

// tagsOf returns the sessions' tags when the store keeps tags.
func (s *Server) tagsOf(ctx context.Context, ids ...string) (map[string][]string, error) {
	a, ok := s.cfg.Store.(store.Annotator)
	if !ok {
		return map[string][]string{}, nil
	}
	return a.TagsOf(ctx, ids)
}

// parseFilter reads GET /api/sessions' query parameters. Unknown
// parameters are ignored; a bad value is a 400 naming the parameter.
func parseFilter(q url.Values) (store.SessionFilter, error) {
	var f store.SessionFilter
	bad := func(name, format string, args ...any) error {
		return &Error{http.StatusBadRequest, name + ": " + fmt.Sprintf(format, args...)}
	}
	var err error
	if f.Limit, err = intParam(q.Get("limit"), 0, store.MaxListLimit); err != nil {
		return f, bad("limit", "%v", err)
	}
	if f.Offset, err = intParam(q.Get("offset"), 0, 1<<30); err != nil {
		return f, bad("offset", "%v", err)
	}
	if c := q.Get("cursor"); c != "" {
		n, err := intParam(c, 0, 1<<30)
		if err != nil {
			return f, bad("cursor", "not a cursor this server gave")
		}
		f.Offset = n
	}
	for _, v := range q["signal"] {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if !slices.Contains(store.SignalKinds, k) {
				return f, bad("signal", "unknown signal %q; want one of %s", k, strings.Join(store.SignalKinds, ", "))
			}
			if !slices.Contains(f.Signals, k) {
				f.Signals = append(f.Signals, k)
			}
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{
		{"url", &f.URL}, {"entry", &f.Entry}, {"exit", &f.Exit}, {"user", &f.UserID},
		{"browser", &f.Browser}, {"os", &f.OS}, {"device", &f.Device}, {"country", &f.Country},
		{"referrer", &f.Referrer}, {"utm_source", &f.UTMSource}, {"tag", &f.Tag},
	} {
		v := q.Get(p.name)
		if len(v) > store.MaxFilterLen {
			return f, bad(p.name, "longer than %d bytes", store.MaxFilterLen)
		}
		*p.dst = v
	}
	for _, p := range []struct {
		name string
		dst  *time.Duration
	}{{"min_duration", &f.MinDuration}, {"max_duration", &f.MaxDuration}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 || secs > 1e7 || math.IsNaN(secs) {
			return f, bad(p.name, "want seconds, a non-negative number, got %q", v)
		}
		*p.dst = time.Duration(secs * float64(time.Second))
	}
	if f.MinPages, err = intParam(q.Get("min_pages"), 0, 1<<20); err != nil {
		return f, bad("min_pages", "%v", err)
	}
	if f.MaxPages, err = intParam(q.Get("max_pages"), 0, 1<<20); err != nil {
		return f, bad("max_pages", "%v", err)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := timeParam(v)
		if err != nil {
			return f, bad(p.name, "%v", err)
		}
		*p.dst = t
	}
	switch sort := q.Get("sort"); sort {
	case "", store.SortRecent, store.SortFriction, store.SortDuration, store.SortPages:
		f.Sort = sort
	default:
		return f, bad("sort", "want recent, friction, duration or pages, got %q", sort)
	}
	if err := f.Check(); err != nil {
		return f, &Error{http.StatusBadRequest, err.Error()}
	}
	return f, nil
}

// timeParam reads RFC 3339 or Unix milliseconds.
func timeParam(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 1e15 {
			return time.Time{}, fmt.Errorf("Unix milliseconds out of range: %q", v)
		}
		return time.UnixMilli(n).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 or Unix milliseconds, got %q", v)
	}
	return t, nil
}

// listSessions answers GET /api/sessions: {"sessions": [...], "next":
// cursor or null}. Pass next as cursor= for the following page.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		return err
	}
	limit := f.Limit
	if limit == 0 {
		limit = store.DefaultListLimit
	}
	list, err := s.cfg.Store.Sessions(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	// A full page may have a next one (which may be empty).
	var next *string
	if len(list) >= limit {
		list = list[:limit]
		c := strconv.Itoa(f.Offset + limit)
		next = &c
	}
	ids := make([]string, len(list))
	for i, sess := range list {
		ids[i] = sess.ID
	}
	tags, err := s.tagsOf(r.Context(), ids...)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
		Next     *string       `json:"next"`
	}{Sessions: make([]sessionJSON, 0, len(list)), Next: next}
	for _, sess := range list {
		j := toJSON(sess)
		j.behaviourJSON = behaviour(sess, tags[sess.ID])
		out.Sessions = append(out.Sessions, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.cfg.Store.Session(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	tags, err := s.tagsOf(r.Context(), sess.ID)
	if err != nil {
		return fmt.Errorf("get session: %w", err)
	}
	j := toJSON(sess)
	j.behaviourJSON = behaviour(sess, tags[sess.ID])
	writeJSON(w, http.StatusOK, j)
	return nil
}

// timelineEntry is one moment of GET /api/sessions/{id}/timeline.
type timelineEntry struct {
	Kind       string `json:"kind"`
	AtMS       int64  `json:"at_ms"` // ms since the session's first event
	Page       string `json:"page,omitempty"`
	Target     string `json:"target,omitempty"`
	Message    string `json:"message,omitempty"`
	Status     *int   `json:"status,omitempty"`
	Method     string `json:"method,omitempty"`
	URL        string `json:"url,omitempty"`
	DurationMS *int64 `json:"duration_ms,omitempty"`
	X          *int   `json:"x,omitempty"`
	Y          *int   `json:"y,omitempty"`
	at         int64  // Unix ms, for sorting
	order      int    // kind order at equal times
}

// getTimeline answers GET /api/sessions/{id}/timeline: the session's page
// views ("page"), clicks ("click", with the element's description),
// inputs ("input"), signals (their kinds, with the message or status in
// "message") and the proxy's log of its requests ("request", with method,
// url, status and duration_ms), in time order.
func (s *Server) getTimeline(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	sess, err := s.cfg.Store.Session(ctx, id)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	start := sess.StartedAt.UnixMilli()
	var out []timelineEntry
	pages := map[string]string{}
	var shown []pageAt // page views by start
	add := func(e timelineEntry) {
		e.AtMS = max(e.at-start, 0)
		out = append(out, e)
	}
	if ar, ok := s.cfg.Store.(activityReader); ok {
		a, err := ar.Activity(ctx, id)
		if err != nil {
			return fmt.Errorf("timeline: %w", err)
		}
		for _, pv := range a.PageViews {
			pages[pv.ID] = pv.URL
			if pv.StartedAt.IsZero() {
				continue
			}
			shown = append(shown, pageAt{pv.StartedAt.UnixMilli(), pv.URL})
			add(timelineEntry{Kind: "page", at: pv.StartedAt.UnixMilli(), Page: pv.URL, URL: pv.URL})
		}
		slices.SortFunc(shown, func(a, b pageAt) int { return cmp.Compare(a.at, b.at) })
		for _, c := range a.Clicks {
			x, y := c.X, c.Y
			add(timelineEntry{Kind: "click", at: c.At, Page: pages[c.PageViewID], Target: c.Target, X: &x, Y: &y, order: 1})
		}
		for _, in := range a.Inputs {
			add(timelineEntry{Kind: "input", at: in.At, Page: pages[in.PageViewID], order: 1})
		}
	}
	if sr, ok := s.cfg.Store.(store.SignalReader); ok {
		sigs, err := sr.Signals(ctx, id)
		if err != nil {
			return fmt.Errorf("timeline: %w", err)
		}
		for _, sg := range sigs {
			e := timelineEntry{Kind: sg.Kind, at: sg.At, Page: sg.URL, Target: sg.Target, Message: sg.Detail, order: 2}
			if e.Page == "" {
				e.Page = pages[sg.PageViewID]
			}
			if sg.X != 0 || sg.Y != 0 {
				x, y := sg.X, sg.Y
				e.X, e.Y = &x, &y
			}
			add(e)
		}
	}
	if rr, ok := s.cfg.Store.(requestReader); ok {
		reqs, err := rr.Requests(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("timeline: %w", err)
		}
		for _, q := range reqs {
			status, d := q.Status, q.DurationMS
			page := pages[q.PageViewID]
			if page == "" {
				page = pageShownAt(shown, q.At)
			}
			add(timelineEntry{Kind: "request", at: q.At, Page: page, Method: q.Method, URL: q.URL,
				Status: &status, DurationMS: &d, order: 1})
		}
	}
	slices.SortStableFunc(out, func(a, b timelineEntry) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.order - b.order
	})
	if out == nil {
		out = []timelineEntry{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// pageAt is a page view's start and URL.
type pageAt struct {
	at  int64
	url string
}

// pageShownAt returns the URL of the page on screen at ms: the latest page
// view started by then, or the first one if ms precedes them all. The proxy
// knows the page view of a document request only (and under the token's
// id, not the recorder's), so a subresource or API request is placed by
// time; with several tabs open that is the most recently opened one.
func pageShownAt(shown []pageAt, ms int64) string {
	if len(shown) == 0 {
		return ""
	}
	i, _ := slices.BinarySearchFunc(shown, ms, func(p pageAt, t int64) int { return cmp.Compare(p.at, t) })
	// shown[i-1] is the last start strictly before ms; an equal start counts.
	for i < len(shown) && shown[i].at == ms {
		i++
	}
	if i == 0 {
		return shown[0].url
	}
	return shown[i-1].url
}

// requestJSON is one entry of GET /api/sessions/{id}/requests.
type requestJSON struct {
	AtMS       int64  `json:"at_ms"` // ms since the session's first event (0 if before)
	At         int64  `json:"at"`    // Unix ms
	PageViewID string `json:"page_view_id"`
	Method     string `json:"method"`
	URL        string `json:"url"`
	Status     int    `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Bytes      int64  `json:"bytes"`
}

// getRequests answers GET /api/sessions/{id}/requests with the proxy's log
// of the session's requests, in time order; 404 if the store keeps none.
func (s *Server) getRequests(w http.ResponseWriter, r *http.Request) error {
	rr, ok := s.cfg.Store.(requestReader)
	if !ok {
		return &Error{http.StatusNotFound, "this store keeps no request log"}
	}
	id := r.PathValue("id")
	sess, err := s.cfg.Store.Session(r.Context(), id)
	if err != nil {
		return fmt.Errorf("requests: %w", err)
	}
	reqs, err := rr.Requests(r.Context(), id)
	if err != nil {
		return fmt.Errorf("requests: %w", err)
	}
	start := sess.StartedAt.UnixMilli()
	out := make([]requestJSON, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, requestJSON{AtMS: max(q.At-start, 0), At: q.At, PageViewID: q.PageViewID, Method: q.Method,
			URL: q.URL, Status: q.Status, DurationMS: q.DurationMS, Bytes: q.Bytes})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// annotator returns the store's tags and notes, or a 404 if it keeps none.
func (s *Server) annotator() (store.Annotator, error) {
	a, ok := s.cfg.Store.(store.Annotator)
	if !ok {
		return nil, &Error{http.StatusNotFound, "this store keeps no tags or notes"}
	}
	return a, nil
}

// maxAnnotationBody bounds PUT tags and POST notes bodies.
const maxAnnotationBody = 64 << 10

// readJSON decodes a request body of at most maxAnnotationBody bytes.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAnnotationBody+1))
	if err != nil {
		return &Error{http.StatusBadRequest, "could not read the body"}
	}
	if len(body) > maxAnnotationBody {
		return &Error{http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxAnnotationBody)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &Error{http.StatusBadRequest, "body is not the expected JSON: " + err.Error()}
	}
	return nil
}

// annotationError turns the store's "too many notes" into a 409; other
// errors pass as they are (ErrNotFound is a 404 anyway).
func annotationError(err error) error {
	if errors.Is(err, store.ErrTooMany) {
		return &Error{http.StatusConflict, fmt.Sprintf("a session holds at most %d notes", store.MaxNotes)}
	}
	return err
}

func (s *Server) getTags(w http.ResponseWriter, r *http.Request) error {
	a, err := s.annotator()
	if err != nil {
		return err
	}
	tags, err := a.Tags(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	writeJSON(w, http.StatusOK, tags)
	return nil
}

// putTags replaces the session's tags with the body's JSON array of
// strings (trimmed, sorted, duplicates dropped; each 1 to 64 bytes, at
// most 32) and answers with them as stored.
func (s *Server) putTags(w http.ResponseWriter, r *http.Request) error {
	a, err := s.annotator()
	if err != nil {
		return err
	}
	var tags []string
	if err := readJSON(r, &tags); err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	if _, err := store.CheckTags(tags); err != nil {
		return &Error{http.StatusBadRequest, err.Error()}
	}
	stored, err := a.SetTags(r.Context(), r.PathValue("id"), tags)
	if err != nil {
		return fmt.Errorf("set tags: %w", annotationError(err))
	}
	writeJSON(w, http.StatusOK, stored)
	return nil
}

// noteJSON is a note as the API shows it.
type noteJSON struct {
	ID        int64     `json:"id"`
	AtMS      *int64    `json:"at_ms"` // ms since the session's start; null for the whole session
	Text      string    `json:"text"`
	Author    string    `json:"author"` // "" for notes from before logins
	CreatedAt time.Time `json:"created_at"`
}

func toNoteJSON(n *store.Note) noteJSON {
	return noteJSON{ID: n.ID, AtMS: n.AtMS, Text: n.Text, Author: n.Author, CreatedAt: time.UnixMilli(n.CreatedAt).UTC()}
}

func (s *Server) getNotes(w http.ResponseWriter, r *http.Request) error {
	a, err := s.annotator()
	if err != nil {
		return err
	}
	notes, err := a.Notes(r.Context(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	out := make([]noteJSON, 0, len(notes))
	for i := range notes {
		out = append(out, toNoteJSON(&notes[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// postNote adds a note from {"text": 1 to 4096 bytes, "at_ms": ms since
// the session's start or null} and answers 201 with it.
func (s *Server) postNote(w http.ResponseWriter, r *http.Request) error {
	a, err := s.annotator()
	if err != nil {
		return err
	}
	var in struct {
		Text *string `json:"text"`
		AtMS *int64  `json:"at_ms"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Text == nil {
		return &Error{http.StatusBadRequest, "text is required"}
	}
	n := store.Note{SessionID: r.PathValue("id"), Text: *in.Text, AtMS: in.AtMS,
		Author: userOf(r).Name, CreatedAt: s.now().UnixMilli()}
	if err := store.CheckNote(&n); err != nil {
		return &Error{http.StatusBadRequest, err.Error()}
	}
	if err := a.AddNote(r.Context(), &n); err != nil {
		return fmt.Errorf("add note: %w", annotationError(err))
	}
	writeJSON(w, http.StatusCreated, toNoteJSON(&n))
	return nil
}

func (s *Server) deleteNote(w http.ResponseWriter, r *http.Request) error {
	a, err := s.annotator()
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("note"), 10, 64)
	if err != nil || id <= 0 {
		return &Error{http.StatusNotFound, "note not found"}
	}
	if u := userOf(r); !u.Role.Allows(store.RoleAdmin) {
		// An editor deletes its own notes only.
		notes, err := a.Notes(r.Context(), r.PathValue("id"))
		if err != nil {
			return fmt.Errorf("notes: %w", err)
		}
		i := slices.IndexFunc(notes, func(n store.Note) bool { return n.ID == id })
		if i < 0 {
			return &Error{http.StatusNotFound, "note not found"}
		}
		if notes[i].Author != u.Name {
			return &Error{http.StatusForbidden, "an editor deletes only its own notes"}
		}
	}
	if err := a.DeleteNote(r.Context(), r.PathValue("id"), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &Error{http.StatusNotFound, "note not found"}
		}
		return fmt.Errorf("delete note: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
