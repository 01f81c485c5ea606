package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/loupe-dev/loupe/store"
)

// realisticEvents returns about size bytes of rrweb events shaped like a
// recorded visit: a Meta event, a full snapshot of a nested page, then
// mouse moves, scrolls, clicks, inputs and mutations.
func realisticEvents(size int, ts0 int64) string {
	var b strings.Builder
	ts := ts0
	b.WriteString(`[{"type":4,"data":{"href":"https://shop.test/p/42?utm_source=news&utm_medium=email","width":1280,"height":720},"timestamp":` + fmt.Sprint(ts) + `}`)
	// Full snapshot: a document with sections of divs, text and attributes.
	b.WriteString(`,{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":1,"name":"html","publicId":"","systemId":"","id":2},{"type":2,"tagName":"html","attributes":{"lang":"en"},"childNodes":[`)
	id := 3
	for i := 0; b.Len() < size/2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":2,"tagName":"div","attributes":{"class":"product-card card-%d","data-sku":"SKU-%06d","style":"display:flex;gap:8px"},"childNodes":[{"type":3,"textContent":"Fresh roast number %d \u2014 single origin, 250 g","id":%d},{"type":2,"tagName":"img","attributes":{"src":"https://shop.test/img/%d.jpg","alt":"bag"},"childNodes":[],"id":%d}],"id":%d}`, i, i, i, id, i, id+1, id+2)
		id += 3
	}
	b.WriteString(`],"id":3}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":` + fmt.Sprint(ts+5) + `}`)
	for i := 0; b.Len() < size; i++ {
		ts += 37
		switch i % 10 {
		case 0, 1, 2, 3:
			fmt.Fprintf(&b, `,{"type":3,"data":{"source":1,"positions":[{"x":%d,"y":%d,"id":%d,"timeOffset":-40},{"x":%d,"y":%d,"id":%d,"timeOffset":0}]},"timestamp":%d}`, i%1280, i%720, i%id, (i+3)%1280, (i+5)%720, i%id, ts)
		case 4:
			fmt.Fprintf(&b, `,{"type":3,"data":{"source":3,"id":1,"x":0,"y":%d},"timestamp":%d}`, i*3, ts)
		case 5:
			fmt.Fprintf(&b, `,{"type":3,"data":{"source":2,"type":2,"id":%d,"x":%d,"y":%d,"pointerType":0},"timestamp":%d}`, i%id, i%1280, i%720, ts)
		case 6:
			fmt.Fprintf(&b, `,{"type":3,"data":{"source":5,"text":"********","isChecked":false,"id":%d},"timestamp":%d}`, i%id, ts)
		default:
			fmt.Fprintf(&b, `,{"type":3,"data":{"source":0,"texts":[{"id":%d,"value":"In stock: %d"}],"attributes":[{"id":%d,"attributes":{"class":"badge badge-%d"}}],"removes":[],"adds":[{"parentId":3,"nextId":null,"node":{"type":2,"tagName":"span","attributes":{},"childNodes":[],"id":%d}}]},"timestamp":%d}`, i%id, i, i%id, i, id, ts)
			id++
		}
	}
	b.WriteByte(']')
	return b.String()
}

func BenchmarkDecode(b *testing.B) {
	f := newFixture(b)
	body := []byte(batchJSON(f.token, 0, realisticEvents(500<<10, 1_700_000_000_000)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(body, &Limits{}, f.c.now()); err != nil {
			b.Fatal(err)
		}
	}
}

// discard is an Appender that keeps nothing.
type discard struct{}

func (discard) AppendBatch(context.Context, *store.Batch) error { return nil }

// BenchmarkIngest is the whole request path for a gzip-compressed 500 KB
// batch: rate limits, decompression, decoding, token, enrichment. MB/s is
// of the decompressed batch.
func BenchmarkIngest(b *testing.B) {
	f := newFixture(b)
	f.c.Store = discard{}
	f.c.Limits = Limits{SessionRate: rate.Inf, ClientRate: rate.Inf}
	raw := batchJSON(f.token, 0, realisticEvents(500<<10, 1_700_000_000_000))
	body := gz(b, raw)
	ua := map[string]string{"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if w := post(f.c, body, ua); w.Code != http.StatusNoContent {
			b.Fatalf("got status %d (%s)", w.Code, w.Body)
		}
	}
}
