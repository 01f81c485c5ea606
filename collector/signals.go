package collector

import (
	"net/url"
	"strings"

	"github.com/loupe-dev/loupe/store"
)

// Signals: what the decoder notes for the store's signal rules
// (store.DeriveSignals), in the same pass over the events:
//
//   - Click targets: Custom (5) events tagged "loupe/click", payload
//     {node, x, y, target, field, submit}, sent by the recorder right after
//     rrweb's own click event: the description (cut to 160 bytes) goes to
//     the batch's latest click on that node (or, with node 0, its latest
//     click) that has none yet, with whether the element is a form field
//     (never a dead click) and whether it submits a form (inputs before it
//     are not abandoned). With no such click among the batch's last 8
//     (rrweb records none on some elements, such as password fields) the
//     event is a click of its own, at its time and x, y.
//   - Changes: a DOM mutation (source 0), input (5) or scroll (3) marks the
//     batch's clicks at most store.DeadWindow ms before it as not dead
//     (Click.Mutated); the first one's time is SignalFacts.FirstMutation,
//     for clicks of earlier batches.
//   - Requests: Custom events tagged "loupe/request", payload {start}
//     (Unix ms): a fetch or XHR started then (at most maxRequests kept).
//   - Page hide: a Custom event tagged "loupe/pagehide": the page view
//     ended (SignalFacts.PageHide).
//
// Custom events the recorder may add later are ignored.

// maxRequests bounds SignalFacts.Requests per batch.
const maxRequests = 256

// signalPass is the decoder's state for signals within one batch.
type signalPass struct {
	next int // first click not yet marked by a change
}

// changed notes a change on the page at ts, after every click decoded so
// far.
func (p *parser) changed(ts int64) {
	b := &p.out.batch
	if b.Signals.FirstMutation == 0 {
		b.Signals.FirstMutation = ts
	}
	for ; p.sig.next < len(b.Clicks); p.sig.next++ {
		if c := &b.Clicks[p.sig.next]; ts-c.At <= store.DeadWindow {
			c.Mutated = true
		}
	}
}

// custom notes one of the recorder's signal events.
func (p *parser) custom(ts int64, ev *event) {
	b := &p.out.batch
	pl := &ev.payload
	switch ev.tag {
	case clickTag:
		if !ev.hasPayload {
			return
		}
		for i := len(b.Clicks) - 1; i >= 0 && i >= len(b.Clicks)-8; i-- {
			c := &b.Clicks[i]
			if c.Target == "" && (pl.node == 0 || c.NodeID == pl.node) {
				c.Target, c.Field, c.Submit = pl.target, pl.field, pl.submit
				return
			}
		}
		// rrweb records no click on some elements (a password field, for
		// one): the recorder's event stands for it.
		b.Clicks = append(b.Clicks, store.Click{At: ts, X: pl.x, Y: pl.y, NodeID: pl.node,
			Target: pl.target, Field: pl.field, Submit: pl.submit})
	case requestTag:
		if ev.hasPayload && pl.start > 0 && pl.start < 1e15 && len(b.Signals.Requests) < maxRequests {
			b.Signals.Requests = append(b.Signals.Requests, int64(pl.start))
		}
	case pageHideTag:
		b.Signals.PageHide = ts
	}
}

// ConvertedURL reports whether a page URL matches the conversion pattern:
// a glob where * stands for any run of characters (slashes included) and
// ? for one. A pattern that starts with "/" is matched against the URL's
// path and query (e.g. "/checkout/thanks*"), any other against the whole
// URL (e.g. "https://shop.example/order/*/done"). An empty pattern or URL
// never matches.
func ConvertedURL(pattern, pageURL string) bool {
	if pattern == "" || pageURL == "" {
		return false
	}
	if strings.HasPrefix(pattern, "/") {
		u, err := url.Parse(pageURL)
		if err != nil {
			return false
		}
		pageURL = u.EscapedPath()
		if u.RawQuery != "" {
			pageURL += "?" + u.RawQuery
		}
	}
	return store.GlobMatch(pattern, pageURL)
}
