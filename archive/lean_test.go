package archive

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// fullAssetURLs is AssetURLs with every member of every event decoded, as
// RewriteEvents decodes them.
func fullAssetURLs(t *testing.T, events []byte) []string {
	t.Helper()
	var urls []string
	seen := map[string]bool{}
	collect := func(abs string) (string, bool) {
		if !seen[abs] {
			seen[abs] = true
			urls = append(urls, abs)
		}
		return "", false
	}
	if err := walkEvents(strings.NewReader(string(events)), collect, func(json.RawMessage, any) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return urls
}

// TestAssetURLsLean checks that AssetURLs, which skips the members the
// walker never reads, finds exactly what a walk decoding everything finds.
func TestAssetURLsLean(t *testing.T) {
	inputs := map[string][]byte{"chromium": bigSession(t, 1<<20)}
	golden, err := os.ReadFile("testdata/rewrite-events.json")
	if err != nil {
		t.Fatal(err)
	}
	inputs["golden"] = golden
	for _, tt := range eventCases {
		inputs[tt.name] = []byte("[" + meta + "," + strings.Join(tt.events, ",") + "]")
	}
	// Escaped member names and a style attribute recorded as properties.
	inputs["escaped"] = []byte("[" + meta + `,{"type":2,"data":{"node":{"type":0,"childNodes":[` +
		`{"type":2,"tagName":"img","attributes":{"\u0073rc":"/a.png","class":"x"},"childNodes":[],"id":2},` +
		`{"type":2,"tagName":"div","attributes":{"data-x":{"src":"/no.png"}},"childNodes":[],"id":3}],"id":1}},"timestamp":2},` +
		`{"type":3,"data":{"source":0,"adds":[],"removes":[],"texts":[],"attributes":[{"id":3,"attributes":{"style":{"background-image":"url(/b.png)","color":["red","important"],"mask":["url(/c.png)"]}}}]},"timestamp":3}]`)
	// Members in orders rrweb does not write: the streamed snapshot falls
	// back to decoding such nodes whole, with the same result.
	inputs["reordered"] = []byte("[" + meta + `,{"type":2,"data":{"initialOffset":{"top":0},"node":{"id":1,"type":0,"childNodes":[` +
		`{"childNodes":[],"type":2,"tagName":"img","attributes":{"src":"/r1.png"},"id":2},` +
		`{"type":2,"id":3,"tagName":"LINK","attributes":{"rel":"stylesheet","href":"/r2.css"},"childNodes":[]},` +
		`{"type":2,"tagName":"style","attributes":{},"childNodes":[{"type":3,"isStyle":true,"textContent":"a{background:url(/r3.png)}","id":5}],"id":4},` +
		`{"type":2,"tagName":"div","childNodes":[{"type":2,"tagName":"img","attributes":{"src":"/r4.png"},"childNodes":[],"id":7}],"attributes":{"style":"background:url(/r5.png)"},"id":6},` +
		`{"type":3,"textContent":"b{background:url(/r7.png)}","isStyle":true,"id":8},` +
		`{"type":2,"tagName":"a","attributes":{"href":"/r8.png"},"childNodes":[],"id":9}` +
		`]}},"timestamp":2},` +
		`{"type":3,"data":{"source":0,"adds":[],"removes":[],"texts":[],"attributes":[{"id":3,"attributes":{"href":"https://shop.example/r6.css"}},{"id":9,"attributes":{"href":"https://shop.example/r9.png"}}]},"timestamp":3},` +
		`{"data":{"node":{"type":2,"tagName":"img","attributes":{"src":"/r10.png"},"childNodes":[],"id":1}},"type":2,"timestamp":4}]`)
	inputs["no reference"] = []byte(`[{"type":3,"data":{"source":1,"positions":[{"x":1,"y":2,"id":3,"timeOffset":0}]},"timestamp":1}]`)
	inputs["empty"] = []byte(` [ ] `)
	for name, in := range inputs {
		got, err := AssetURLs(in)
		if err != nil {
			t.Fatalf("%s: AssetURLs: %v", name, err)
		}
		if want := fullAssetURLs(t, in); !slices.Equal(got, want) {
			t.Errorf("%s: lean walk found %q, full walk %q", name, got, want)
		}
		if name == "escaped" && len(got) != 3 {
			t.Errorf("escaped: found %q, want the 3 asset URLs", got)
		}
		if name == "reordered" && len(got) != 8 {
			t.Errorf("reordered: found %q, want r1-r7 and r10", got)
		}
	}
}

func BenchmarkAssetURLs(b *testing.B) {
	in := bigSession(b, 1<<20)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AssetURLs(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMayHaveCSSRef(t *testing.T) {
	for s, want := range map[string]bool{
		"":                         false,
		"display:flex;gap:8px":     false,
		"color: red; u":            false,
		"background:URL(x.png)":    true,
		"background:u\\72l(x.png)": true,
		"background-image:Image-Set(\"a.png\" 1x)": true,
		"@IMPORT 'a.css';":                         true,
		"x{}ur":                                    false,
		"ur l(":                                    false,
		"-webkit-image-set(":                       true,
	} {
		if got := mayHaveCSSRef(s); got != want {
			t.Errorf("mayHaveCSSRef(%q) = %v, want %v", s, got, want)
		}
		// Never false where scanCSS finds a reference.
		found := false
		scanCSS([]byte(s), func(cssRef) { found = true })
		if found && !mayHaveCSSRef(s) {
			t.Errorf("scanCSS finds a reference in %q", s)
		}
	}
}
