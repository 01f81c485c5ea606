package collector

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/loupe-dev/loupe/store"
)

// t0 is the first event time of the signal tests, Unix ms.
const t0 = 1_699_999_000_000

// ev builds rrweb events for the signal tests; at is ms after t0.
func meta(at int64) string {
	return fmt.Sprintf(`{"type":4,"data":{"href":"https://shop.test/cart","width":1280,"height":800},"timestamp":%d}`, t0+at)
}
func move(at int64) string {
	return fmt.Sprintf(`{"type":3,"data":{"source":1,"positions":[{"x":1,"y":1,"id":5,"timeOffset":0}]},"timestamp":%d}`, t0+at)
}
func clickEv(at int64, node, x, y int) string {
	return fmt.Sprintf(`{"type":3,"data":{"source":2,"type":2,"id":%d,"x":%d,"y":%d},"timestamp":%d}`, node, x, y, t0+at)
}
func target(at int64, node int, desc string, field, submit bool) string {
	return fmt.Sprintf(`{"type":5,"data":{"tag":"loupe/click","payload":{"node":%d,"target":%q,"field":%v,"submit":%v}},"timestamp":%d}`,
		node, desc, field, submit, t0+at)
}
func mutation(at int64) string {
	return fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":[],"attributes":[{"id":9,"attributes":{"class":"open"}}],"removes":[],"adds":[]},"timestamp":%d}`, t0+at)
}
func input(at int64, node int) string {
	return fmt.Sprintf(`{"type":3,"data":{"source":5,"text":"*****","isChecked":false,"id":%d},"timestamp":%d}`, node, t0+at)
}
func request(at, start int64) string {
	return fmt.Sprintf(`{"type":5,"data":{"tag":"loupe/request","payload":{"start":%d}},"timestamp":%d}`, t0+start, t0+at)
}
func jsError(at int64, msg string) string {
	return fmt.Sprintf(`{"type":5,"data":{"tag":"loupe.error","payload":{"message":%q,"stack":"","kind":"error"}},"timestamp":%d}`, msg, t0+at)
}
func consoleError(at int64, msg string) string {
	return fmt.Sprintf(`{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"error","trace":[],"payload":[%q]}},"timestamp":%d}`, msg, t0+at)
}
func pageHide(at int64) string {
	return fmt.Sprintf(`{"type":5,"data":{"tag":"loupe/pagehide","payload":{}},"timestamp":%d}`, t0+at)
}

// derive posts each batch (a list of events) of one page view through the
// collector and applies the store's signal rules to what it decoded, as a
// store does in the batch's transaction.
func derive(t *testing.T, batches ...[]string) []store.Signal {
	t.Helper()
	f := newFixture(t)
	var st store.SignalState
	var out []store.Signal
	for seq, evs := range batches {
		body := batchJSON(f.token, seq, "["+strings.Join(evs, ",")+"]")
		if w := post(f.c, []byte(body), nil); w.Code != http.StatusNoContent {
			t.Fatalf("batch %d: status %d (%s)", seq, w.Code, w.Body)
		}
		out = append(out, store.DeriveSignals(&st, f.st.batches[seq])...)
	}
	return out
}

// summary lists signals as "kind@ms target detail".
func summary(sigs []store.Signal) string {
	var out []string
	for _, s := range sigs {
		line := fmt.Sprintf("%s@%d", s.Kind, s.At-t0)
		if s.Target != "" {
			line += " " + s.Target
		}
		if s.Detail != "" && s.Kind != store.SignalDeadClick {
			line += " (" + s.Detail + ")"
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

func TestSignalRules(t *testing.T) {
	for _, tt := range []struct {
		name    string
		batches [][]string
		want    string
	}{
		{
			"rage click",
			[][]string{{meta(0),
				clickEv(1000, 12, 400, 300), target(1000, 12, `button#buy "Buy"`, false, false), mutation(1010),
				clickEv(1200, 12, 405, 303), target(1200, 12, `button#buy "Buy"`, false, false), mutation(1210),
				clickEv(1400, 12, 402, 298), target(1400, 12, `button#buy "Buy"`, false, false), mutation(1410),
				move(5000)}},
			`rage_click@1000 button#buy "Buy" (3 clicks)`,
		},
		{
			"rage on a dead button: rage only",
			[][]string{{meta(0),
				clickEv(1000, 12, 400, 300), clickEv(1200, 12, 405, 303), clickEv(1400, 12, 402, 298), clickEv(1500, 12, 402, 298),
				move(5000)}},
			`rage_click@1000 (4 clicks)`,
		},
		{
			"an error click that changes nothing: not also dead",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), jsError(1100, "boom"), move(4000)}},
			`error_click@1000 (boom); js_error@1100 (boom)`,
		},
		{
			"clicks far apart are no rage",
			[][]string{{meta(0),
				clickEv(1000, 12, 100, 100), mutation(1010),
				clickEv(1200, 13, 400, 100), mutation(1210),
				clickEv(1400, 14, 700, 100), mutation(1410),
				move(5000)}},
			``,
		},
		{
			"dead click",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), target(1000, 12, `a.more "More"`, false, false), move(1500), move(3100)}},
			`dead_click@1000 a.more "More"`,
		},
		{
			"a mutation within a second: alive",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), mutation(1900), move(3100)}},
			``,
		},
		{
			"a mutation after a second: dead",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), mutation(2100), move(3100)}},
			`dead_click@1000`,
		},
		{
			"a request started within a second, reported later: alive",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), request(2900, 1300), move(3100)}},
			``,
		},
		{
			"a form field: never dead",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), target(1000, 12, `input#email[type=email]`, true, false), move(3100)}},
			``,
		},
		{
			"verdict waits for events two seconds on",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), move(2900)}},
			``,
		},
		{
			"across batches: a change early in the next batch",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), move(1100)}, {mutation(1400), move(4000)}},
			``,
		},
		{
			"across batches: nothing in the next batch",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), target(1000, 12, "div", false, false), move(1100)}, {move(1400), move(4000)}},
			`dead_click@1000 div`,
		},
		{
			"error click and js error",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), target(1000, 12, `button "Pay"`, false, false), mutation(1050), jsError(1400, "x is undefined"), move(4000)}},
			`error_click@1000 button "Pay" (x is undefined); js_error@1400 (x is undefined)`,
		},
		{
			"an error long after a click is no error click",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), mutation(1050), jsError(2500, "late"), move(4000)}},
			`js_error@2500 (late)`,
		},
		{
			"console error",
			[][]string{{meta(0), consoleError(500, "failed to load"), move(4000)}},
			`console_error@500 (failed to load)`,
		},
		{
			"form abandoned at pagehide",
			[][]string{{meta(0), input(500, 30), input(900, 31)}, {move(2000), pageHide(6000)}},
			`form_abandon@6000 (left the page with a form filled in but not submitted)`,
		},
		{
			"form submitted",
			[][]string{{meta(0), input(500, 30), clickEv(1000, 40, 1, 1), target(1000, 40, `button "Send"`, false, true), mutation(1100), pageHide(1500)}},
			``,
		},
		{
			"form sent by script: a plain button's click starts a request",
			[][]string{{meta(0), input(500, 30), clickEv(1000, 40, 1, 1), target(1000, 40, `button "Save"`, false, false), request(1300, 1200)}, {move(3000), pageHide(6000)}},
			``,
		},
		{
			"pagehide right after a click: it navigated",
			[][]string{{meta(0), clickEv(1000, 12, 40, 50), pageHide(1300)}},
			``,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(derive(t, tt.batches...)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestClickTargets(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("é", 200)
	evs := []string{meta(0),
		clickEv(100, 12, 1, 1), target(100, 12, "first", false, false),
		clickEv(200, 13, 1, 1), target(200, 99, "other node", false, false), // no click on node 99: one of its own
		clickEv(300, 14, 1, 1), target(300, 0, long, true, true), // node 0: the latest click
	}
	body := batchJSON(f.token, 0, "["+strings.Join(evs, ",")+"]")
	if w := post(f.c, []byte(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d (%s)", w.Code, w.Body)
	}
	cs := f.st.batches[0].Clicks
	if len(cs) != 4 {
		t.Fatalf("%d clicks", len(cs))
	}
	if cs[0].Target != "first" || cs[1].Target != "" || cs[2].Target != "other node" || cs[2].NodeID != 99 || cs[2].At != t0+200 {
		t.Errorf("clicks %+v", cs[:3])
	}
	if c := cs[3]; len(c.Target) != maxTarget || !c.Field || !c.Submit {
		t.Errorf("long target: %d bytes, field %v submit %v", len(c.Target), c.Field, c.Submit)
	}
}

func TestConvertedURL(t *testing.T) {
	for _, tt := range []struct {
		pattern, url string
		want         bool
	}{
		{"", "https://shop.test/thanks", false},
		{"/thanks", "", false},
		{"/thanks", "https://shop.test/thanks", true},
		{"/thanks", "https://shop.test/thanks?order=1", false},
		{"/thanks*", "https://shop.test/thanks?order=1", true},
		{"/order/*/done", "https://shop.test/order/42/done", true},
		{"/order/?/done", "https://shop.test/order/42/done", false},
		{"https://shop.test/*", "https://shop.test/a/b", true},
		{"https://shop.test/*", "https://other.test/a", false},
	} {
		if got := ConvertedURL(tt.pattern, tt.url); got != tt.want {
			t.Errorf("ConvertedURL(%q, %q) = %v, want %v", tt.pattern, tt.url, got, tt.want)
		}
	}
	// Through ingest: a batch of the conversion page is marked.
	f := newFixture(t)
	f.c.ConversionURL = "/cart"
	if w := post(f.c, []byte(batchJSON(f.token, 0, "["+meta(0)+"]")), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
	if !f.st.batches[0].Signals.Converted {
		t.Error("batch of /cart not converted")
	}
}
