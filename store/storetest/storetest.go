// Package storetest is the conformance suite every store.Store backend runs,
// so that SQLite and PostgreSQL are proven to behave alike. A backend's test
// calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	runCases(t, open, []testCase[store.Store]{
		{"Summary", testSummary},
		{"PageViewURL", testPageViewURL},
		{"Duplicate", testDuplicate},
		{"DuplicateConcurrent", testDuplicateConcurrent},
		{"Events", testEvents},
		{"EmptyEvents", testEmptyEvents},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListLimitBounds", testListLimitBounds},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Ping", testPing},
		{"Activity", testActivity},
		{"Enrichment", testEnrichment},
		{"ScrollAndViewport", testScrollAndViewport},
		{"DuplicateDerived", testDuplicateDerived},
		{"EmptyDerived", testEmptyDerived},
		{"Compression", testCompression},
	})
}

// testCase is one case of a suite, run on a store of type S.
type testCase[S any] struct {
	name string
	fn   func(*testing.T, S)
}

// runCases runs each case as a subtest on a new store from open, closed
// when the subtest ends.
func runCases[S interface{ Close() error }](t *testing.T, open func(*testing.T) S, cases []testCase[S]) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// base is the time of the first event of the test sessions, Unix ms.
var base = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).UnixMilli()

// Batch builds a batch whose events are n mouse-move events spaced step ms
// apart from first (n ≥ 1), the first of them a Meta event when url is set,
// and the last clicks of them clicks. It is exported for backend-specific
// tests.
func Batch(session, pageView string, seq int, first int64, n int, step int64, url string, clicks int) *store.Batch {
	var ev []string
	for i := range n {
		ts := first + int64(i)*step
		switch {
		case i == 0 && url != "":
			ev = append(ev, fmt.Sprintf(`{"type":4,"data":{"href":%q,"width":1280,"height":800},"timestamp":%d}`, url, ts))
		case i >= n-clicks:
			ev = append(ev, fmt.Sprintf(`{"type":3,"data":{"source":2,"type":2,"id":%d,"x":%d,"y":%d},"timestamp":%d}`, 10+i, 100+i, 200+i, ts))
		default:
			ev = append(ev, fmt.Sprintf(`{"type":3,"data":{"source":1,"positions":[{"x":%d,"y":%d,"id":5,"timeOffset":0}]},"timestamp":%d}`, i, 2*i, ts))
		}
	}
	events := "[" + strings.Join(ev, ",") + "]"
	return &store.Batch{
		SessionID:  session,
		PageViewID: pageView,
		Seq:        seq,
		Events:     []byte(events),
		EventCount: n,
		FirstTS:    first,
		LastTS:     first + int64(n-1)*step,
		Clicks:     make([]store.Click, clicks),
		URL:        url,
		UserAgent:  "Mozilla/5.0 (" + pageView + "/" + fmt.Sprint(seq) + ")",
		ReceivedAt: time.UnixMilli(first + int64(n)*step).UTC(),
	}
}

func mustAppend(tb testing.TB, s store.Store, bs ...*store.Batch) {
	tb.Helper()
	for _, b := range bs {
		if err := s.AppendBatch(context.Background(), b); err != nil {
			tb.Fatalf("append %s/%s/%d: %v", b.SessionID, b.PageViewID, b.Seq, err)
		}
	}
}

func mustSession(tb testing.TB, s store.Store, id string) *store.Session {
	tb.Helper()
	got, err := s.Session(context.Background(), id)
	if err != nil {
		tb.Fatalf("session %q: %v", id, err)
	}
	return got
}

func mustEvents(tb testing.TB, s store.Store, id string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := s.WriteEvents(context.Background(), id, &buf); err != nil {
		tb.Fatalf("write events %q: %v", id, err)
	}
	return buf.Bytes()
}

// threePages is a session of three page views, 1 s apart, two batches in
// the first page view. Only seq 0 of each page view carries the URL.
func threePages() []*store.Batch {
	return []*store.Batch{
		Batch("s1", "pv1", 0, base, 10, 50, "https://shop.example/", 1),          // 0..450
		Batch("s1", "pv1", 1, base+500, 10, 50, "", 2),                           // 500..950
		Batch("s1", "pv2", 0, base+2000, 20, 50, "https://shop.example/cart", 0), // 2000..2950
		Batch("s1", "pv3", 0, base+4000, 5, 100, "https://shop.example/done", 3), // 4000..4400
	}
}

func testSummary(t *testing.T, s store.Store) {
	bs := threePages()
	var raw int64
	for _, b := range bs {
		raw += int64(len(b.Events))
	}
	tests := []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2, 3}},
		{"second page first", []int{2, 0, 1, 3}},
		{"reversed", []int{3, 2, 1, 0}},
		{"first page's second batch first", []int{1, 3, 2, 0}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Distinct ids keep the cases apart in one store.
			id := fmt.Sprintf("sum%d", i)
			for _, j := range tt.order {
				b := *bs[j]
				b.SessionID = id
				b.PageViewID = id + b.PageViewID
				mustAppend(t, s, &b)
			}
			got := mustSession(t, s, id)
			want := store.Session{
				ID:          id,
				StartedAt:   time.UnixMilli(base).UTC(),
				EndedAt:     time.UnixMilli(base + 4400).UTC(),
				PageCount:   3,
				ClickCount:  6,
				EventCount:  45,
				EntryURL:    "https://shop.example/",
				UserAgent:   bs[tt.order[0]].UserAgent, // the first batch received
				Bytes:       raw,
				StoredBytes: got.StoredBytes,
			}
			checkSession(t, got, &want)
			if got.StoredBytes <= 0 {
				t.Errorf("StoredBytes = %d, want > 0", got.StoredBytes)
			}
			if d := got.Duration(); d != 4400*time.Millisecond {
				t.Errorf("Duration() = %v, want 4.4s", d)
			}
		})
	}
}

func checkSession(t *testing.T, got, want *store.Session) {
	t.Helper()
	// Compare times with Equal: backends may return different locations.
	if !got.StartedAt.Equal(want.StartedAt) {
		t.Errorf("StartedAt: got %v, want %v", got.StartedAt, want.StartedAt)
	}
	if !got.EndedAt.Equal(want.EndedAt) {
		t.Errorf("EndedAt: got %v, want %v", got.EndedAt, want.EndedAt)
	}
	g, w := *got, *want
	g.StartedAt, g.EndedAt, w.StartedAt, w.EndedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	// Behaviour fields have their own tests (signals.go).
	g.Signals, g.Friction, g.Converted, g.ExitURL, g.UserID = w.Signals, w.Friction, w.Converted, w.ExitURL, w.UserID
	if g != w {
		t.Errorf("session:\ngot  %+v\nwant %+v", g, w)
	}
}

// testPageViewURL: a page view's URL comes from its lowest-seq batch that has
// one; the entry and exit URLs follow the earliest and latest page views,
// and the page count the page views with events, not arrival order.
func testPageViewURL(t *testing.T, s store.Store) {
	tests := []struct {
		name        string
		bs          []*store.Batch
		entry, exit string
		pages       int
	}{
		{
			name: "later seq with a URL arrives first",
			bs: []*store.Batch{
				Batch("u1", "u1a", 1, base+500, 3, 10, "https://x.example/reloaded", 0),
				Batch("u1", "u1a", 0, base, 3, 10, "https://x.example/first", 0),
			},
			entry: "https://x.example/first", exit: "https://x.example/first", pages: 1,
		},
		{
			name: "first page has no URL",
			bs: []*store.Batch{
				Batch("u2", "u2b", 0, base+1000, 3, 10, "https://x.example/second", 0),
				Batch("u2", "u2a", 0, base, 3, 10, "", 0),
			},
			entry: "https://x.example/second", exit: "https://x.example/second", pages: 2,
		},
		{
			name: "no URL at all",
			bs: []*store.Batch{
				Batch("u3", "u3a", 0, base, 3, 10, "", 0),
			},
			pages: 1,
		},
		{
			name: "events after an empty first batch",
			bs: []*store.Batch{
				Batch("u4", "u4a", 0, base, 0, 10, "https://x.example/a", 0),
				Batch("u4", "u4a", 1, base+100, 3, 10, "", 0),
			},
			entry: "https://x.example/a", exit: "https://x.example/a", pages: 1,
		},
		{
			name: "an earlier batch without a URL reorders the pages",
			bs: []*store.Batch{
				Batch("u5", "u5a", 0, base+3000, 3, 10, "https://x.example/a", 0),
				Batch("u5", "u5b", 0, base+2000, 3, 10, "https://x.example/b", 0),
				Batch("u5", "u5a", 1, base, 3, 10, "", 0),
			},
			entry: "https://x.example/a", exit: "https://x.example/b", pages: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustAppend(t, s, tt.bs...)
			got := mustSession(t, s, tt.bs[0].SessionID)
			if got.EntryURL != tt.entry || got.ExitURL != tt.exit || got.PageCount != tt.pages {
				t.Errorf("entry, exit, pages: got %q, %q, %d; want %q, %q, %d",
					got.EntryURL, got.ExitURL, got.PageCount, tt.entry, tt.exit, tt.pages)
			}
		})
	}
}

func testDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := Batch("d1", "d1a", 0, base, 10, 10, "https://x.example/", 2)
	mustAppend(t, s, first, Batch("d1", "d1a", 1, base+100, 10, 10, "", 1))
	before := mustSession(t, s, "d1")
	eventsBefore := mustEvents(t, s, "d1")

	tests := []struct {
		name string
		b    *store.Batch
	}{
		{"same batch again", first},
		{"same seq, other content", Batch("d1", "d1a", 0, base-5000, 20, 10, "https://x.example/other", 7)},
		{"second seq again", Batch("d1", "d1a", 1, base+100, 10, 10, "", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AppendBatch(ctx, tt.b)
			if !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("append: got %v, want ErrDuplicate", err)
			}
			checkSession(t, mustSession(t, s, "d1"), before)
			if got := mustEvents(t, s, "d1"); !bytes.Equal(got, eventsBefore) {
				t.Errorf("events changed:\ngot  %s\nwant %s", got, eventsBefore)
			}
		})
	}
}

// testDuplicateConcurrent: of many simultaneous retries of one batch,
// exactly one is stored.
func testDuplicateConcurrent(t *testing.T, s store.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.AppendBatch(context.Background(), Batch("dc", "dca", 0, base, 10, 10, "", 1))
		})
	}
	wg.Wait()
	var stored int
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrDuplicate):
			t.Errorf("append: got %v, want nil or ErrDuplicate", err)
		}
	}
	if stored != 1 {
		t.Errorf("stored %d times, want 1", stored)
	}
	if got := mustSession(t, s, "dc"); got.EventCount != 10 || got.ClickCount != 1 {
		t.Errorf("EventCount, ClickCount: got %d, %d, want 10, 1", got.EventCount, got.ClickCount)
	}
}

// decodeEvents parses a JSON array of events, failing the test if it is not
// one.
func decodeEvents(tb testing.TB, b []byte) []map[string]any {
	tb.Helper()
	var evs []map[string]any
	if err := json.Unmarshal(b, &evs); err != nil {
		tb.Fatalf("events are not a JSON array of objects: %v\n%s", err, b)
	}
	if evs == nil {
		tb.Fatalf("events: got null, want an array")
	}
	return evs
}

func testEvents(t *testing.T, s store.Store) {
	bs := threePages()
	// Expected: the concatenation of the batches' events in time order.
	var want []map[string]any
	for _, b := range bs {
		want = append(want, decodeEvents(t, b.Events)...)
	}

	tests := []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2, 3}},
		{"out of order", []int{3, 1, 2, 0}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("ev%d", i)
			for _, j := range tt.order {
				b := *bs[j]
				b.SessionID = id
				b.PageViewID = id + b.PageViewID
				mustAppend(t, s, &b)
			}
			out := mustEvents(t, s, id)
			if !json.Valid(out) {
				t.Fatalf("output is not valid JSON:\n%s", out)
			}
			got := decodeEvents(t, out)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events:\ngot  %s\nwant the %d events of the batches in time order", out, len(want))
			}
			var last float64
			for k, ev := range got {
				ts, _ := ev["timestamp"].(float64)
				if ts < last {
					t.Fatalf("event %d: timestamp %v after %v", k, ts, last)
				}
				last = ts
			}
		})
	}
}

func testEmptyEvents(t *testing.T, s store.Store) {
	empty := func(session, pageView string, seq int, events string) *store.Batch {
		return &store.Batch{SessionID: session, PageViewID: pageView, Seq: seq, Events: []byte(events)}
	}
	full := Batch("e2", "e2a", 1, base, 3, 10, "https://x.example/", 1)
	full2 := Batch("e2", "e2a", 3, base+100, 2, 10, "", 0)
	tests := []struct {
		name      string
		bs        []*store.Batch
		id        string
		wantCount int // events
		wantPages int
	}{
		{"only an empty batch", []*store.Batch{empty("e1", "e1a", 0, "[]")}, "e1", 0, 0},
		{"empty batches around full ones", []*store.Batch{
			empty("e2", "e2a", 0, "[]"), full, empty("e2", "e2a", 2, " [ \n] "), full2, empty("e2", "e2b", 0, "[]"),
		}, "e2", 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustAppend(t, s, tt.bs...)
			out := mustEvents(t, s, tt.id)
			if got := decodeEvents(t, out); len(got) != tt.wantCount {
				t.Errorf("events: got %d, want %d:\n%s", len(got), tt.wantCount, out)
			}
			sess := mustSession(t, s, tt.id)
			if sess.EventCount != tt.wantCount || sess.PageCount != tt.wantPages {
				t.Errorf("EventCount, PageCount: got %d, %d, want %d, %d", sess.EventCount, sess.PageCount, tt.wantCount, tt.wantPages)
			}
			if tt.wantCount > 0 && !sess.StartedAt.Equal(time.UnixMilli(base)) {
				t.Errorf("StartedAt: got %v, want %v (empty batches carry no time)", sess.StartedAt, time.UnixMilli(base).UTC())
			}
		})
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustAppend(t, s, Batch("present", "pa", 0, base, 3, 10, "", 0))
	tests := []struct {
		name string
		call func(w *bytes.Buffer) error
	}{
		{"Session", func(*bytes.Buffer) error { _, err := s.Session(ctx, "absent"); return err }},
		{"Session empty id", func(*bytes.Buffer) error { _, err := s.Session(ctx, ""); return err }},
		{"WriteEvents", func(w *bytes.Buffer) error { return s.WriteEvents(ctx, "absent", w) }},
		{"WriteEvents page view id", func(w *bytes.Buffer) error { return s.WriteEvents(ctx, "pa", w) }},
		{"Activity", func(*bytes.Buffer) error { _, err := s.Activity(ctx, "absent"); return err }},
		{"Activity page view id", func(*bytes.Buffer) error { _, err := s.Activity(ctx, "pa"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			err := tt.call(&w)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
			if w.Len() != 0 {
				t.Errorf("wrote %q, want nothing", w.Bytes())
			}
		})
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Sessions l0..l4 start 1 minute apart; appended in a scrambled order.
	for _, i := range []int{2, 0, 4, 1, 3} {
		id := fmt.Sprintf("l%d", i)
		mustAppend(t, s, Batch(id, id+"p", 0, base+int64(i)*60_000, 3, 10, "", 0))
	}
	tests := []struct {
		name string
		f    store.SessionFilter
		want []string
	}{
		{"default", store.SessionFilter{}, []string{"l4", "l3", "l2", "l1", "l0"}},
		{"limit", store.SessionFilter{Limit: 2}, []string{"l4", "l3"}},
		{"limit and offset", store.SessionFilter{Limit: 2, Offset: 2}, []string{"l2", "l1"}},
		{"last page", store.SessionFilter{Limit: 2, Offset: 4}, []string{"l0"}},
		{"offset past the end", store.SessionFilter{Offset: 5}, []string{}},
		{"negative limit means default", store.SessionFilter{Limit: -1}, []string{"l4", "l3", "l2", "l1", "l0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, err := s.Sessions(ctx, tt.f)
			if err != nil {
				t.Fatalf("sessions: %v", err)
			}
			got := []string{}
			for _, x := range ss {
				got = append(got, x.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Listed sessions carry their summary.
	ss, err := s.Sessions(ctx, store.SessionFilter{Limit: 1})
	if err != nil {
		t.Fatalf("sessions: %v", err)
	}
	checkSession(t, ss[0], mustSession(t, s, "l4"))
}

func testListLimitBounds(t *testing.T, s store.Store) {
	if testing.Short() {
		t.Skip("appends 1001 sessions")
	}
	ctx := context.Background()
	for i := range 1001 {
		id := fmt.Sprintf("b%04d", i)
		mustAppend(t, s, Batch(id, id, 0, base+int64(i), 1, 1, "", 0))
	}
	tests := []struct {
		name string
		f    store.SessionFilter
		want int
	}{
		{"zero means 50", store.SessionFilter{}, 50},
		{"at most 1000", store.SessionFilter{Limit: 5000}, 1000},
		{"1000", store.SessionFilter{Limit: 1000}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, err := s.Sessions(ctx, tt.f)
			if err != nil {
				t.Fatalf("sessions: %v", err)
			}
			if len(ss) != tt.want {
				t.Errorf("got %d sessions, want %d", len(ss), tt.want)
			}
		})
	}
}

// testConcurrentAppends: 8 writers × 50 batches into one session (the most
// contended row) and one other each, with readers running alongside.
func testConcurrentAppends(t *testing.T, s store.Store) {
	const writers, batches, perBatch = 8, 50, 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for ctx.Err() == nil {
				if _, err := s.Sessions(ctx, store.SessionFilter{}); err != nil && ctx.Err() == nil {
					t.Errorf("sessions during appends: %v", err)
					return
				}
				var buf bytes.Buffer
				err := s.WriteEvents(ctx, "shared", &buf)
				if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
					t.Errorf("write events during appends: %v", err)
					return
				}
				if err == nil && !json.Valid(buf.Bytes()) {
					t.Errorf("events during appends are not valid JSON")
					return
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			pv := fmt.Sprintf("w%d", w)
			for i := range batches {
				// Writer w's page view covers its own time slot.
				first := base + int64(w)*1_000_000 + int64(i)*1000
				for _, sid := range []string{"shared", "own" + pv} {
					b := Batch(sid, sid+"-"+pv, i, first, perBatch, 10, "", 1)
					if err := s.AppendBatch(context.Background(), b); err != nil {
						t.Errorf("append %s/%d: %v", b.PageViewID, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	readers.Wait()

	got := mustSession(t, s, "shared")
	if got.EventCount != writers*batches*perBatch || got.ClickCount != writers*batches || got.PageCount != writers {
		t.Errorf("EventCount, ClickCount, PageCount: got %d, %d, %d, want %d, %d, %d",
			got.EventCount, got.ClickCount, got.PageCount, writers*batches*perBatch, writers*batches, writers)
	}
	evs := decodeEvents(t, mustEvents(t, s, "shared"))
	if len(evs) != writers*batches*perBatch {
		t.Errorf("events: got %d, want %d", len(evs), writers*batches*perBatch)
	}
	ss, err := s.Sessions(context.Background(), store.SessionFilter{Limit: 100})
	if err != nil {
		t.Fatalf("sessions: %v", err)
	}
	if len(ss) != writers+1 {
		t.Errorf("sessions: got %d, want %d", len(ss), writers+1)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("ping: %v", err)
	}
}
