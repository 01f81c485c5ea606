package storetest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// chromiumSession is a real recording: headless Chromium visiting seven
// pages of Loupe's demo shop (home, two products, home, cart, checkout, a
// product) through `loupe demo`, one batch per line in arrival order, as
// the store received them (page view ids renamed, the host replaced by
// shop.example). Each page's full snapshot inlines the same stylesheet.
//
//go:embed testdata/chromium-session.jsonl.gz
var chromiumSession []byte

// ChromiumSession returns the batches of a real Chromium session (see
// testdata/chromium-session.jsonl.gz) as session id, in arrival order.
// Page view ids are prefixed with id so that several copies can share a
// store. It carries events and their summary only, no derived rows.
func ChromiumSession(id string) []*store.Batch {
	zr, err := gzip.NewReader(bytes.NewReader(chromiumSession))
	if err != nil {
		panic(err)
	}
	var out []*store.Batch
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r struct {
			PageView   string          `json:"page_view"`
			Seq        int             `json:"seq"`
			FirstTS    int64           `json:"first_ts"`
			LastTS     int64           `json:"last_ts"`
			EventCount int             `json:"event_count"`
			URL        string          `json:"url"`
			Events     json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			panic(err)
		}
		out = append(out, &store.Batch{
			SessionID: id, PageViewID: id + "-" + r.PageView, Seq: r.Seq,
			Events: r.Events, EventCount: r.EventCount, FirstTS: r.FirstTS, LastTS: r.LastTS, URL: r.URL,
			UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
			ReceivedAt: time.UnixMilli(r.LastTS + 100),
		})
	}
	if err := sc.Err(); err != nil {
		panic(err)
	}
	return out
}

// Recording generates a plausible rrweb recording of a shop visit:
// per page view, a Meta and a FullSnapshot (a product grid with inlined
// CSS) in seq 0, then batches of mouse moves, scrolls, DOM mutations,
// masked input and clicks, about 5 s of activity each, with the derived
// rows the collector would send. It is deterministic.
func Recording(session string, pages, batchesPerPage int) []*store.Batch {
	r := rand.New(rand.NewPCG(1, uint64(len(session))))
	ts := int64(1_700_000_000_000)
	var out []*store.Batch
	for p := range pages {
		pv := fmt.Sprintf("%s-pv%d", session, p)
		href := fmt.Sprintf("https://shop.example/category/%d?page=%d", r.IntN(50), p+1)
		g := &gen{r: r, id: 1}
		for seq := range batchesPerPage {
			var evs []any
			var clicks []store.Click
			var inputs []store.Input
			var scroll int
			first := ts
			if seq == 0 {
				evs = append(evs,
					ev(4, ts, map[string]any{"href": href, "width": 1440, "height": 900}),
					ev(2, ts+3, map[string]any{"node": g.document(), "initialOffset": map[string]int{"left": 0, "top": 0}}))
				ts += 20
			}
			for range 40 + r.IntN(30) {
				ts += int64(20 + r.IntN(150))
				switch k := r.IntN(100); {
				case k < 55: // mouse move, positions sampled every ~50 ms
					var pos []any
					for i := range 3 + r.IntN(8) {
						pos = append(pos, map[string]any{"x": 200 + r.IntN(900), "y": 100 + r.IntN(700), "id": g.some(), "timeOffset": -50 * i})
					}
					evs = append(evs, ev(3, ts, map[string]any{"source": 1, "positions": pos}))
				case k < 70:
					y := r.IntN(4000)
					scroll = max(scroll, y+900)
					evs = append(evs, ev(3, ts, map[string]any{"source": 3, "id": 1, "x": 0, "y": y}))
				case k < 85: // a product card re-rendered
					evs = append(evs, ev(3, ts, map[string]any{"source": 0,
						"texts":      []any{map[string]any{"id": g.some(), "value": fmt.Sprintf("€%d.%02d", r.IntN(300), r.IntN(100))}},
						"attributes": []any{map[string]any{"id": g.some(), "attributes": map[string]any{"class": "card card--hover is-visible"}}},
						"removes":    []any{map[string]any{"parentId": g.some(), "id": g.some()}},
						"adds":       []any{map[string]any{"parentId": g.some(), "nextId": nil, "node": g.card()}},
					}))
				case k < 93:
					id := g.some()
					inputs = append(inputs, store.Input{PageViewID: pv, At: ts, NodeID: id})
					evs = append(evs, ev(3, ts, map[string]any{"source": 5, "text": "*******"[:1+r.IntN(7)], "isChecked": false, "id": id}))
				default:
					id := g.some()
					x, y := 200+r.IntN(900), 100+r.IntN(700)
					clicks = append(clicks, store.Click{PageViewID: pv, At: ts + 81, X: x, Y: y, NodeID: id})
					evs = append(evs,
						ev(3, ts, map[string]any{"source": 2, "type": 1, "id": id, "x": x, "y": y, "pointerType": 0}),
						ev(3, ts+80, map[string]any{"source": 2, "type": 0, "id": id, "x": x, "y": y, "pointerType": 0}),
						ev(3, ts+81, map[string]any{"source": 2, "type": 2, "id": id, "x": x, "y": y, "pointerType": 0}))
					ts += 81
				}
			}
			b, err := json.Marshal(evs)
			if err != nil {
				panic(err)
			}
			batch := &store.Batch{
				SessionID: session, PageViewID: pv, Seq: seq, Events: b,
				EventCount: len(evs), FirstTS: first, LastTS: ts,
				Clicks: clicks, Inputs: inputs, ScrollDepth: scroll,
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
				Client: store.Client{Browser: "Chrome", BrowserVersion: "131.0", OS: "Linux", Device: "desktop",
					Country: "DE", IPHash: "9f86d081884c7d659a2feaa0c55ad015"},
				ReceivedAt: time.UnixMilli(ts + 200),
			}
			if seq == 0 {
				batch.URL = href
				batch.ViewportW, batch.ViewportH = 1440, 900
				batch.Page = &store.PageInfo{Referrer: "https://search.example/?q=shirts", Language: "de-DE",
					UTMSource: "newsletter", UTMMedium: "email", UTMCampaign: "spring"}
				if p > 0 {
					batch.Page = &store.PageInfo{Referrer: "https://shop.example/", Language: "de-DE"}
				}
			}
			if p == 2 && seq == 3 {
				batch.Errors = []store.JSError{{PageViewID: pv, At: first, Kind: "error",
					Message: "TypeError: cannot read properties of undefined (reading 'price')",
					Stack:   "TypeError: cannot read properties of undefined\n    at render (https://shop.example/app.js:12:34)",
					Source:  "https://shop.example/app.js", Line: 12, Column: 34}}
			}
			out = append(out, batch)
		}
		ts += 2000
	}
	return out
}

func ev(typ int, ts int64, data any) map[string]any {
	return map[string]any{"type": typ, "data": data, "timestamp": ts}
}

// gen hands out rrweb node ids and builds serialized nodes.
type gen struct {
	r  *rand.Rand
	id int
}

func (g *gen) next() int { g.id++; return g.id }
func (g *gen) some() int { return 1 + g.r.IntN(g.id) }

func (g *gen) el(tag string, attrs map[string]any, kids ...any) map[string]any {
	if attrs == nil {
		attrs = map[string]any{}
	}
	if kids == nil {
		kids = []any{} // rrweb always serializes an element's children as an array
	}
	return map[string]any{"type": 2, "tagName": tag, "attributes": attrs, "childNodes": kids, "id": g.next()}
}

func (g *gen) text(s string) map[string]any {
	return map[string]any{"type": 3, "textContent": s, "id": g.next()}
}

var words = []string{"linen", "shirt", "organic", "cotton", "blue", "wool", "scarf", "leather", "boots", "classic", "slim", "fit", "jacket", "denim", "summer", "dress", "striped", "knit", "sweater", "canvas"}

func (g *gen) words(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += " "
		}
		s += words[g.r.IntN(len(words))]
	}
	return s
}

func (g *gen) card() map[string]any {
	sku := g.r.IntN(100000)
	return g.el("article", map[string]any{"class": "card", "data-sku": fmt.Sprint(sku)},
		g.el("a", map[string]any{"href": fmt.Sprintf("/p/%d-%s", sku, g.words(2)), "class": "card__link"},
			g.el("img", map[string]any{"src": fmt.Sprintf("https://cdn.shop.example/img/%d/%x.webp", sku, g.r.Uint32()), "alt": g.words(3), "loading": "lazy", "width": "320", "height": "400"}),
			g.el("h3", map[string]any{"class": "card__title"}, g.text(g.words(3))),
			g.el("p", map[string]any{"class": "card__price"}, g.text(fmt.Sprintf("€%d.%02d", g.r.IntN(300), g.r.IntN(100))))),
		g.el("button", map[string]any{"class": "btn btn--primary", "type": "button"}, g.text("Add to cart")))
}

func (g *gen) document() map[string]any {
	css := ""
	for i := range 150 {
		css += fmt.Sprintf(".c%d-%s{margin:%dpx %dpx;color:#%06x;font:%dpx/1.4 Inter,system-ui,sans-serif}", i, words[g.r.IntN(len(words))], g.r.IntN(32), g.r.IntN(32), g.r.IntN(1<<24), 12+g.r.IntN(12))
	}
	var cards []any
	for range 36 {
		cards = append(cards, g.card())
	}
	var nav []any
	for range 12 {
		w := g.words(1)
		nav = append(nav, g.el("li", nil, g.el("a", map[string]any{"href": "/category/" + w}, g.text(w))))
	}
	html := g.el("html", map[string]any{"lang": "en"},
		g.el("head", nil,
			g.el("meta", map[string]any{"charset": "utf-8"}),
			g.el("title", nil, g.text("Shop — "+g.words(2))),
			g.el("link", map[string]any{"rel": "stylesheet", "href": "/assets/app.css", "_cssText": css})),
		g.el("body", map[string]any{"class": "page page--category"},
			g.el("header", nil, g.el("nav", nil, g.el("ul", map[string]any{"class": "nav"}, nav...))),
			g.el("main", nil, g.el("section", map[string]any{"class": "grid"}, cards...)),
			g.el("form", map[string]any{"class": "newsletter"},
				g.el("input", map[string]any{"type": "email", "name": "email", "value": "*****", "class": "rr-mask"}))))
	return map[string]any{"type": 0, "childNodes": []any{map[string]any{"type": 1, "name": "html", "publicId": "", "systemId": "", "id": g.next()}, html}, "id": 1}
}
