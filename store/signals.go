package store

// Behaviour signals: the rules (windows in the constants below; times are
// the recording's, the browser's clock):
//
//   - rage_click: RageClicks (3) clicks within RageWindow (1 s) of the first,
//     each within RageRadius (30 CSS px) of the one before; later clicks
//     within the radius and a second of the last extend the burst. One
//     signal per burst, at its first click, detail "N clicks".
//   - dead_click: a click followed within DeadWindow (1 s) by no DOM
//     mutation, input or scroll, no fetch/XHR start (the recorder's
//     "loupe/request" events, from Resource Timing), and no end of the page
//     view within NavWindow (3 s): pagehide, or a later page view of the
//     session starting. Clicks on form fields are never dead, nor are the
//     clicks of a rage burst or error clicks (their own signal says more).
//   - error_click: a script error (kind error or rejection) within
//     ErrorWindow (1 s) after a click; detail: the error's message.
//   - js_error, console_error: each script error or rejection, each
//     console.error; detail: the message.
//   - form_abandon: a page view that ends (pagehide, or a later page view
//     starts) after an input event not followed by a click on a submit
//     control (button or input of type submit/image in a form, which also
//     catches Enter in a field: browsers submit by clicking the default
//     button), nor by a click that started a fetch or XHR within
//     DeadWindow (a form sent by script, from a type=button or a link).
//     One per page view end, at the end.
//   - server_error, failed_request, slow_request: from the proxy's request
//     log (Request.Signal), not from events.
//
// Batch boundaries: a click's verdict waits until its page view has
// events JudgeAfter (2 s) after it; until then it is pending in the page
// view's SignalState, which the store keeps with the page view and hands
// to DeriveSignals with the page view's next batch, or ends with
// EndPageView when a later page view of the session starts in the same
// browser tab (Batch.Tab; in any tab when either tab is unknown): a page
// left open in another tab is not over; or when no batch of it has come
// for PageViewIdle (IdleEnder: a tab closed without a pagehide reaching
// the collector). A rage burst
// and unsubmitted inputs wait the same way. Batches of a page view that
// arrive out of order are taken as they come.
//
// exit page: the session's exit_url is the URL of its latest page view.
// converted: a page view's URL matched the collector's conversion pattern.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Signal kinds: what a session's signals rows and timeline call them.
const (
	SignalRageClick     = "rage_click"
	SignalDeadClick     = "dead_click"
	SignalErrorClick    = "error_click"
	SignalJSError       = "js_error"
	SignalConsoleError  = "console_error"
	SignalServerError   = "server_error"
	SignalFailedRequest = "failed_request"
	SignalSlowRequest   = "slow_request"
	SignalFormAbandon   = "form_abandon"
)

// SignalKinds lists every signal kind.
var SignalKinds = []string{SignalRageClick, SignalDeadClick, SignalErrorClick, SignalJSError,
	SignalConsoleError, SignalServerError, SignalFailedRequest, SignalSlowRequest, SignalFormAbandon}

// CountedSignals are the kinds the session row counts (SignalCounts).
var CountedSignals = []string{SignalRageClick, SignalDeadClick, SignalErrorClick, SignalJSError,
	SignalServerError, SignalFormAbandon}

// Signal is one behaviour signal of a session: something that suggests
// the visitor struggled, at a moment of the recording.
type Signal struct {
	SessionID  string
	PageViewID string // "" if not known (a request's signal)
	At         int64  // Unix ms
	Kind       string // one of SignalKinds
	X, Y       int    // click position, CSS pixels; 0 for other kinds
	NodeID     int    // rrweb node id of the element, 0 if none
	Target     string // readable description of the element, "" if unknown
	URL        string // the page's URL
	Detail     string // error message, request status, click count…
}

// SignalCounts are the signals a session row counts.
type SignalCounts struct {
	RageClick, DeadClick, ErrorClick, JSError, ServerError, FormAbandon int
}

// Add counts a signal of kind; kinds the session does not count are
// ignored.
func (c *SignalCounts) Add(kind string) {
	switch kind {
	case SignalRageClick:
		c.RageClick++
	case SignalDeadClick:
		c.DeadClick++
	case SignalErrorClick:
		c.ErrorClick++
	case SignalJSError:
		c.JSError++
	case SignalServerError:
		c.ServerError++
	case SignalFormAbandon:
		c.FormAbandon++
	}
}

// Zero reports whether nothing is counted.
func (c SignalCounts) Zero() bool { return c == SignalCounts{} }

// FrictionTerm is one term of the friction score: what one signal of Kind
// adds, counting at most Cap of them.
type FrictionTerm struct {
	Kind   string  `json:"kind"`
	Weight float64 `json:"weight"`
	Cap    int     `json:"cap"`
}

// FrictionTerms are the terms of Friction, heaviest first. The replay UI
// explains scores with these very terms (the replayer hands them to it).
var FrictionTerms = []FrictionTerm{
	{SignalRageClick, 3, 5},
	{SignalErrorClick, 3, 5},
	{SignalServerError, 2, 5},
	{SignalFormAbandon, 2, 3},
	{SignalDeadClick, 1, 5},
	{SignalJSError, 1, 5},
}

// FrictionConverted multiplies the score of a session that converted: a
// visitor who struggled but reached the goal is worth watching less than
// one who struggled and left.
const FrictionConverted = 0.5

// Count is the number of signals of kind counted; 0 for kinds not counted.
func (c SignalCounts) Count(kind string) int {
	switch kind {
	case SignalRageClick:
		return c.RageClick
	case SignalDeadClick:
		return c.DeadClick
	case SignalErrorClick:
		return c.ErrorClick
	case SignalJSError:
		return c.JSError
	case SignalServerError:
		return c.ServerError
	case SignalFormAbandon:
		return c.FormAbandon
	}
	return 0
}

// Friction is a session's friction score: a weighted sum of its signals
// (FrictionTerms), each kind capped so that one looping error cannot
// outrank everything, halved if the visitor converted, rounded to two
// decimals:
//
//	friction = 3·min(rage_click, 5) + 3·min(error_click, 5)
//	         + 2·min(server_error, 5) + 2·min(form_abandon, 3)
//	         + 1·min(dead_click, 5) + 1·min(js_error, 5)
//	friction ×= 0.5 if converted
//
// Rage and error clicks weigh most (the visitor acted and the page failed
// them, visibly), then server errors and abandoned forms (a task failed),
// then dead clicks and script errors (often harmless on their own). The
// range is 0 to 56. Console errors, failed and slow requests are shown
// on the timeline but do not count.
func Friction(c SignalCounts, converted bool) float64 {
	var f float64
	for _, t := range FrictionTerms {
		f += t.Weight * float64(min(c.Count(t.Kind), t.Cap))
	}
	if converted {
		f *= FrictionConverted
	}
	return math.Round(f*100) / 100
}

// Signal rules' windows. Times are the recording's (the browser's clock).
const (
	// RageWindow and RageRadius: RageClicks clicks within RageWindow ms of
	// the first, each within RageRadius CSS pixels of the latest, start a
	// rage burst; a click within RageRadius of the burst's last click and
	// RageWindow ms after it extends the burst. A burst is one rage_click
	// signal, at its first click, detail "N clicks", raised once it can no
	// longer grow.
	RageWindow = 1000
	RageRadius = 30
	RageClicks = 3
	// DeadWindow: a click is dead when nothing happens within DeadWindow ms
	// after it: no DOM mutation, no fetch/XHR starting (as the recorder
	// reports them), no page unload. Clicks on form fields (which focus
	// them, changing nothing) are never dead.
	DeadWindow = 1000
	// JudgeAfter: a click's dead-or-not verdict waits until the page view
	// has an event JudgeAfter ms after it (requests are reported when they
	// finish, so a second more is given) or the page view ends.
	JudgeAfter = 2000
	// NavWindow: a page view that ends (pagehide, or a later page view of
	// the session starts) within NavWindow ms of a click was navigated
	// away from by it: the click is not dead. Page loads take time, hence
	// more than DeadWindow.
	NavWindow = 3000
	// ErrorWindow: a script error (kind error or rejection) within
	// ErrorWindow ms after a click makes it an error click.
	ErrorWindow = 1000
)

// SignalFacts are what the collector notes while decoding a batch, beyond
// Batch's rows, for the signal rules; the store derives the signals with
// DeriveSignals in the batch's transaction, where the page view's state
// from earlier batches is at hand.
type SignalFacts struct {
	// FirstMutation is the time of the batch's first change (DOM mutation,
	// input or scroll), 0 if
	// none: it tells whether clicks of earlier batches were dead.
	FirstMutation int64
	// Requests are the start times of the fetch and XHR requests the
	// recorder observed in the batch (custom event "loupe/request").
	Requests []int64
	// PageHide is the time of the recorder's "loupe/pagehide" event, 0 if
	// none: the page view ended there (unless it is restored from the
	// back/forward cache and records on).
	PageHide int64
	// Converted: the batch's page URL matched the conversion pattern.
	Converted bool
}

// SignalState is a page view's signal derivation between its batches,
// kept by the store (JSON) with the page view.
type SignalState struct {
	URL     string         `json:"url,omitempty"`
	LastAt  int64          `json:"last,omitempty"`  // latest event time seen
	Pending []PendingClick `json:"pend,omitempty"`  // clicks awaiting their verdict
	Recent  []PendingClick `json:"rec,omitempty"`   // clicks of the last RageWindow ms, for rage
	Burst   *RageBurst     `json:"burst,omitempty"` // rage burst that may still grow
	// InputAt is the time of the latest input not followed by a click on a
	// submit control, 0 if none; InputNode its field.
	InputAt   int64 `json:"in,omitempty"`
	InputNode int   `json:"innode,omitempty"`
}

// DecodeSignalState reads a page view's signal state as the stores keep
// it (SignalState.Encode); "" is the empty state.
func DecodeSignalState(s string) (SignalState, error) {
	var st SignalState
	if s == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return st, fmt.Errorf("decode signal state: %w", err)
	}
	return st, nil
}

// Encode is st as the stores keep it with the page view: JSON, or "" when
// empty.
func (st *SignalState) Encode() (string, error) {
	if st.Empty() {
		return "", nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("encode signal state: %w", err)
	}
	return string(b), nil
}

// PendingClick is a click whose verdict waits for later events.
type PendingClick struct {
	At       int64  `json:"at"`
	X        int    `json:"x,omitempty"`
	Y        int    `json:"y,omitempty"`
	NodeID   int    `json:"n,omitempty"`
	Target   string `json:"t,omitempty"`
	Alive    bool   `json:"ok,omitempty"`   // something happened after it: not dead
	ErrorMsg string `json:"err,omitempty"`  // set once it is an error click
	Raised   bool   `json:"r,omitempty"`    // its error click was raised
	Rage     bool   `json:"rage,omitempty"` // part of a rage burst
}

// RageBurst is a rage burst that may still grow.
type RageBurst struct {
	First  PendingClick `json:"first"`
	LastAt int64        `json:"last"`
	X      int          `json:"x"`
	Y      int          `json:"y"`
	Count  int          `json:"count"`
}

// Empty reports whether the state holds nothing for later batches, so the
// store need not keep it.
func (s *SignalState) Empty() bool {
	return s == nil || (len(s.Pending) == 0 && len(s.Recent) == 0 && s.Burst == nil && s.InputAt == 0)
}

// DeriveSignals applies the signal rules to batch b of a page view whose
// state from earlier batches is st (updated in place; a zero state for a
// new page view) and returns the signals raised, in time order, with
// b's session and page view. Signals of kinds raised by requests are not
// its concern.
//
// Windows that cross a batch boundary: clicks whose verdict needs later
// events stay in st.Pending until a later batch of the page view brings
// events JudgeAfter ms after them, or the page view ends (its pagehide
// event, or EndPageView when a later page view of the session starts). A
// page view that sends nothing more and never ends leaves its last clicks
// unjudged: without later events there is no evidence either way.
func DeriveSignals(st *SignalState, b *Batch) []Signal {
	d := deriver{st: st, b: b}
	if st.URL == "" {
		st.URL = b.URL
	}
	f := &b.Signals
	// Evidence in this batch for clicks of earlier ones.
	for i := range st.Pending {
		d.evidence(&st.Pending[i], f.FirstMutation)
	}
	// This batch's clicks and inputs, in time order.
	ci, ii := 0, 0
	for ci < len(b.Clicks) || ii < len(b.Inputs) {
		if ii < len(b.Inputs) && (ci == len(b.Clicks) || b.Inputs[ii].At < b.Clicks[ci].At) {
			in := b.Inputs[ii]
			ii++
			st.InputAt, st.InputNode = max(in.At, 1), in.NodeID
			continue
		}
		c := &b.Clicks[ci]
		ci++
		d.click(c)
	}
	// Script and console errors.
	for _, e := range b.Errors {
		kind := SignalJSError
		if e.Kind == "console" {
			kind = SignalConsoleError
		}
		d.raise(Signal{At: e.At, Kind: kind, Detail: e.Message})
	}
	st.LastAt = max(st.LastAt, b.LastTS)
	if f.PageHide > 0 {
		d.end(f.PageHide)
	} else {
		d.judge(false, 0)
	}
	slices.SortStableFunc(d.out, func(a, b Signal) int { return int(a.At - b.At) })
	return d.out
}

// Tab is the browser tab of the batch's page view, from its page info; ""
// when unknown (not the first batch, or an old recorder). A page view
// that starts ends the session's earlier unfinished ones of the same tab,
// or of any tab when a tab is unknown.
func (b *Batch) Tab() string {
	if b.Page == nil {
		return ""
	}
	return b.Page.Tab
}

// EndPageView ends a page view whose state is st at time at (a later page
// view of the session started then): its pending clicks get their verdict,
// a rage burst is raised, unsubmitted inputs are a form_abandon. The
// signals carry sessionID and pageViewID.
func EndPageView(st *SignalState, sessionID, pageViewID string, at int64) []Signal {
	d := deriver{st: st, b: &Batch{SessionID: sessionID, PageViewID: pageViewID}}
	d.end(at)
	return d.out
}

type deriver struct {
	st  *SignalState
	b   *Batch
	out []Signal
}

func (d *deriver) raise(s Signal) {
	s.SessionID, s.PageViewID = d.b.SessionID, d.b.PageViewID
	if s.URL == "" {
		s.URL = d.st.URL
	}
	d.out = append(d.out, s)
}

// evidence applies the batch's requests, errors and first mutation to a
// click of an earlier batch.
func (d *deriver) evidence(p *PendingClick, firstMutation int64) {
	if firstMutation >= p.At && firstMutation <= p.At+DeadWindow {
		p.Alive = true
	}
	d.requestsAndErrors(p)
}

func (d *deriver) requestsAndErrors(p *PendingClick) {
	f := &d.b.Signals
	for _, r := range f.Requests {
		if r >= p.At && r <= p.At+DeadWindow {
			p.Alive = true
			// A request the click started sends what was typed before
			// it, whatever the control.
			if st := d.st; st.InputAt > 0 && st.InputAt <= p.At {
				st.InputAt, st.InputNode = 0, 0
			}
			break
		}
	}
	if p.ErrorMsg == "" {
		for _, e := range d.b.Errors {
			if e.Kind != "console" && e.At >= p.At && e.At <= p.At+ErrorWindow {
				p.ErrorMsg = e.Message
				if p.ErrorMsg == "" {
					p.ErrorMsg = e.Kind
				}
				break
			}
		}
	}
	if p.ErrorMsg != "" && !p.Raised {
		p.Raised = true
		d.raise(Signal{At: p.At, Kind: SignalErrorClick, X: p.X, Y: p.Y, NodeID: p.NodeID, Target: p.Target, Detail: p.ErrorMsg})
	}
}

// click applies the rules to one click of the batch.
func (d *deriver) click(c *Click) {
	st := d.st
	p := PendingClick{At: c.At, X: c.X, Y: c.Y, NodeID: c.NodeID, Target: c.Target,
		Alive: c.Mutated || c.Field}
	if c.Submit {
		st.InputAt, st.InputNode = 0, 0
	}
	d.requestsAndErrors(&p)
	st.Pending = append(st.Pending, p)

	// Rage: extend the burst, or close it and look for a new one.
	if bu := st.Burst; bu != nil {
		if near(bu.X, bu.Y, c.X, c.Y) && c.At-bu.LastAt <= RageWindow {
			bu.LastAt, bu.X, bu.Y = c.At, c.X, c.Y
			bu.Count++
			st.Pending[len(st.Pending)-1].Rage = true
			return
		}
		d.closeBurst()
	}
	recent := st.Recent[:0]
	for _, r := range st.Recent {
		if c.At-r.At <= RageWindow {
			recent = append(recent, r)
		}
	}
	var nearby []PendingClick
	for _, r := range recent {
		if near(r.X, r.Y, c.X, c.Y) {
			nearby = append(nearby, r)
		}
	}
	if len(nearby)+1 >= RageClicks {
		// The burst's clicks are not dead clicks as well.
		for i := range st.Pending {
			q := &st.Pending[i]
			for _, n := range nearby {
				if q.At == n.At && q.X == n.X && q.Y == n.Y {
					q.Rage = true
				}
			}
		}
		st.Pending[len(st.Pending)-1].Rage = true
		st.Burst = &RageBurst{First: nearby[0], LastAt: c.At, X: c.X, Y: c.Y, Count: len(nearby) + 1}
		if st.Burst.First.Target == "" {
			st.Burst.First.Target = c.Target
		}
		st.Recent = nil
		return
	}
	st.Recent = append(recent, p)
}

func (d *deriver) closeBurst() {
	bu := d.st.Burst
	if bu == nil {
		return
	}
	d.st.Burst = nil
	f := bu.First
	d.raise(Signal{At: f.At, Kind: SignalRageClick, X: f.X, Y: f.Y, NodeID: f.NodeID, Target: f.Target,
		Detail: fmt.Sprintf("%d clicks", bu.Count)})
}

// judge gives their verdict to the pending clicks the page view's events
// have moved JudgeAfter past, or all of them if ended (at time end), and
// closes a rage burst that can no longer grow.
func (d *deriver) judge(ended bool, end int64) {
	st := d.st
	keep := st.Pending[:0]
	for _, p := range st.Pending {
		if !ended && st.LastAt < p.At+JudgeAfter {
			keep = append(keep, p)
			continue
		}
		if ended && end >= p.At && end <= p.At+NavWindow {
			p.Alive = true // it navigated away
		}
		if !p.Alive && !p.Rage && p.ErrorMsg == "" {
			d.raise(Signal{At: p.At, Kind: SignalDeadClick, X: p.X, Y: p.Y, NodeID: p.NodeID, Target: p.Target,
				Detail: "nothing happened within 1 s"})
		}
	}
	st.Pending = keep
	if len(keep) == 0 {
		st.Pending = nil
	}
	if st.Burst != nil && (ended || st.LastAt > st.Burst.LastAt+RageWindow) {
		d.closeBurst()
	}
	if ended {
		st.Recent = nil
	} else {
		recent := st.Recent[:0]
		for _, r := range st.Recent {
			if st.LastAt-r.At <= RageWindow {
				recent = append(recent, r)
			}
		}
		st.Recent = recent
		if len(recent) == 0 {
			st.Recent = nil
		}
	}
}

// end ends the page view at time at.
func (d *deriver) end(at int64) {
	d.judge(true, at)
	st := d.st
	if st.InputAt > 0 {
		d.raise(Signal{At: max(at, st.InputAt), Kind: SignalFormAbandon, NodeID: st.InputNode,
			Detail: "left the page with a form filled in but not submitted"})
		st.InputAt, st.InputNode = 0, 0
	}
}

func near(x1, y1, x2, y2 int) bool {
	dx, dy := x1-x2, y1-y2
	return dx*dx+dy*dy <= RageRadius*RageRadius
}

// ErrTooMany is returned when a session already holds as many notes as
// allowed.
var ErrTooMany = errors.New("too many")

// Annotator is the session tags and notes storage. Both backends implement
// it beside Store.
type Annotator interface {
	Tags(ctx context.Context, sessionID string) ([]string, error)
	SetTags(ctx context.Context, sessionID string, tags []string) ([]string, error)
	Notes(ctx context.Context, sessionID string) ([]Note, error)
	AddNote(ctx context.Context, n *Note) error
	DeleteNote(ctx context.Context, sessionID string, id int64) error
	// TagsOf returns the tags of each of the sessions that has any,
	// sorted.
	TagsOf(ctx context.Context, sessionIDs []string) (map[string][]string, error)
}

// SignalReader reads a session's signals, in time order; ErrNotFound for
// an unknown session. Both backends implement it beside Store.
type SignalReader interface {
	Signals(ctx context.Context, sessionID string) ([]Signal, error)
}

// PageViewIdle is how long a page view that still waits for verdicts
// (pending clicks, unsubmitted inputs) may go without a batch before it is
// taken as left: its tab was closed or its browser stopped without a
// pagehide reaching the collector. The session cookie's idle timeout.
const PageViewIdle = 30 * time.Minute

// IdleEnder ends idle page views. Both backends implement it beside Store;
// the collector calls it periodically.
type IdleEnder interface {
	// EndIdlePageViews ends, as EndPageView does, the page views that
	// still hold signal state and received no batch at or after
	// idleBefore: their pending clicks get a verdict and unsubmitted inputs
	// are a form_abandon, at the page view's latest event. It ends at most
	// limit of them and returns how many it ended. Safe to call from
	// several nodes at once: a page view is ended once.
	EndIdlePageViews(ctx context.Context, idleBefore time.Time, limit int) (int, error)
}
