package collector

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/loupe-dev/loupe/store"
)

// derivedEvents is a page view's first batch as the recorder sends it,
// with one of every event the collector derives rows from, and a few it
// must ignore.
var derivedEvents = `[
 {"type":4,"data":{"href":"https://shop.test/cart?utm_source=news","width":1280,"height":720},"timestamp":1700000000000},
 {"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[],"id":2}],"id":1},"initialOffset":{"left":0,"top":300}},"timestamp":1700000000010},
 {"type":3,"data":{"source":3,"id":1,"x":0,"y":1500},"timestamp":1700000001000},
 {"type":3,"data":{"source":3,"id":42,"x":0,"y":9000},"timestamp":1700000001100},
 {"type":3,"data":{"source":4,"width":1280,"height":800},"timestamp":1700000001200},
 {"type":3,"data":{"source":3,"id":1,"x":0,"y":2000},"timestamp":1700000001300},
 {"type":3,"data":{"source":3,"id":1,"x":0,"y":100},"timestamp":1700000001400},
 {"type":3,"data":{"source":2,"type":1,"id":9,"x":100,"y":200},"timestamp":1700000002000},
 {"type":3,"data":{"source":2,"type":2,"id":9,"x":100,"y":200,"pointerType":0},"timestamp":1700000002010},
 {"type":3,"data":{"source":5,"text":"hunter2@example.com","isChecked":false,"id":17},"timestamp":1700000003000},
 {"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[{"parentId":1,"node":{"type":3,"textContent":"x","id":50}}]},"timestamp":1700000003500},
 {"type":5,"data":{"tag":"loupe.error","payload":{"message":"` + strings.Repeat("é", 600) + `","stack":"TypeError: x is undefined\n    at f (https://shop.test/app.js:3:14)","source":"https://shop.test/app.js","line":3,"column":14,"kind":"error"}},"timestamp":1700000004000},
 {"type":5,"data":{"tag":"loupe.error","payload":{"message":"Request failed","stack":"` + strings.Repeat("s", 9000) + `","kind":"rejection"}},"timestamp":1700000004100},
 {"type":5,"data":{"tag":"checkout","payload":{"message":"not an error"}},"timestamp":1700000004200},
 {"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","trace":["at g (https://shop.test/app.js:9:2)","at h (https://shop.test/app.js:12:5)"],"payload":["\"Payment failed:\"","{\"code\":402}"]}},"timestamp":1700000004300},
 {"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"log","trace":[],"payload":["\"hello\""]}},"timestamp":1700000004400},
 {"data":{"source":2,"type":2,"id":11,"x":5,"y":6},"timestamp":1700000004500,"type":3}
]`

func TestDerivedRows(t *testing.T) {
	f := newFixture(t)
	body := `{"v":1,"token":"` + f.token + `","seq":0,"page":{"referrer":"https://www.google.com/","language":"en-GB"},"events":` + derivedEvents + `}`
	if w := post(f.c, []byte(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
	}
	b := f.st.batches[0]
	pv := f.pv
	want := store.Batch{
		SessionID: f.sid, PageViewID: pv, EventCount: 17,
		FirstTS: 1700000000000, LastTS: 1700000004500,
		URL: "https://shop.test/cart?utm_source=news",
		Clicks: []store.Click{
			// The input 990 ms later is a change: not a dead click.
			{PageViewID: pv, At: 1700000002010, X: 100, Y: 200, NodeID: 9, Mutated: true},
			{PageViewID: pv, At: 1700000004500, X: 5, Y: 6, NodeID: 11}, // data before type
		},
		Inputs: []store.Input{{PageViewID: pv, At: 1700000003000, NodeID: 17}},
		Errors: []store.JSError{
			{PageViewID: pv, At: 1700000004000, Kind: "error", Message: strings.Repeat("é", 512),
				Stack: "TypeError: x is undefined\n    at f (https://shop.test/app.js:3:14)", Source: "https://shop.test/app.js", Line: 3, Column: 14},
			{PageViewID: pv, At: 1700000004100, Kind: "rejection", Message: "Request failed", Stack: strings.Repeat("s", 8192)},
			{PageViewID: pv, At: 1700000004300, Kind: "console", Message: `Payment failed: {"code":402}`,
				Stack: "at g (https://shop.test/app.js:9:2)\nat h (https://shop.test/app.js:12:5)"},
		},
		// The document scrolled to 2000 with an 800-pixel viewport; the
		// element 42 scrolling to 9000 does not count.
		ScrollDepth: 2800,
		ViewportW:   1280, ViewportH: 720,
		// The first scroll is the first change.
		Signals: store.SignalFacts{FirstMutation: 1700000001000},
		Page:    &store.PageInfo{Referrer: "https://www.google.com/", Language: "en-GB", UTMSource: "news"},
	}
	got := *b
	got.Events, got.UserAgent, got.Client, got.ReceivedAt = nil, "", store.Client{}, want.ReceivedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
		for i := range max(len(got.Errors), len(want.Errors)) {
			if i < len(got.Errors) && i < len(want.Errors) && got.Errors[i] != want.Errors[i] {
				t.Errorf("error %d: got %+v", i, got.Errors[i])
			}
		}
	}
	if strings.Contains(string(mustJSON(t, b.Inputs)), "hunter2") {
		t.Error("an input value reached the input rows")
	}
}

func TestScrollDepthWithoutSnapshot(t *testing.T) {
	// A later batch: no Meta or snapshot, so the document is node 1 and
	// the viewport comes from a resize if any.
	tests := []struct {
		name   string
		events string
		want   int
	}{
		{name: "scroll only", events: `[{"type":3,"data":{"source":3,"id":1,"x":0,"y":640},"timestamp":1700000000000}]`, want: 640},
		{name: "resize then scroll", events: `[{"type":3,"data":{"source":4,"width":500,"height":900},"timestamp":1700000000000},{"type":3,"data":{"source":3,"id":1,"x":0,"y":640},"timestamp":1700000000001}]`, want: 1540},
		{name: "element scroll only", events: `[{"type":3,"data":{"source":3,"id":7,"x":0,"y":640},"timestamp":1700000000000}]`, want: 0},
		{name: "no scroll", events: `[{"type":3,"data":{"source":1,"positions":[]},"timestamp":1700000000000}]`, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decode([]byte(`{"v":1,"token":"t","seq":3,"events":`+tt.events+`}`), &Limits{}, fixtureNow)
			if err != nil {
				t.Fatal(err)
			}
			if d.batch.ScrollDepth != tt.want {
				t.Errorf("got scroll depth %d, want %d", d.batch.ScrollDepth, tt.want)
			}
		})
	}
}

func TestBackstepTolerance(t *testing.T) {
	// rrweb's timers skew a little: an event up to 5 s before the latest
	// is accepted.
	events := `[{"type":3,"data":{},"timestamp":1700000010000},{"type":3,"data":{},"timestamp":1700000005000},{"type":3,"data":{},"timestamp":1700000012000}]`
	d, err := decode([]byte(`{"v":1,"token":"t","seq":0,"events":`+events+`}`), &Limits{}, fixtureNow)
	if err != nil {
		t.Fatal(err)
	}
	if d.batch.FirstTS != 1700000005000 || d.batch.LastTS != 1700000012000 {
		t.Errorf("got first %d, last %d; want 1700000005000, 1700000012000", d.batch.FirstTS, d.batch.LastTS)
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
