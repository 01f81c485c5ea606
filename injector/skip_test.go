package injector

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// chunkReader reads doc in pieces whose sizes come from cuts (1 to 256
// bytes, cycling), so that tokens and the feed's buffer split anywhere.
type chunkReader struct {
	doc  []byte
	cuts []byte
	i    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
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

// rewriteBoth rewrites doc with the tokenizer alone (one read) and with
// skipping (reads cut by cuts) and fails unless both give the same bytes.
func rewriteBoth(t *testing.T, cfg Config, maxBuf int, doc, cuts []byte) []byte {
	t.Helper()
	slow, fast := mustNew(t, cfg), mustNew(t, cfg)
	if maxBuf > 0 {
		slow.maxBuf, fast.maxBuf = maxBuf, maxBuf
	}
	slow.skip = false
	var want, got bytes.Buffer
	errWant := slow.Rewrite(&want, bytes.NewReader(doc), testPage)
	errGot := fast.Rewrite(&got, &chunkReader{doc: doc, cuts: cuts}, testPage)
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("errors differ: tokenizer alone %v, with skipping %v", errWant, errGot)
	}
	if !bytes.Equal(want.Bytes(), got.Bytes()) {
		t.Fatalf("skipping changed the output\ninput %q\nwant  %q\ngot   %q", doc, want.Bytes(), got.Bytes())
	}
	return got.Bytes()
}

// TestSkipSameOutput: pages through the skipping feed come out exactly as
// through the tokenizer alone, however the input is cut.
func TestSkipSameOutput(t *testing.T) {
	docs := []string{
		string(benchPage(20 << 10)),
		`<head></head><body><div a='>' b=">" c=d>e</div><p/x=">"><input name=q></body>`,
		`<head><body><svg><foreignObject><div></div></foreignObject><![CDATA[<input>]]></svg><input>`,
		`<head><body><p>a < b <3 </ p> </> <!-- c --> <!--> <? x > <input></body>`,
		`<head><body><script>if (a</b) x("</scripty>")</script><input><style>p{}</STYLE ><input>`,
		`<head><body><script><!--<script></script>--></script><input></body>`,
		`<head><body><textarea><input></textarea><title><input></title><plaintext><input>`,
		`<head><body><TEXTAREA name=cvc class=x>a</textArea ><textarea>` + strings.Repeat("</textareax>", 3000) + `</textarea/><input>`,
		`<head><body><textarea id=a&amp;b>x</textarea><textarea>` + strings.Repeat("y", 40000) + `</textarea><input>`,
		`<head><body><DIV CLASS=x><Input Name=cvc></DIV><math><mi><input></mi></math>`,
		`<head><body><div` + strings.Repeat(" a=b", 10000) + `><input></div>`,
		`<head><body><div title="` + strings.Repeat("x", 40000) + `"><input></div>`,
		`<head>x` + strings.Repeat("text ", 3000) + `<input>`,
		`<head><body><ul><li><input><li><select><option>1<option>2</select></ul><table><tr><td><input></table>`,
	}
	for _, doc := range docs {
		for _, cuts := range [][]byte{nil, {0}, {2, 200, 6}, {255}} {
			rewriteBoth(t, Config{}, 0, []byte(doc), cuts)
			rewriteBoth(t, Config{}, 64, []byte(doc), cuts)
		}
	}
}

// FuzzSkip checks, for any input and any read boundaries, that the
// skipping feed changes nothing: the output is the tokenizer's alone,
// which FuzzInject checks keeps every token of the page.
func FuzzSkip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		// The last bytes choose the read sizes and the buffer limit.
		var cuts []byte
		maxBuf := 0
		if n := len(doc); n > 4 {
			cuts = doc[n-3:]
			if doc[n-4]&1 == 1 {
				maxBuf = 16 + int(doc[n-4])
			}
		}
		out := rewriteBoth(t, Config{}, maxBuf, doc, cuts)
		if maxBuf == 0 {
			checkTokens(t, doc, out)
		}
	})
}

// BenchmarkRewriteNoSkip is BenchmarkRewrite with the tokenizer reading
// every byte.
func BenchmarkRewriteNoSkip(b *testing.B) {
	in := mustNew(b, Config{})
	in.skip = false
	page := benchPage(100 << 10)
	p := Page{PageViewID: "pv", Token: "token"}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Rewrite(io.Discard, bytes.NewReader(page), p); err != nil {
			b.Fatal(err)
		}
	}
}
