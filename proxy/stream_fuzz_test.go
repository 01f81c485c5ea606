package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

	"golang.org/x/net/html"

	"github.com/loupe-dev/loupe/injector"
)

// cutReader reads doc in pieces of 1 to 256 bytes whose sizes cycle
// through cuts.
type cutReader struct {
	doc  []byte
	cuts []byte
	i    int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if len(c.doc) == 0 {
		return 0, io.EOF
	}
	n := len(c.doc)
	if len(c.cuts) > 0 {
		n = int(c.cuts[c.i%len(c.cuts)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.doc))
	copy(p, c.doc[:n])
	c.doc = c.doc[n:]
	return n, nil
}

func (c *cutReader) Close() error { return nil }

// textOf returns the text tokens of an HTML document, concatenated.
func textOf(doc []byte) []byte {
	var text []byte
	z := html.NewTokenizer(bytes.NewReader(doc))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return text
		case html.TextToken:
			text = append(text, z.Raw()...)
		}
	}
}

// FuzzStream sends any document through the streaming rewrite, in any
// coding in and out, with the origin's body arriving in arbitrary pieces:
// it never panics, the output decodes, is what the injector writes for the
// whole document at once, reads as HTML to the end, and keeps all of the
// page's text.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		"", "<", page, "<!doctype html><html><head><meta charset=utf-8><title>x</title></head><body><p>a &amp; b<input name=q></body></html>",
		"<head><script>a<b</script><svg><style><input></style></svg><textarea><input></textarea>",
		"\ufeff<!-- c --><html><head><meta http-equiv=content-type content='text/html'><body>x",
	} {
		f.Add([]byte(s), byte(0), []byte{0, 7, 255})
		f.Add([]byte(s), byte(0x13), []byte{3})
		f.Add([]byte(s), byte(0x42), []byte(nil))
	}
	inj, err := injector.New(injector.Config{})
	if err != nil {
		f.Fatal(err)
	}
	pg := injector.Page{PageViewID: "pv", Token: "tok"}
	rewrite := func(dst io.Writer, src io.Reader) error { return inj.Rewrite(dst, src, pg) }
	log := slog.New(slog.DiscardHandler)
	codings := []string{"", "gzip", "deflate", "br", "zstd"}
	f.Fuzz(func(t *testing.T, doc []byte, codes byte, cuts []byte) {
		in, out := codings[int(codes&0x0f)%len(codings)], codings[int(codes>>4)%len(codings)]
		var enc bytes.Buffer
		cw := compressor(t, in, &enc)
		cw.Write(doc)
		cw.Close()
		body, err := newStream(&cutReader{doc: enc.Bytes(), cuts: cuts}, in, out, rewrite, nil, log)
		if err != nil {
			t.Fatalf("newStream(%s → %s): %v", in, out, err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatalf("read %s → %s: %v", in, out, err)
		}
		page := decode(t, out, got)

		var want bytes.Buffer
		if err := inj.Rewrite(&want, bytes.NewReader(doc), pg); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(page, want.Bytes()) {
			t.Fatalf("%s → %s in pieces %v: got\n%q\nwant (whole document at once)\n%q", in, out, cuts, page, want.Bytes())
		}
		z := html.NewTokenizer(bytes.NewReader(page))
		for z.Next() != html.ErrorToken {
		}
		if z.Err() != io.EOF {
			t.Fatalf("output does not read as HTML to the end: %v", z.Err())
		}
		tag := inj.ScriptTag(pg)
		if !bytes.Equal(textOf(bytes.Replace(page, tag, nil, 1)), textOf(doc)) {
			t.Fatalf("text changed:\n%q\n%q", doc, page)
		}
	})
}
