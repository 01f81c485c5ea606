package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

func mustActivity(tb testing.TB, s store.Store, id string) *store.Activity {
	tb.Helper()
	a, err := s.Activity(context.Background(), id)
	if err != nil {
		tb.Fatalf("activity %q: %v", id, err)
	}
	return a
}

// apply returns copies of bs in the given order with the session id set to
// id and page view ids (of batches and derived rows) prefixed with it.
func apply(bs []*store.Batch, order []int, id string) []*store.Batch {
	var out []*store.Batch
	for _, j := range order {
		b := *bs[j]
		b.SessionID = id
		b.PageViewID = id + b.PageViewID
		b.Clicks = slices.Clone(b.Clicks)
		for k := range b.Clicks {
			b.Clicks[k].PageViewID = b.PageViewID
		}
		b.Inputs = slices.Clone(b.Inputs)
		for k := range b.Inputs {
			b.Inputs[k].PageViewID = b.PageViewID
		}
		b.Errors = slices.Clone(b.Errors)
		for k := range b.Errors {
			b.Errors[k].PageViewID = b.PageViewID
		}
		out = append(out, &b)
	}
	return out
}

// orders are the arrival orders of a four-batch session the derived-row
// cases run under.
var orders = []struct {
	name  string
	order []int
}{
	{"in order", []int{0, 1, 2, 3}},
	{"second page first", []int{2, 3, 0, 1}},
	{"reversed", []int{3, 2, 1, 0}},
	{"first page's second batch first", []int{1, 3, 2, 0}},
}

// derivedPages is a session of two page views of two batches each, with
// clicks, inputs, errors, scroll, viewport, page info and client.
func derivedPages() []*store.Batch {
	b := []*store.Batch{
		Batch("", "pv1", 0, base, 10, 50, "https://shop.example/?utm_source=ads", 0),         // 0..450
		Batch("", "pv1", 1, base+500, 10, 50, "", 0),                                         // 500..950
		Batch("", "pv2", 0, base+2000, 10, 50, "https://shop.example/cart", 0),               // 2000..2450
		Batch("", "pv2", 1, base+2500, 10, 50, "https://shop.example/cart#reloaded-meta", 0), // 2500..2950
	}
	b[0].Clicks = []store.Click{{At: base + 100, X: 10, Y: 20, NodeID: 7}, {At: base + 300, X: 11, Y: 21, NodeID: 8}}
	b[0].Inputs = []store.Input{{At: base + 200, NodeID: 9}}
	b[0].ScrollDepth, b[0].ViewportW, b[0].ViewportH = 1600, 1280, 800
	b[0].Page = &store.PageInfo{Referrer: "https://search.example/", Language: "en-GB",
		UTMSource: "ads", UTMMedium: "cpc", UTMCampaign: "spring", UTMTerm: "shoes", UTMContent: "banner"}
	b[0].Client = store.Client{Browser: "Firefox", BrowserVersion: "128.0", OS: "Linux", Device: "desktop", Country: "FR", IPHash: "aa", IP: "192.0.2.1"}

	b[1].Clicks = []store.Click{{At: base + 600, X: 12, Y: 22, NodeID: 9}}
	b[1].Inputs = []store.Input{{At: base + 550, NodeID: 9}, {At: base + 560, NodeID: 9}, {At: base + 570, NodeID: 10}}
	b[1].Errors = []store.JSError{{At: base + 700, Kind: "error", Message: "TypeError: x is undefined",
		Stack: "at f (app.js:1:2)\nat g (app.js:3:4)", Source: "https://shop.example/app.js", Line: 1, Column: 2}}
	b[1].ScrollDepth = 2400 // deepest of pv1
	b[1].Client = store.Client{Browser: "Chrome", Device: "mobile"}

	b[2].Clicks = []store.Click{{At: base + 2100, X: 1, Y: 2, NodeID: 3}}
	b[2].Errors = []store.JSError{
		{At: base + 2200, Kind: "rejection", Message: "Error: 500", Source: "", Line: 0, Column: 0},
		{At: base + 2200, Kind: "console", Message: "second at the same ms", Line: 5, Column: 6},
	}
	b[2].ScrollDepth, b[2].ViewportW, b[2].ViewportH = 900, 390, 844
	b[2].Page = &store.PageInfo{Referrer: "https://shop.example/", Language: "fr-FR"}
	b[2].Client = store.Client{Browser: "Safari", OS: "iOS", Device: "mobile", Country: "US"}

	b[3].ScrollDepth, b[3].ViewportW, b[3].ViewportH = 500, 844, 390 // rotated; seq 0's viewport stays
	return b
}

// comparablePV is a PageView with its times as Unix ms, since backends may
// return different locations.
type comparablePV struct {
	store.PageView
	Start, End int64
}

func pvs(ps []*store.PageView) []comparablePV {
	out := []comparablePV{}
	for _, p := range ps {
		c := comparablePV{PageView: *p, Start: p.StartedAt.UnixMilli(), End: p.EndedAt.UnixMilli()}
		c.StartedAt, c.EndedAt = time.Time{}, time.Time{}
		out = append(out, c)
	}
	return out
}

func diffList[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\ngot  %+v\nwant %+v", what, got, want)
	}
}

// testActivity: every derived row round trips, in time order, whatever
// order the batches arrive in; page views carry their summaries.
func testActivity(t *testing.T, s store.Store) {
	for i, tt := range orders {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("act%d", i)
			bs := apply(derivedPages(), tt.order, id)
			mustAppend(t, s, bs...)
			all := apply(derivedPages(), []int{0, 1, 2, 3}, id)
			pv1, pv2 := id+"pv1", id+"pv2"
			a := mustActivity(t, s, id)

			diffList(t, "page views", pvs(a.PageViews), pvs([]*store.PageView{
				{ID: pv1, SessionID: id, URL: "https://shop.example/?utm_source=ads",
					StartedAt: time.UnixMilli(base), EndedAt: time.UnixMilli(base + 950),
					Referrer: "https://search.example/", ViewportW: 1280, ViewportH: 800, ScrollDepth: 2400,
					ClickCount: 3, InputCount: 4, ErrorCount: 1, EventCount: 20},
				{ID: pv2, SessionID: id, URL: "https://shop.example/cart",
					StartedAt: time.UnixMilli(base + 2000), EndedAt: time.UnixMilli(base + 2950),
					Referrer: "https://shop.example/", ViewportW: 390, ViewportH: 844, ScrollDepth: 900,
					ClickCount: 1, InputCount: 0, ErrorCount: 2, EventCount: 20},
			}))
			var clicks []store.Click
			var inputs []store.Input
			var errs []store.JSError
			for _, b := range all {
				clicks = append(clicks, b.Clicks...)
				inputs = append(inputs, b.Inputs...)
				errs = append(errs, b.Errors...)
			}
			slices.SortStableFunc(clicks, func(a, b store.Click) int { return int(a.At - b.At) })
			slices.SortStableFunc(inputs, func(a, b store.Input) int { return int(a.At - b.At) })
			diffList(t, "clicks", a.Clicks, clicks)
			diffList(t, "inputs", a.Inputs, inputs)
			diffList(t, "errors", a.Errors, errs)
		})
	}
}

// testEnrichment: the client comes from the first batch received that has
// one; acquisition and viewport from the entry page view, whatever the
// arrival order; counts are summed.
func testEnrichment(t *testing.T, s store.Store) {
	for i, tt := range orders {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("enr%d", i)
			bs := apply(derivedPages(), tt.order, id)
			mustAppend(t, s, bs...)
			got := mustSession(t, s, id)
			var raw int64
			for _, b := range bs {
				raw += int64(len(b.Events))
			}
			want := store.Session{
				ID:          id,
				StartedAt:   time.UnixMilli(base),
				EndedAt:     time.UnixMilli(base + 2950),
				PageCount:   2,
				ClickCount:  4,
				InputCount:  4,
				ErrorCount:  3,
				EventCount:  40,
				EntryURL:    "https://shop.example/?utm_source=ads",
				UserAgent:   bs[0].UserAgent,
				Bytes:       raw,
				StoredBytes: got.StoredBytes,
				Client:      bs[0].Client, // every batch but pv2/1 has one
				Referrer:    "https://search.example/",
				Language:    "en-GB",
				ViewportW:   1280, ViewportH: 800,
				UTMSource: "ads", UTMMedium: "cpc", UTMCampaign: "spring",
			}
			if tt.order[0] == 3 { // pv2/1 has no client: the next batch's
				want.Client = bs[1].Client
			}
			checkSession(t, got, &want)
		})
	}

	tests := []struct {
		name string
		bs   func(id string) []*store.Batch
		want func(*store.Session)
	}{
		{
			name: "client only on a later batch",
			bs: func(id string) []*store.Batch {
				a := Batch(id, id+"a", 0, base, 3, 10, "", 0)
				b := Batch(id, id+"a", 1, base+100, 3, 10, "", 0)
				b.Client = store.Client{Country: "NZ"}
				c := Batch(id, id+"a", 2, base+200, 3, 10, "", 0)
				c.Client = store.Client{Browser: "Edge", Country: "AU"}
				return []*store.Batch{a, b, c}
			},
			want: func(s *store.Session) { s.Client = store.Client{Country: "NZ"} },
		},
		{
			name: "entry page view reported no page info",
			bs: func(id string) []*store.Batch {
				a := Batch(id, id+"a", 0, base, 3, 10, "https://x.example/", 0) // Page nil: no recorder info
				b := Batch(id, id+"b", 0, base+1000, 3, 10, "https://x.example/b", 0)
				b.Page = &store.PageInfo{Referrer: "https://ref.example/", Language: "de", UTMCampaign: "c"}
				b.ViewportW, b.ViewportH = 800, 600
				return []*store.Batch{b, a}
			},
			want: func(s *store.Session) {
				s.Referrer, s.Language, s.UTMCampaign = "https://ref.example/", "de", "c"
				s.ViewportW, s.ViewportH = 800, 600
			},
		},
		{
			name: "entry page view has an empty referrer",
			bs: func(id string) []*store.Batch {
				a := Batch(id, id+"a", 0, base, 3, 10, "https://x.example/", 0)
				a.Page = &store.PageInfo{Language: "it"}
				b := Batch(id, id+"b", 0, base+1000, 3, 10, "https://x.example/b", 0)
				b.Page = &store.PageInfo{Referrer: "https://x.example/", Language: "it", UTMSource: "later"}
				return []*store.Batch{b, a}
			},
			want: func(s *store.Session) { s.Language = "it" },
		},
		{
			name: "page info of an earlier page arrives last",
			bs: func(id string) []*store.Batch {
				a1 := Batch(id, id+"a", 1, base+500, 3, 10, "", 0)
				a0 := Batch(id, id+"a", 0, base, 3, 10, "https://x.example/", 0)
				a0.Page = &store.PageInfo{Referrer: "https://first.example/"}
				b := Batch(id, id+"b", 0, base+1000, 3, 10, "https://x.example/b", 0)
				b.Page = &store.PageInfo{Referrer: "https://second.example/"}
				return []*store.Batch{a1, b, a0}
			},
			want: func(s *store.Session) { s.Referrer = "https://first.example/" },
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("enrc%d", i)
			mustAppend(t, s, tt.bs(id)...)
			got := mustSession(t, s, id)
			want := *got
			want.Client, want.Referrer, want.Language, want.ViewportW, want.ViewportH = store.Client{}, "", "", 0, 0
			want.UTMSource, want.UTMMedium, want.UTMCampaign = "", "", ""
			tt.want(&want)
			checkSession(t, got, &want)
		})
	}
}

// testScrollAndViewport: a page view's scroll depth is the maximum over its
// batches; its viewport is that of its lowest-seq batch that has one.
func testScrollAndViewport(t *testing.T, s store.Store) {
	mk := func(id string, seq int, depth, w, h int) *store.Batch {
		b := Batch(id, id+"p", seq, base+int64(seq)*100, 2, 10, "", 0)
		b.ScrollDepth, b.ViewportW, b.ViewportH = depth, w, h
		return b
	}
	tests := []struct {
		name          string
		bs            func(id string) []*store.Batch
		depth, vw, vh int
	}{
		{"deepest in the middle", func(id string) []*store.Batch {
			return []*store.Batch{mk(id, 0, 800, 1000, 700), mk(id, 1, 3000, 0, 0), mk(id, 2, 1200, 0, 0)}
		}, 3000, 1000, 700},
		{"reversed", func(id string) []*store.Batch {
			return []*store.Batch{mk(id, 2, 1200, 500, 500), mk(id, 1, 3000, 0, 0), mk(id, 0, 800, 1000, 700)}
		}, 3000, 1000, 700},
		{"only a later batch has a viewport", func(id string) []*store.Batch {
			return []*store.Batch{mk(id, 0, 0, 0, 0), mk(id, 3, 0, 640, 480), mk(id, 1, 0, 0, 0)}
		}, 0, 640, 480},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("sv%d", i)
			mustAppend(t, s, tt.bs(id)...)
			a := mustActivity(t, s, id)
			if len(a.PageViews) != 1 {
				t.Fatalf("page views: got %d, want 1", len(a.PageViews))
			}
			pv := a.PageViews[0]
			if pv.ScrollDepth != tt.depth || pv.ViewportW != tt.vw || pv.ViewportH != tt.vh {
				t.Errorf("ScrollDepth, ViewportW, ViewportH: got %d, %d, %d, want %d, %d, %d",
					pv.ScrollDepth, pv.ViewportW, pv.ViewportH, tt.depth, tt.vw, tt.vh)
			}
		})
	}
}

// testDuplicateDerived: a duplicate batch writes none of its derived rows
// nor any summary.
func testDuplicateDerived(t *testing.T, s store.Store) {
	ctx := context.Background()
	bs := apply(derivedPages(), []int{0, 1, 2, 3}, "dd")
	mustAppend(t, s, bs...)
	before := mustSession(t, s, "dd")
	actBefore := mustActivity(t, s, "dd")
	evBefore := mustEvents(t, s, "dd")

	tests := []struct {
		name string
		b    func() *store.Batch
	}{
		{"same batch again", func() *store.Batch { return bs[1] }},
		{"same seq, other derived rows", func() *store.Batch {
			b := *bs[0]
			b.Clicks = []store.Click{{PageViewID: b.PageViewID, At: base + 1, X: 1, Y: 1, NodeID: 1}}
			b.Inputs = []store.Input{{PageViewID: b.PageViewID, At: base + 1, NodeID: 1}}
			b.Errors = []store.JSError{{PageViewID: b.PageViewID, At: base + 1, Kind: "error", Message: "dup"}}
			b.ScrollDepth, b.ViewportW, b.ViewportH = 99999, 1, 1
			b.Page = &store.PageInfo{Referrer: "https://dup.example/"}
			b.Client = store.Client{Browser: "Dup"}
			return &b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.AppendBatch(ctx, tt.b()); !errors.Is(err, store.ErrDuplicate) {
				t.Fatalf("append: got %v, want ErrDuplicate", err)
			}
			checkSession(t, mustSession(t, s, "dd"), before)
			a := mustActivity(t, s, "dd")
			diffList(t, "page views", pvs(a.PageViews), pvs(actBefore.PageViews))
			diffList(t, "clicks", a.Clicks, actBefore.Clicks)
			diffList(t, "inputs", a.Inputs, actBefore.Inputs)
			diffList(t, "errors", a.Errors, actBefore.Errors)
			if got := mustEvents(t, s, "dd"); !bytes.Equal(got, evBefore) {
				t.Errorf("events changed")
			}
		})
	}
}

// testEmptyDerived: batches without derived rows, nil or empty, store
// none; Activity lists are empty.
func testEmptyDerived(t *testing.T, s store.Store) {
	a := Batch("ed", "eda", 0, base, 3, 10, "", 0)
	b := Batch("ed", "eda", 1, base+100, 3, 10, "", 0)
	b.Clicks, b.Inputs, b.Errors = []store.Click{}, []store.Input{}, []store.JSError{}
	mustAppend(t, s, a, b, &store.Batch{SessionID: "ed", PageViewID: "edb", Events: []byte("[]")})
	act := mustActivity(t, s, "ed")
	if len(act.Clicks)+len(act.Inputs)+len(act.Errors) != 0 {
		t.Errorf("clicks, inputs, errors: got %d, %d, %d, want none", len(act.Clicks), len(act.Inputs), len(act.Errors))
	}
	if len(act.PageViews) != 2 || act.PageViews[0].ID != "eda" || act.PageViews[1].ID != "edb" {
		t.Fatalf("page views: got %+v, want eda then edb (no events yet)", act.PageViews)
	}
	if pv := act.PageViews[1]; pv.EventCount != 0 || pv.ScrollDepth != 0 || pv.ViewportW != 0 {
		t.Errorf("empty page view: got %+v", pv)
	}
	got := mustSession(t, s, "ed")
	if got.ClickCount != 0 || got.InputCount != 0 || got.ErrorCount != 0 || got.Client != (store.Client{}) || got.Referrer != "" {
		t.Errorf("session: got %+v, want no derived counts or enrichment", got)
	}
}

// timeOrdered returns the events of bs as WriteEvents must write them: the
// batches' events concatenated in order of first timestamp, page view, seq.
func timeOrdered(tb testing.TB, bs []*store.Batch) []json.RawMessage {
	tb.Helper()
	sorted := slices.Clone(bs)
	slices.SortFunc(sorted, func(a, b *store.Batch) int {
		if a.FirstTS != b.FirstTS {
			return int(a.FirstTS - b.FirstTS)
		}
		if c := strings.Compare(a.PageViewID, b.PageViewID); c != 0 {
			return c
		}
		return a.Seq - b.Seq
	})
	var out []json.RawMessage
	for _, b := range sorted {
		var evs []json.RawMessage
		if err := json.Unmarshal(b.Events, &evs); err != nil {
			tb.Fatalf("batch events: %v", err)
		}
		out = append(out, evs...)
	}
	return out
}

// testCompression: however the store compresses (across chunks, in any
// arrival order), the events read back are exactly those written, and the
// real Chromium sample is stored in at most a tenth of its size.
func testCompression(t *testing.T, s store.Store) {
	n := 3
	if !testing.Short() {
		n = 6
	}
	samples := []struct {
		name string
		bs   func(id string) []*store.Batch
	}{
		{"chromium", ChromiumSession},
		{"recording", func(id string) []*store.Batch { return Recording(id, n, 8) }},
	}
	arrivals := []struct {
		name  string
		order func(n int) []int
	}{
		{"as received", func(n int) []int { return seq(n) }},
		{"reversed", func(n int) []int { s := seq(n); slices.Reverse(s); return s }},
		{"interleaved", func(n int) []int {
			s := seq(n)
			var out []int
			for i := 0; i < n; i += 2 {
				out = append(out, s[i])
			}
			for i := n - 1 - n%2; i >= 1; i -= 2 {
				out = append(out, s[i])
			}
			return out
		}},
	}
	for _, sm := range samples {
		for _, ar := range arrivals {
			t.Run(sm.name+"/"+ar.name, func(t *testing.T) {
				id := "cmp-" + sm.name + "-" + strings.ReplaceAll(ar.name, " ", "-")
				bs := sm.bs(id)
				var in []*store.Batch
				for _, j := range ar.order(len(bs)) {
					in = append(in, bs[j])
				}
				if len(in) != len(bs) {
					t.Fatalf("order has %d batches, want %d", len(in), len(bs))
				}
				mustAppend(t, s, in...)
				var got []json.RawMessage
				if err := json.Unmarshal(mustEvents(t, s, id), &got); err != nil {
					t.Fatalf("events: %v", err)
				}
				want := timeOrdered(t, bs)
				if len(got) != len(want) {
					t.Fatalf("events: got %d, want %d", len(got), len(want))
				}
				for i := range got {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("event %d:\ngot  %.200s\nwant %.200s", i, got[i], want[i])
					}
				}
				sess := mustSession(t, s, id)
				t.Logf("%d batches, %d bytes stored as %d (%.1f×)", len(bs), sess.Bytes, sess.StoredBytes,
					float64(sess.Bytes)/float64(sess.StoredBytes))
				if sm.name == "chromium" && sess.StoredBytes*10 > sess.Bytes {
					t.Errorf("StoredBytes %d, want at most a tenth of Bytes %d", sess.StoredBytes, sess.Bytes)
				}
			})
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
