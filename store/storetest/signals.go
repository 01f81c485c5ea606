package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// SignalStore is what RunSignals needs of a backend.
type SignalStore interface {
	store.Store
	store.SignalReader
	store.IdleEnder
	store.Annotator
}

// RunSignals runs the conformance suite of behaviour signals, session
// search, tags and notes. open must return a new, empty store for each
// call; RunSignals closes it when the subtest ends.
func RunSignals(t *testing.T, open func(t *testing.T) SignalStore) {
	t.Helper()
	runCases(t, open, []testCase[SignalStore]{
		{"WithinBatch", testSignalsWithinBatch},
		{"AcrossBatches", testSignalsAcrossBatches},
		{"PageEnd", testSignalsPageEnd},
		{"IdleEnd", testSignalsIdleEnd},
		{"Converted", testSignalsConverted},
		{"Search", testSearch},
		{"SearchBadFilter", testSearchBadFilter},
		{"Tags", testTags},
		{"Notes", testNotes},
	})
}

// sigBatch is a batch of page view pv spanning first..first+span ms (n
// mouse moves, a Meta event first when url is set), with no derived rows.
// Its page view id is session/pv.
func sigBatch(session, pv string, seq int, first, span int64, url string) *store.Batch {
	b := Batch(session, session+"/"+pv, seq, first, 11, span/10, url, 0)
	b.Clicks = nil
	return b
}

func click(at int64, x, y int, target string) store.Click {
	return store.Click{At: at, X: x, Y: y, NodeID: 7, Target: target}
}

func mustSignals(tb testing.TB, s SignalStore, id string) []store.Signal {
	tb.Helper()
	sigs, err := s.Signals(context.Background(), id)
	if err != nil {
		tb.Fatalf("signals %q: %v", id, err)
	}
	return sigs
}

// kinds lists the signals as "kind@ms after base".
func kinds(sigs []store.Signal) string {
	var out []string
	for _, g := range sigs {
		out = append(out, fmt.Sprintf("%s@%d", g.Kind, g.At-base))
	}
	return strings.Join(out, " ")
}

func checkCounts(t *testing.T, s SignalStore, id string, want store.SignalCounts) *store.Session {
	t.Helper()
	got := mustSession(t, s, id)
	if got.Signals != want {
		t.Errorf("%s counts: got %+v, want %+v", id, got.Signals, want)
	}
	if f := store.Friction(want, got.Converted); got.Friction != f {
		t.Errorf("%s friction: got %v, want %v", id, got.Friction, f)
	}
	return got
}

func testSignalsWithinBatch(t *testing.T, s SignalStore) {
	// A dead click: nothing for 2.9 s.
	b := sigBatch("dead", "pv", 0, base, 3000, "https://shop.example/")
	b.Clicks = []store.Click{click(base+100, 10, 10, `button#buy "Buy"`)}
	mustAppend(t, s, b)
	sigs := mustSignals(t, s, "dead")
	if got := kinds(sigs); got != "dead_click@100" {
		t.Fatalf("dead: got %q", got)
	}
	if g := sigs[0]; g.Target != `button#buy "Buy"` || g.URL != "https://shop.example/" || g.X != 10 || g.NodeID != 7 || g.PageViewID != "dead/pv" {
		t.Errorf("dead click signal: %+v", g)
	}
	checkCounts(t, s, "dead", store.SignalCounts{DeadClick: 1})

	// A field click and a click followed by a change are not dead; three
	// close clicks within a second are one rage click.
	b = sigBatch("rage", "pv", 0, base, 5000, "https://shop.example/")
	b.Clicks = []store.Click{
		{At: base + 50, X: 500, Y: 500, Field: true},
		{At: base + 1000, X: 300, Y: 300, Mutated: true},
		{At: base + 1200, X: 305, Y: 302, Mutated: true},
		{At: base + 1400, X: 310, Y: 300, Mutated: true},
		{At: base + 1900, X: 312, Y: 298, Mutated: true}, // extends the burst
	}
	mustAppend(t, s, b)
	sigs = mustSignals(t, s, "rage")
	if got := kinds(sigs); got != "rage_click@1000" {
		t.Fatalf("rage: got %q", got)
	}
	if sigs[0].Detail != "4 clicks" {
		t.Errorf("rage detail %q, want 4 clicks", sigs[0].Detail)
	}
	checkCounts(t, s, "rage", store.SignalCounts{RageClick: 1})

	// An error 500 ms after a click; a console error; a rejection long
	// after any click.
	b = sigBatch("err", "pv", 0, base, 9000, "https://shop.example/")
	b.Clicks = []store.Click{{At: base + 100, Mutated: true}}
	b.Errors = []store.JSError{
		{At: base + 600, Kind: "error", Message: "boom"},
		{At: base + 700, Kind: "console", Message: "logged"},
		{At: base + 5000, Kind: "rejection", Message: "later"},
	}
	mustAppend(t, s, b)
	sigs = mustSignals(t, s, "err")
	if got := kinds(sigs); got != "error_click@100 js_error@600 console_error@700 js_error@5000" {
		t.Fatalf("errors: got %q", got)
	}
	if sigs[0].Detail != "boom" || sigs[1].Detail != "boom" {
		t.Errorf("error click detail %q, js error %q", sigs[0].Detail, sigs[1].Detail)
	}
	checkCounts(t, s, "err", store.SignalCounts{ErrorClick: 1, JSError: 2})

	if _, err := s.Signals(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("signals of an unknown session: %v, want ErrNotFound", err)
	}
	if got := mustSignals(t, s, "dead"); got == nil {
		t.Error("signals: nil list")
	}
}

func testSignalsAcrossBatches(t *testing.T, s SignalStore) {
	// A click 100 ms before its batch ends waits for the next batch: a
	// change 600 ms after it there means alive; in "late", 1600 ms after it
	// means dead.
	for _, tt := range []struct {
		id     string
		change int64
		want   string
	}{
		{"alive", base + 1500, ""},
		{"late", base + 2500, "dead_click@900"},
	} {
		b0 := sigBatch(tt.id, "pv", 0, base, 1000, "https://shop.example/")
		b0.Clicks = []store.Click{click(base+900, 1, 1, "a")}
		// Two clicks of a rage burst in this batch, the third in the next.
		b0.Clicks = append(b0.Clicks, store.Click{At: base + 950, X: 600, Y: 600, Mutated: true},
			store.Click{At: base + 980, X: 600, Y: 600, Mutated: true})
		mustAppend(t, s, b0)
		if got := kinds(mustSignals(t, s, tt.id)); got != "" {
			t.Errorf("%s: after the first batch got %q, want nothing yet", tt.id, got)
		}
		b1 := sigBatch(tt.id, "pv", 1, base+1200, 3000, "")
		b1.Signals.FirstMutation = tt.change
		b1.Clicks = []store.Click{{At: base + 1300, X: 601, Y: 600, Mutated: true}}
		mustAppend(t, s, b1)
		want := strings.TrimSpace(tt.want + " rage_click@950")
		if tt.want == "dead_click@900" {
			want = "dead_click@900 rage_click@950"
		}
		if got := kinds(mustSignals(t, s, tt.id)); got != want {
			t.Errorf("%s: got %q, want %q", tt.id, got, want)
		}
	}
	// A request the recorder saw starting 300 ms after the click makes it
	// alive, even though reported in a later batch.
	b0 := sigBatch("req", "pv", 0, base, 1000, "https://shop.example/")
	b0.Clicks = []store.Click{click(base+900, 1, 1, "a")}
	b1 := sigBatch("req", "pv", 1, base+2000, 3000, "")
	b1.Signals.Requests = []int64{base + 1200}
	mustAppend(t, s, b0, b1)
	if got := kinds(mustSignals(t, s, "req")); got != "" {
		t.Errorf("req: got %q, want nothing", got)
	}
}

func testSignalsPageEnd(t *testing.T, s SignalStore) {
	// pv1: inputs, then a click with no change; pv2 starts 1.6 s after the
	// click: the click navigated (not dead), the form was abandoned.
	b := sigBatch("nav", "pv1", 0, base, 1000, "https://shop.example/form")
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	b.Clicks = []store.Click{click(base+900, 1, 1, "a")}
	mustAppend(t, s, b)
	mustAppend(t, s, sigBatch("nav", "pv2", 0, base+2500, 1000, "https://shop.example/next"))
	sigs := mustSignals(t, s, "nav")
	if got := kinds(sigs); got != "form_abandon@2500" {
		t.Fatalf("nav: got %q", got)
	}
	if g := sigs[0]; g.PageViewID != "nav/pv1" || g.URL != "https://shop.example/form" || g.NodeID != 3 {
		t.Errorf("form abandon: %+v", g)
	}
	sess := checkCounts(t, s, "nav", store.SignalCounts{FormAbandon: 1})
	if sess.ExitURL != "https://shop.example/next" || sess.EntryURL != "https://shop.example/form" {
		t.Errorf("entry %q exit %q", sess.EntryURL, sess.ExitURL)
	}

	// Submitted before leaving: no abandonment.
	b = sigBatch("sub", "pv1", 0, base, 1000, "https://shop.example/form")
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	b.Clicks = []store.Click{{At: base + 500, Submit: true, Mutated: true}}
	mustAppend(t, s, b, sigBatch("sub", "pv2", 0, base+2500, 1000, "https://shop.example/thanks"))
	if got := kinds(mustSignals(t, s, "sub")); got != "" {
		t.Errorf("sub: got %q", got)
	}

	// Sent by script: a click that is no submit control but starts a
	// request within a second sends the form, in its batch or reported in
	// the next; a request before the click sends nothing.
	for _, tt := range []struct {
		id      string
		request int64 // ms after base; 0: none
		later   bool  // reported in the page view's next batch
		want    string
	}{
		{"script", 700, false, ""},
		{"scriptlate", 1200, true, ""},
		{"reqbefore", 400, false, "form_abandon@3500"},
		{"noreq", 0, false, "form_abandon@3500"},
	} {
		b := sigBatch(tt.id, "pv1", 0, base, 1000, "https://shop.example/form")
		b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
		b.Clicks = []store.Click{{At: base + 500, Mutated: true}}
		if tt.request > 0 && !tt.later {
			b.Signals.Requests = []int64{base + tt.request}
		}
		bs := []*store.Batch{b}
		if tt.later {
			b1 := sigBatch(tt.id, "pv1", 1, base+2000, 1000, "")
			b1.Signals.Requests = []int64{base + tt.request}
			bs = append(bs, b1)
		}
		bs = append(bs, sigBatch(tt.id, "pv2", 0, base+3500, 1000, "https://shop.example/next"))
		mustAppend(t, s, bs...)
		if got := kinds(mustSignals(t, s, tt.id)); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.id, got, tt.want)
		}
	}

	// Two tabs: a page opened in another tab does not end the form still
	// open in the first, which is later submitted; a page in the form's
	// own tab does end it. A page view whose tab is unknown (an older
	// recorder) ends those of every tab, as before tabs were known.
	tab := func(b *store.Batch, t string) *store.Batch {
		b.Page = &store.PageInfo{Tab: t}
		return b
	}
	const tabA, tabB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	b = tab(sigBatch("tabs", "form", 0, base, 1000, "https://shop.example/form"), tabA)
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	mustAppend(t, s, b, tab(sigBatch("tabs", "other", 0, base+2000, 1000, "https://shop.example/help"), tabB))
	if got := kinds(mustSignals(t, s, "tabs")); got != "" {
		t.Errorf("tabs: a page in another tab ended the form: got %q", got)
	}
	b = sigBatch("tabs", "form", 1, base+4000, 1000, "")
	b.Clicks = []store.Click{{At: base + 4100, Submit: true, Mutated: true}}
	mustAppend(t, s, b)
	if got := kinds(mustSignals(t, s, "tabs")); got != "" {
		t.Errorf("tabs: the form submitted in its tab: got %q", got)
	}
	b = tab(sigBatch("tab1", "form", 0, base, 1000, "https://shop.example/form"), tabA)
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	mustAppend(t, s, b, tab(sigBatch("tab1", "next", 0, base+2000, 1000, "https://shop.example/next"), tabA))
	if got := kinds(mustSignals(t, s, "tab1")); got != "form_abandon@2000" {
		t.Errorf("tab1: a page in the form's tab: got %q, want form_abandon@2000", got)
	}
	b = tab(sigBatch("tab0", "form", 0, base, 1000, "https://shop.example/form"), tabA)
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	mustAppend(t, s, b, sigBatch("tab0", "next", 0, base+2000, 1000, "https://shop.example/next"))
	if got := kinds(mustSignals(t, s, "tab0")); got != "form_abandon@2000" {
		t.Errorf("tab0: a page of unknown tab: got %q, want form_abandon@2000", got)
	}

	// The recorder's pagehide ends the page view; a click long before it
	// with no change is dead.
	b = sigBatch("hide", "pv1", 0, base, 1500, "https://shop.example/form")
	b.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	b.Clicks = []store.Click{click(base+100, 1, 1, "a")}
	b.Signals.PageHide = base + 5000
	mustAppend(t, s, b)
	if got := kinds(mustSignals(t, s, "hide")); got != "dead_click@100 form_abandon@5000" {
		t.Errorf("hide: got %q", got)
	}
}

// testSignalsIdleEnd: a page view left without a pagehide, its form filled
// in, is ended once no batch has come for a while: the form is abandoned
// at its last event. Page views with recent batches wait; ending is done
// once.
func testSignalsIdleEnd(t *testing.T, s SignalStore) {
	ctx := context.Background()
	const hour = 3_600_000
	idle := sigBatch("idle", "pv1", 0, base, 5000, "https://shop.example/form") // received at base+5.5 s
	idle.Inputs = []store.Input{{At: base + 200, NodeID: 3}}
	idle.Clicks = []store.Click{click(base+100, 1, 1, "a")}
	busy := sigBatch("busy", "pv1", 0, base+2*hour, 5000, "https://shop.example/form")
	busy.Inputs = []store.Input{{At: base + 2*hour + 200, NodeID: 3}}
	quiet := sigBatch("quiet", "pv1", 0, base, 5000, "https://shop.example/") // nothing pending
	mustAppend(t, s, idle, busy, quiet)
	if got := kinds(mustSignals(t, s, "idle")); got != "dead_click@100" {
		t.Fatalf("idle, before: got %q", got)
	}

	n, err := s.EndIdlePageViews(ctx, time.UnixMilli(base+hour), 100)
	if err != nil || n != 1 {
		t.Fatalf("EndIdlePageViews: %d, %v; want 1 ended", n, err)
	}
	if got := kinds(mustSignals(t, s, "idle")); got != "dead_click@100 form_abandon@5000" {
		t.Errorf("idle: got %q", got)
	}
	checkCounts(t, s, "idle", store.SignalCounts{DeadClick: 1, FormAbandon: 1})
	for _, id := range []string{"busy", "quiet"} {
		if got := kinds(mustSignals(t, s, id)); got != "" {
			t.Errorf("%s: got %q, want nothing", id, got)
		}
	}
	if n, err := s.EndIdlePageViews(ctx, time.UnixMilli(base+hour), 100); err != nil || n != 0 {
		t.Errorf("again: %d, %v; want none", n, err)
	}
	// Later, the busy page view is idle too.
	if n, err := s.EndIdlePageViews(ctx, time.UnixMilli(base+4*hour), 100); err != nil || n != 1 {
		t.Errorf("later: %d, %v; want 1", n, err)
	}
	if got := kinds(mustSignals(t, s, "busy")); got != "form_abandon@7205000" {
		t.Errorf("busy, later: got %q", got)
	}
}

func testSignalsConverted(t *testing.T, s SignalStore) {
	b := sigBatch("conv", "pv1", 0, base, 3000, "https://shop.example/")
	b.Clicks = []store.Click{click(base+100, 1, 1, "a")}
	mustAppend(t, s, b)
	before := mustSession(t, s, "conv")
	b = sigBatch("conv", "pv2", 0, base+4000, 1000, "https://shop.example/thanks")
	b.Signals.Converted = true
	mustAppend(t, s, b)
	after := mustSession(t, s, "conv")
	if before.Converted || !after.Converted {
		t.Errorf("converted before %v after %v", before.Converted, after.Converted)
	}
	if before.Friction != 1 || after.Friction != 0.5 {
		t.Errorf("friction before %v after %v, want 1 and 0.5", before.Friction, after.Friction)
	}
}

// searchFixture stores sessions a (oldest) to d with distinct attributes.
func searchFixture(t *testing.T, s SignalStore) {
	t.Helper()
	hour := int64(3600_000)
	// a: Chrome desktop FR, 2 pages, 10 s, one dead click.
	a0 := sigBatch("a", "a1", 0, base, 3000, "https://shop.example/")
	a0.Clicks = []store.Click{click(base+100, 1, 1, "a")}
	a0.Client = store.Client{Browser: "Chrome", OS: "macOS", Device: "desktop", Country: "FR"}
	a0.Page = &store.PageInfo{Referrer: "https://search.example/q", UTMSource: "ads"}
	a1 := sigBatch("a", "a2", 0, base+5000, 5000, "https://shop.example/cart")
	// b: Firefox mobile DE, 1 page, 60 s, a rage click and a console error.
	b0 := sigBatch("b", "b1", 0, base+hour, 60000, "https://shop.example/")
	b0.Clicks = []store.Click{{At: base + hour + 100, Mutated: true}, {At: base + hour + 200, Mutated: true}, {At: base + hour + 300, Mutated: true}}
	b0.Errors = []store.JSError{{At: base + hour + 5000, Kind: "console", Message: "x"}}
	b0.Client = store.Client{Browser: "Firefox", OS: "Linux", Device: "mobile", Country: "DE"}
	// c: Chrome, 1 page, 1 s, nothing.
	c0 := sigBatch("c", "c1", 0, base+2*hour, 1000, "https://blog.example/post")
	c0.Client = store.Client{Browser: "Chrome", OS: "Windows", Device: "desktop", Country: "FR"}
	// d: Chrome, 3 pages, 3 s.
	d0 := sigBatch("d", "d1", 0, base+3*hour, 1000, "https://shop.example/")
	d0.Client = store.Client{Browser: "Chrome", OS: "Windows", Device: "tablet", Country: "US"}
	d1 := sigBatch("d", "d2", 0, base+3*hour+1000, 1000, "https://shop.example/a[1]")
	d2 := sigBatch("d", "d3", 0, base+3*hour+2000, 1000, "https://shop.example/b")
	mustAppend(t, s, a0, a1, b0, c0, d0, d1, d2)
	if _, err := s.SetTags(context.Background(), "c", []string{"bug", "vip"}); err != nil {
		t.Fatalf("set tags: %v", err)
	}
}

func ids(ss []*store.Session) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

func testSearch(t *testing.T, s SignalStore) {
	searchFixture(t, s)
	ms := func(d int64) time.Time { return time.UnixMilli(base + d).UTC() }
	for _, tt := range []struct {
		name string
		f    store.SessionFilter
		want string
	}{
		{"all newest first", store.SessionFilter{}, "d,c,b,a"},
		{"browser", store.SessionFilter{Browser: "Chrome"}, "d,c,a"},
		{"os", store.SessionFilter{OS: "Linux"}, "b"},
		{"device", store.SessionFilter{Device: "desktop"}, "c,a"},
		{"country", store.SessionFilter{Country: "FR"}, "c,a"},
		{"counted signal", store.SessionFilter{Signals: []string{store.SignalDeadClick}}, "a"},
		{"two signals", store.SessionFilter{Signals: []string{store.SignalRageClick, store.SignalConsoleError}}, "b"},
		{"signal none has", store.SessionFilter{Signals: []string{store.SignalServerError}}, ""},
		{"url visited", store.SessionFilter{URL: "/cart"}, "a"},
		{"url glob", store.SessionFilter{URL: "https://*.example/post"}, "c"},
		{"url glob with bracket", store.SessionFilter{URL: "*/a[1]"}, "d"},
		{"url glob is whole", store.SessionFilter{URL: "*/car"}, ""},
		{"entry", store.SessionFilter{Entry: "blog"}, "c"},
		{"exit", store.SessionFilter{Exit: "*/cart"}, "a"},
		{"referrer", store.SessionFilter{Referrer: "search.example"}, "a"},
		{"utm source", store.SessionFilter{UTMSource: "ads"}, "a"},
		{"tag", store.SessionFilter{Tag: "vip"}, "c"},
		{"min duration", store.SessionFilter{MinDuration: 30 * time.Second}, "b"},
		{"max duration", store.SessionFilter{MaxDuration: 3 * time.Second}, "d,c"},
		{"min pages", store.SessionFilter{MinPages: 2}, "d,a"},
		{"max pages", store.SessionFilter{MaxPages: 1}, "c,b"},
		{"from", store.SessionFilter{From: ms(3600_000)}, "d,c,b"},
		{"to", store.SessionFilter{To: ms(3600_000)}, "a"},
		{"from to", store.SessionFilter{From: ms(1), To: ms(2*3600_000 + 1)}, "c,b"},
		{"sort friction", store.SessionFilter{Sort: store.SortFriction}, "b,a,d,c"},
		{"sort duration", store.SessionFilter{Sort: store.SortDuration}, "b,a,d,c"},
		{"sort pages", store.SessionFilter{Sort: store.SortPages}, "d,a,c,b"},
		{"combined", store.SessionFilter{Browser: "Chrome", MaxPages: 2, Sort: store.SortFriction}, "a,c"},
		{"page", store.SessionFilter{Limit: 2, Offset: 1}, "c,b"},
		{"past the end", store.SessionFilter{Offset: 10}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Sessions(context.Background(), tt.f)
			if err != nil {
				t.Fatalf("sessions: %v", err)
			}
			if ids(got) != tt.want {
				t.Errorf("got %q, want %q", ids(got), tt.want)
			}
		})
	}
	// Sessions carry their behaviour fields.
	got, err := s.Sessions(context.Background(), store.SessionFilter{Sort: store.SortFriction, Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("sessions: %v %v", got, err)
	}
	if g := got[0]; g.Signals.RageClick != 1 || g.Friction != 3 || g.ExitURL != "https://shop.example/" {
		t.Errorf("b as listed: %+v", g)
	}
}

func testSearchBadFilter(t *testing.T, s SignalStore) {
	for _, f := range []store.SessionFilter{
		{Signals: []string{"nope"}},
		{Sort: "random"},
		{MinDuration: -time.Second},
		{URL: strings.Repeat("x", store.MaxFilterLen+1)},
	} {
		if _, err := s.Sessions(context.Background(), f); err == nil {
			t.Errorf("filter %+v: no error", f)
		}
	}
}

func testTags(t *testing.T, s SignalStore) {
	ctx := context.Background()
	mustAppend(t, s, sigBatch("t", "pv", 0, base, 1000, ""), sigBatch("u", "pv2", 0, base, 1000, ""))
	got, err := s.SetTags(ctx, "t", []string{" vip ", "bug", "vip"})
	if err != nil || !reflect.DeepEqual(got, []string{"bug", "vip"}) {
		t.Fatalf("set tags: %v %v", got, err)
	}
	if got, err := s.Tags(ctx, "t"); err != nil || !reflect.DeepEqual(got, []string{"bug", "vip"}) {
		t.Errorf("tags: %v %v", got, err)
	}
	if got, err := s.Tags(ctx, "u"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("tags of an untagged session: %#v %v", got, err)
	}
	if got, err := s.SetTags(ctx, "t", []string{"later"}); err != nil || !reflect.DeepEqual(got, []string{"later"}) {
		t.Errorf("replace tags: %v %v", got, err)
	}
	m, err := s.TagsOf(ctx, []string{"t", "u", "none"})
	if err != nil || !reflect.DeepEqual(m, map[string][]string{"t": {"later"}}) {
		t.Errorf("tags of: %v %v", m, err)
	}
	for _, bad := range [][]string{{""}, {strings.Repeat("x", store.MaxTagLen+1)}, {"a\nb"}} {
		if _, err := s.SetTags(ctx, "t", bad); err == nil {
			t.Errorf("set tags %q: no error", bad)
		}
	}
	many := make([]string, store.MaxTags+1)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	if _, err := s.SetTags(ctx, "t", many); err == nil {
		t.Error("too many tags: no error")
	}
	if got, _ := s.Tags(ctx, "t"); !slices.Equal(got, []string{"later"}) {
		t.Errorf("a refused SetTags changed the tags: %v", got)
	}
	if _, err := s.SetTags(ctx, "nope", []string{"x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("set tags of an unknown session: %v", err)
	}
	if _, err := s.Tags(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tags of an unknown session: %v", err)
	}
}

func testNotes(t *testing.T, s SignalStore) {
	ctx := context.Background()
	mustAppend(t, s, sigBatch("n", "pv", 0, base, 1000, ""))
	at := int64(1500)
	n1 := store.Note{SessionID: "n", Text: "the button does nothing", AtMS: &at, Author: "ana", CreatedAt: base}
	n2 := store.Note{SessionID: "n", Text: "whole session"} // no author: written before logins
	for _, n := range []*store.Note{&n1, &n2} {
		if err := s.AddNote(ctx, n); err != nil {
			t.Fatalf("add note: %v", err)
		}
	}
	if n1.ID == 0 || n2.ID == n1.ID || n2.CreatedAt == 0 {
		t.Errorf("ids %d %d, created %d", n1.ID, n2.ID, n2.CreatedAt)
	}
	notes, err := s.Notes(ctx, "n")
	if err != nil || len(notes) != 2 {
		t.Fatalf("notes: %v %v", notes, err)
	}
	if g := notes[0]; g.ID != n1.ID || g.Text != n1.Text || g.AtMS == nil || *g.AtMS != 1500 || g.Author != "ana" || g.CreatedAt != base {
		t.Errorf("note 1: %+v", g)
	}
	if notes[1].AtMS != nil {
		t.Errorf("note 2 at %v, want nil", *notes[1].AtMS)
	}
	if notes[1].Author != "" {
		t.Errorf("note 2 by %q, want no author", notes[1].Author)
	}
	if err := s.DeleteNote(ctx, "n", n1.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := s.DeleteNote(ctx, "n", n1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete again: %v", err)
	}
	if err := s.DeleteNote(ctx, "other", n2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete through another session: %v", err)
	}
	if notes, _ := s.Notes(ctx, "n"); len(notes) != 1 || notes[0].ID != n2.ID {
		t.Errorf("after delete: %+v", notes)
	}
	neg := int64(-1)
	for _, bad := range []store.Note{
		{SessionID: "n", Text: "  "},
		{SessionID: "n", Text: strings.Repeat("x", store.MaxNoteLen+1)},
		{SessionID: "n", Text: "x", AtMS: &neg},
	} {
		if err := s.AddNote(ctx, &bad); err == nil {
			t.Errorf("add note %.20q: no error", bad.Text)
		}
	}
	if err := s.AddNote(ctx, &store.Note{SessionID: "nope", Text: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("note on an unknown session: %v", err)
	}
	if _, err := s.Notes(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("notes of an unknown session: %v", err)
	}
}
