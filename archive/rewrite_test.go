package archive

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loupe-dev/loupe/store/storetest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// mapAll maps every URL to "/a/" and the URL, so that a test sees which
// references were offered.
func mapAll(abs string) (string, bool) { return "/a/" + abs, true }

const meta = `{"type":4,"data":{"href":"https://shop.example/p/lamp","width":1280,"height":720},"timestamp":1}`

// snapshot wraps body's child nodes in a full snapshot event.
func snapshot(children string) string {
	return `{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[` +
		children + `],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":2}`
}

// mutation returns a Mutation event with the given adds, texts and attributes.
func mutation(adds, texts, attributes string) string {
	return `{"type":3,"data":{"source":0,"texts":[` + texts + `],"attributes":[` + attributes +
		`],"removes":[],"adds":[` + adds + `]},"timestamp":3}`
}

func mustJSONEqual(tb testing.TB, got, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		tb.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want is invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		tb.Errorf("got  %s\nwant %s", got, want)
	}
}

func rewriteString(tb testing.TB, events string, m Mapper) string {
	tb.Helper()
	var out bytes.Buffer
	if err := RewriteEvents(&out, strings.NewReader(events), m); err != nil {
		tb.Fatalf("RewriteEvents: %v", err)
	}
	return out.String()
}

// eventCases are single-kind inputs, each after a Meta event for
// https://shop.example/p/lamp, their output under mapAll and their assets.
var eventCases = []struct {
	name   string
	events []string
	want   []string // rewritten events after the Meta event
	assets []string
}{
	{
		name: "link stylesheet with inlined css",
		events: []string{snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"https://shop.example/s/site.css",` +
			`"_cssText":"@font-face { src: url(\"https://shop.example/s/font.woff2\"); }body { background: url(\"https://shop.example/s/img.png\"); }"},"childNodes":[],"id":3}`)},
		want: []string{snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"/a/https://shop.example/s/site.css",` +
			`"_cssText":"@font-face { src: url(\"/a/https://shop.example/s/font.woff2\"); }body { background: url(\"/a/https://shop.example/s/img.png\"); }"},"childNodes":[],"id":3}`)},
		assets: []string{"https://shop.example/s/font.woff2", "https://shop.example/s/img.png", "https://shop.example/s/site.css"},
	},
	{
		name:   "link icon, preload font, canonical",
		events: []string{snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"shortcut icon","href":"/favicon.ico"},"childNodes":[],"id":3},{"type":2,"tagName":"link","attributes":{"rel":"preload","as":"font","href":"/f.woff2"},"childNodes":[],"id":4},{"type":2,"tagName":"link","attributes":{"rel":"preload","as":"script","href":"/app.js"},"childNodes":[],"id":5},{"type":2,"tagName":"link","attributes":{"rel":"canonical","href":"/p/lamp.png"},"childNodes":[],"id":6}`)},
		want:   []string{snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"shortcut icon","href":"/a/https://shop.example/favicon.ico"},"childNodes":[],"id":3},{"type":2,"tagName":"link","attributes":{"rel":"preload","as":"font","href":"/a/https://shop.example/f.woff2"},"childNodes":[],"id":4},{"type":2,"tagName":"link","attributes":{"rel":"preload","as":"script","href":"/app.js"},"childNodes":[],"id":5},{"type":2,"tagName":"link","attributes":{"rel":"canonical","href":"/p/lamp.png"},"childNodes":[],"id":6}`)},
		assets: []string{"https://shop.example/favicon.ico", "https://shop.example/f.woff2"},
	},
	{
		name:   "img src and srcset",
		events: []string{snapshot(`{"type":2,"tagName":"img","attributes":{"src":"https://shop.example/i.jpg","srcset":"https://shop.example/i-1x.jpg 1x,  https://shop.example/i-2x.jpg 2x, data:image/gif;base64,R0,lG 3x","alt":"<3 & co"},"childNodes":[],"id":3}`)},
		want:   []string{snapshot(`{"type":2,"tagName":"img","attributes":{"src":"/a/https://shop.example/i.jpg","srcset":"/a/https://shop.example/i-1x.jpg 1x,  /a/https://shop.example/i-2x.jpg 2x, data:image/gif;base64,R0,lG 3x","alt":"<3 & co"},"childNodes":[],"id":3}`)},
		assets: []string{"https://shop.example/i.jpg", "https://shop.example/i-1x.jpg", "https://shop.example/i-2x.jpg"},
	},
	{
		name:   "inline style, style text, background, poster",
		events: []string{snapshot(`{"type":2,"tagName":"div","attributes":{"style":"background: url(&quot;x&quot;) , url('https://shop.example/b.webp')","background":"/paper.gif"},"childNodes":[],"id":3},{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"textContent":".h{background:url(https://shop.example/h.jpg)}","isStyle":true,"id":5}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"url(https://shop.example/t.png)","id":7}],"id":6},{"type":2,"tagName":"video","attributes":{"poster":"poster.png"},"childNodes":[],"id":8}`)},
		want:   []string{snapshot(`{"type":2,"tagName":"div","attributes":{"style":"background: url(\"/a/https://shop.example/p/&quot;x&quot;\") , url(\"/a/https://shop.example/b.webp\")","background":"/a/https://shop.example/paper.gif"},"childNodes":[],"id":3},{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"textContent":".h{background:url(\"/a/https://shop.example/h.jpg\")}","isStyle":true,"id":5}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"url(https://shop.example/t.png)","id":7}],"id":6},{"type":2,"tagName":"video","attributes":{"poster":"/a/https://shop.example/p/poster.png"},"childNodes":[],"id":8}`)},
		assets: []string{"https://shop.example/paper.gif", "https://shop.example/p/&quot;x&quot;", "https://shop.example/b.webp", "https://shop.example/h.jpg", "https://shop.example/p/poster.png"},
	},
	{
		name:   "svg image and use",
		events: []string{snapshot(`{"type":2,"tagName":"svg","attributes":{},"childNodes":[{"type":2,"tagName":"image","attributes":{"href":"https://shop.example/logo.svg"},"childNodes":[],"isSVG":true,"id":4},{"type":2,"tagName":"use","attributes":{"xlink:href":"https://shop.example/sprite.svg#cart"},"childNodes":[],"isSVG":true,"id":5}],"isSVG":true,"id":3}`)},
		want:   []string{snapshot(`{"type":2,"tagName":"svg","attributes":{},"childNodes":[{"type":2,"tagName":"image","attributes":{"href":"/a/https://shop.example/logo.svg"},"childNodes":[],"isSVG":true,"id":4},{"type":2,"tagName":"use","attributes":{"xlink:href":"/a/https://shop.example/sprite.svg#cart"},"childNodes":[],"isSVG":true,"id":5}],"isSVG":true,"id":3}`)},
		assets: []string{"https://shop.example/logo.svg", "https://shop.example/sprite.svg"},
	},
	{
		name:   "a href, script src and iframe src unchanged",
		events: []string{snapshot(`{"type":2,"tagName":"a","attributes":{"href":"https://shop.example/catalog.png"},"childNodes":[],"id":3},{"type":2,"tagName":"script","attributes":{"src":"https://shop.example/app.js"},"childNodes":[],"id":4},{"type":2,"tagName":"iframe","attributes":{"src":"https://shop.example/embed.png"},"childNodes":[],"id":5}`)},
		want:   []string{snapshot(`{"type":2,"tagName":"a","attributes":{"href":"https://shop.example/catalog.png"},"childNodes":[],"id":3},{"type":2,"tagName":"script","attributes":{"src":"https://shop.example/app.js"},"childNodes":[],"id":4},{"type":2,"tagName":"iframe","attributes":{"src":"https://shop.example/embed.png"},"childNodes":[],"id":5}`)},
	},
	{
		name:   "mutation adds an img and a script",
		events: []string{mutation(`{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"img","attributes":{"src":"https://shop.example/new.png","srcset":"https://shop.example/s.png 300w,https://shop.example/b.png 900w"},"childNodes":[],"id":9}},{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"script","attributes":{"src":"https://shop.example/c.js"},"childNodes":[],"id":10}}`, ``, ``)},
		want:   []string{mutation(`{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"img","attributes":{"src":"/a/https://shop.example/new.png","srcset":"/a/https://shop.example/s.png 300w,/a/https://shop.example/b.png 900w"},"childNodes":[],"id":9}},{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"script","attributes":{"src":"https://shop.example/c.js"},"childNodes":[],"id":10}}`, ``, ``)},
		assets: []string{"https://shop.example/new.png", "https://shop.example/s.png", "https://shop.example/b.png"},
	},
	{
		name: "attribute changes by the node's tag",
		events: []string{
			snapshot(`{"type":2,"tagName":"img","attributes":{},"childNodes":[],"id":3},{"type":2,"tagName":"a","attributes":{},"childNodes":[],"id":4},{"type":2,"tagName":"link","attributes":{"rel":"preload"},"childNodes":[],"id":5},{"type":2,"tagName":"script","attributes":{},"childNodes":[],"id":6}`),
			mutation(`{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"link","attributes":{"rel":"stylesheet"},"childNodes":[],"id":7}}`, ``,
				`{"id":3,"attributes":{"src":"https://shop.example/red.jpg","srcset":null}},{"id":4,"attributes":{"href":"https://shop.example/x.png"}},{"id":5,"attributes":{"as":"image","href":"https://shop.example/late.png"}},{"id":6,"attributes":{"src":"https://shop.example/x.js"}},{"id":7,"attributes":{"href":"https://shop.example/added.css"}},{"id":99,"attributes":{"href":"https://shop.example/unknown.woff2"}},{"id":98,"attributes":{"href":"https://shop.example/next"}},{"id":3,"attributes":{"style":{"background-image":"url(https://shop.example/bg.png)","color":false,"border-image":["url(https://shop.example/border.png)","important"]}}}`),
		},
		want: []string{
			snapshot(`{"type":2,"tagName":"img","attributes":{},"childNodes":[],"id":3},{"type":2,"tagName":"a","attributes":{},"childNodes":[],"id":4},{"type":2,"tagName":"link","attributes":{"rel":"preload"},"childNodes":[],"id":5},{"type":2,"tagName":"script","attributes":{},"childNodes":[],"id":6}`),
			mutation(`{"parentId":2,"nextId":null,"node":{"type":2,"tagName":"link","attributes":{"rel":"stylesheet"},"childNodes":[],"id":7}}`, ``,
				`{"id":3,"attributes":{"src":"/a/https://shop.example/red.jpg","srcset":null}},{"id":4,"attributes":{"href":"https://shop.example/x.png"}},{"id":5,"attributes":{"as":"image","href":"/a/https://shop.example/late.png"}},{"id":6,"attributes":{"src":"https://shop.example/x.js"}},{"id":7,"attributes":{"href":"/a/https://shop.example/added.css"}},{"id":99,"attributes":{"href":"/a/https://shop.example/unknown.woff2"}},{"id":98,"attributes":{"href":"https://shop.example/next"}},{"id":3,"attributes":{"style":{"background-image":"url(\"/a/https://shop.example/bg.png\")","color":false,"border-image":["url(\"/a/https://shop.example/border.png\")","important"]}}}`),
		},
		assets: []string{"https://shop.example/red.jpg", "https://shop.example/late.png", "https://shop.example/added.css", "https://shop.example/unknown.woff2", "https://shop.example/bg.png", "https://shop.example/border.png"},
	},
	{
		name: "text change of a style element",
		events: []string{
			snapshot(`{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"textContent":"","isStyle":true,"id":4}],"id":3},{"type":3,"textContent":"","id":5}`),
			mutation(``, `{"id":4,"value":"a{b:url(/new.png)}"},{"id":5,"value":"url(/text.png)"}`, ``),
		},
		want: []string{
			snapshot(`{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"textContent":"","isStyle":true,"id":4}],"id":3},{"type":3,"textContent":"","id":5}`),
			mutation(``, `{"id":4,"value":"a{b:url(\"/a/https://shop.example/new.png\")}"},{"id":5,"value":"url(/text.png)"}`, ``),
		},
		assets: []string{"https://shop.example/new.png"},
	},
	{
		name: "stylesheet rule of a link resolves against the stylesheet",
		events: []string{
			snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"https://cdn.example/css/lib.css"},"childNodes":[],"id":3}`),
			`{"type":3,"data":{"source":8,"id":3,"adds":[{"rule":".x { background: url(../img/x.png); }","index":2}],"removes":[{"index":0}]},"timestamp":4}`,
			`{"type":3,"data":{"source":8,"styleId":1,"replaceSync":"@import \"/more.css\"; .y{}"},"timestamp":5}`,
		},
		want: []string{
			snapshot(`{"type":2,"tagName":"link","attributes":{"rel":"stylesheet","href":"/a/https://cdn.example/css/lib.css"},"childNodes":[],"id":3}`),
			`{"type":3,"data":{"source":8,"id":3,"adds":[{"rule":".x { background: url(\"/a/https://cdn.example/img/x.png\"); }","index":2}],"removes":[{"index":0}]},"timestamp":4}`,
			`{"type":3,"data":{"source":8,"styleId":1,"replaceSync":"@import \"/a/https://shop.example/more.css\"; .y{}"},"timestamp":5}`,
		},
		assets: []string{"https://cdn.example/css/lib.css", "https://cdn.example/img/x.png", "https://shop.example/more.css"},
	},
	{
		name:   "style declaration and adopted stylesheet",
		events: []string{`{"type":3,"data":{"source":13,"id":9,"index":[0],"set":{"property":"background","value":"url(/decl.png)","priority":""}},"timestamp":4}`, `{"type":3,"data":{"source":15,"id":1,"styleIds":[1],"styles":[{"styleId":1,"rules":[{"rule":".z { mask: url(\"mask.svg\"); }","index":0}]}]},"timestamp":5}`},
		want:   []string{`{"type":3,"data":{"source":13,"id":9,"index":[0],"set":{"property":"background","value":"url(\"/a/https://shop.example/decl.png\")","priority":""}},"timestamp":4}`, `{"type":3,"data":{"source":15,"id":1,"styleIds":[1],"styles":[{"styleId":1,"rules":[{"rule":".z { mask: url(\"/a/https://shop.example/p/mask.svg\"); }","index":0}]}]},"timestamp":5}`},
		assets: []string{"https://shop.example/decl.png", "https://shop.example/p/mask.svg"},
	},
	{
		name:   "font",
		events: []string{`{"type":3,"data":{"source":10,"family":"Brand","fontSource":"url(\"/brand.woff2\") format(\"woff2\")","buffer":false,"descriptors":{}},"timestamp":4}`, `{"type":3,"data":{"source":10,"family":"Blob","fontSource":"[117,114,108,40]","buffer":true},"timestamp":5}`},
		want:   []string{`{"type":3,"data":{"source":10,"family":"Brand","fontSource":"url(\"/a/https://shop.example/brand.woff2\") format(\"woff2\")","buffer":false,"descriptors":{}},"timestamp":4}`, `{"type":3,"data":{"source":10,"family":"Blob","fontSource":"[117,114,108,40]","buffer":true},"timestamp":5}`},
		assets: []string{"https://shop.example/brand.woff2"},
	},
	{
		name:   "other events untouched",
		events: []string{`{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":3,"timeOffset":-5}]},"timestamp":12345678901234567}`, `{"type":5,"data":{"tag":"t","payload":{"img":"https://shop.example/custom.png"}},"timestamp":6}`, `{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"payload":["url(https://shop.example/c.png)"]}},"timestamp":7}`},
		want:   []string{`{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":3,"timeOffset":-5}]},"timestamp":12345678901234567}`, `{"type":5,"data":{"tag":"t","payload":{"img":"https://shop.example/custom.png"}},"timestamp":6}`, `{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"payload":["url(https://shop.example/c.png)"]}},"timestamp":7}`},
	},
}

func TestRewriteEventsKinds(t *testing.T) {
	for _, tt := range eventCases {
		t.Run(tt.name, func(t *testing.T) {
			in := "[" + meta + "," + strings.Join(tt.events, ",") + "]"
			want := "[" + meta + "," + strings.Join(tt.want, ",") + "]"
			mustJSONEqual(t, rewriteString(t, in, mapAll), want)
		})
	}
}

func TestAssetURLsKinds(t *testing.T) {
	for _, tt := range eventCases {
		t.Run(tt.name, func(t *testing.T) {
			in := "[" + meta + "," + strings.Join(tt.events, ",") + "]"
			got, err := AssetURLs([]byte(in))
			if err != nil {
				t.Fatalf("AssetURLs: %v", err)
			}
			if !slices.Equal(got, tt.assets) {
				t.Errorf("got %q, want %q", got, tt.assets)
			}
		})
	}
}

// TestRewriteEventsGolden rewrites a session of every event kind with some
// URLs mapped and compares byte for byte with testdata/rewrite-events.golden.json
// (regenerate with -update, then review the diff).
func TestRewriteEventsGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/rewrite-events.json")
	if err != nil {
		t.Fatal(err)
	}
	m := testMapper(
		"https://shop.example/static/site.css",
		"https://shop.example/static/font.woff2",
		"https://shop.example/static/img.png",
		"https://shop.example/favicon.ico",
		"https://shop.example/static/lamp.jpg",
		"https://shop.example/static/lamp-2x.jpg",
		"https://shop.example/static/sprite.svg",
		"https://shop.example/static/poster.png",
		"https://shop.example/static/catalog.png", // an <a href>: never offered
		"https://shop.example/static/app.js",      // a <script src>: never offered
		"https://shop.example/static/new-big.png",
		"https://shop.example/static/late.css",
		"https://shop.example/static/icons/x.png",
		"https://shop.example/static/brand.woff2",
		"https://shop.example/static/banner-2.webp",
	)
	got := rewriteString(t, string(in), m)
	assets, err := AssetURLs(in)
	if err != nil {
		t.Fatalf("AssetURLs: %v", err)
	}
	gotAssets := strings.Join(assets, "\n") + "\n"
	for _, g := range []struct{ file, got string }{
		{"testdata/rewrite-events.golden.json", got},
		{"testdata/rewrite-assets.golden", gotAssets},
	} {
		if *update {
			if err := os.WriteFile(g.file, []byte(g.got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g.file)
		if err != nil {
			t.Fatal(err)
		}
		if g.got != string(want) {
			t.Errorf("%s: got\n%s\nwant\n%s", g.file, g.got, want)
		}
	}
	if !strings.Contains(got, `"src":"https://shop.example/static/app.js"`) || !strings.Contains(got, `"href":"https://shop.example/static/catalog.png"`) {
		t.Errorf("script src or a href changed: %s", got)
	}
}

func TestRewriteEventsUnmappedVerbatim(t *testing.T) {
	in, err := os.ReadFile("testdata/rewrite-events.json")
	if err != nil {
		t.Fatal(err)
	}
	got := rewriteString(t, string(in), mapNothing)
	want := compactEvents(t, in)
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// compactEvents returns the array with whitespace between its events
// removed and each event's bytes as they are, which is what RewriteEvents
// writes when it maps nothing.
func compactEvents(tb testing.TB, events []byte) string {
	tb.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal(events, &raw); err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range raw {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r)
	}
	b.WriteByte(']')
	return b.String()
}

func TestRewriteEventsInvalid(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ``},
		{"object", `{"type":4}`},
		{"null", `null`},
		{"truncated array", `[{"type":4,"data":{}}`},
		{"truncated event", `[{"type":4,"data":{"href":"http`},
		{"bad separator", `[{"type":4};{"type":4}]`},
		{"trailing data", `[{"type":4}] x`},
		{"second array", `[][]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := RewriteEvents(new(bytes.Buffer), strings.NewReader(tt.in), mapAll); err == nil {
				t.Errorf("RewriteEvents(%q): got nil error, want one", tt.in)
			}
			if _, err := AssetURLs([]byte(tt.in)); err == nil {
				t.Errorf("AssetURLs(%q): got nil error, want one", tt.in)
			}
		})
	}
}

func TestRewriteEventsEmpty(t *testing.T) {
	for _, in := range []string{`[]`, ` [ ] `} {
		if got := rewriteString(t, in, mapAll); got != `[]` {
			t.Errorf("RewriteEvents(%q): got %s, want []", in, got)
		}
	}
}

// bigSession returns an event array of at least n bytes made of copies of
// the recorded Chromium session.
func bigSession(tb testing.TB, n int) []byte {
	tb.Helper()
	b := []byte{'['}
	for len(b) < n {
		for _, batch := range storetest.ChromiumSession("s") {
			var events []json.RawMessage
			if err := json.Unmarshal(batch.Events, &events); err != nil {
				tb.Fatal(err)
			}
			for _, e := range events {
				if len(b) > 1 {
					b = append(b, ',')
				}
				b = append(b, e...)
			}
		}
	}
	return append(b, ']')
}

func TestRewriteEventsStream(t *testing.T) {
	in := bigSession(t, 1<<20)
	assets, err := AssetURLs(in)
	if err != nil {
		t.Fatalf("AssetURLs: %v", err)
	}
	if len(assets) == 0 {
		t.Fatal("AssetURLs found nothing in the Chromium session")
	}
	// Unmapped: the same bytes.
	if got, want := rewriteString(t, string(in), mapNothing), compactEvents(t, in); got != want {
		t.Errorf("unmapped round trip changed %d bytes into %d bytes", len(want), len(got))
	}
	// Mapped: the same events, each asset rewritten, nothing else changed.
	got := rewriteString(t, string(in), mapAll)
	var gotEvents, inEvents []json.RawMessage
	if err := json.Unmarshal([]byte(got), &gotEvents); err != nil {
		t.Fatalf("output is not a JSON array: %v", err)
	}
	if err := json.Unmarshal(in, &inEvents); err != nil {
		t.Fatal(err)
	}
	if len(gotEvents) != len(inEvents) {
		t.Fatalf("got %d events, want %d", len(gotEvents), len(inEvents))
	}
	for i := range inEvents {
		var g, w map[string]any
		json.Unmarshal(gotEvents[i], &g)
		json.Unmarshal(inEvents[i], &w)
		if g["timestamp"] != w["timestamp"] || g["type"] != w["type"] {
			t.Fatalf("event %d: got type %v at %v, want type %v at %v", i, g["type"], g["timestamp"], w["type"], w["timestamp"])
		}
	}
	left, err := AssetURLs([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range left {
		if !strings.Contains(u, "/a/http") {
			t.Errorf("asset %s was not rewritten", u)
		}
	}
	t.Logf("%d bytes, %d events, %d assets: %q", len(in), len(inEvents), len(assets), assets)
}

func FuzzRewriteEvents(f *testing.F) {
	in, err := os.ReadFile("testdata/rewrite-events.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(in)
	for _, tt := range eventCases {
		f.Add([]byte("[" + meta + "," + strings.Join(tt.events, ",") + "]"))
	}
	f.Add([]byte(`[{"type":2,"data":{"node":{"type":2,"tagName":"link","attributes":{"href":3,"rel":null},"childNodes":{}}}},{"type":3,"data":{"source":0,"attributes":[{"id":1,"attributes":{"href":"/x.css"}}]}}]`))
	f.Add([]byte(`[1,"x",null,[],{"type":"2","data":[]}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		err := RewriteEvents(&out, bytes.NewReader(in), mapNothing)
		var v []any
		valid := json.Unmarshal(in, &v) == nil && v != nil // not null
		if err != nil {
			if valid {
				t.Fatalf("RewriteEvents(%q): %v on a valid array", in, err)
			}
			return
		}
		var w any
		json.Unmarshal(in, &w)
		var g any
		if err := json.Unmarshal(out.Bytes(), &g); err != nil {
			t.Fatalf("RewriteEvents(%q) wrote invalid JSON %q: %v", in, out.Bytes(), err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("unmapped RewriteEvents(%q) = %q, not the same JSON", in, out.Bytes())
		}
		// Mapping everything must never fail where mapping nothing did,
		// and must keep the array's length.
		out.Reset()
		if err := RewriteEvents(&out, bytes.NewReader(in), mapAll); err != nil {
			t.Fatalf("mapped RewriteEvents(%q): %v", in, err)
		}
		if _, err := AssetURLs(in); err != nil {
			t.Fatalf("AssetURLs(%q): %v", in, err)
		}
		var mapped []any
		if err := json.Unmarshal(out.Bytes(), &mapped); err != nil || len(mapped) != len(v) {
			t.Fatalf("mapped RewriteEvents(%q) = %q: %d events, want %d (%v)", in, out.Bytes(), len(mapped), len(v), err)
		}
	})
}

func BenchmarkRewriteEvents(b *testing.B) {
	in := bigSession(b, 1<<20)
	m := testMapper() // maps nothing, but every reference is looked up
	half := func(abs string) (string, bool) {
		if len(abs)%2 == 0 {
			return "/archive/h?u=" + abs, true
		}
		return "", false
	}
	for _, bm := range []struct {
		name string
		m    Mapper
	}{{"unmapped", m}, {"half mapped", half}} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := RewriteEvents(io.Discard, bytes.NewReader(in), bm.m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("AssetURLs", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AssetURLs(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
