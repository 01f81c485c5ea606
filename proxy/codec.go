package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Content codings the rewriter reads from the origin and writes to the
// visitor, by their Content-Encoding token ("" is identity).
const (
	encIdentity = ""
	encGzip     = "gzip"
	encDeflate  = "deflate"
	encBrotli   = "br"
	encZstd     = "zstd"
)

// decodable maps a Content-Encoding value (lower case, trimmed) to the coding
// the rewriter decodes it as.
var decodable = map[string]string{
	"":         encIdentity,
	"identity": encIdentity,
	"gzip":     encGzip,
	"x-gzip":   encGzip,
	"deflate":  encDeflate,
	"br":       encBrotli,
	"zstd":     encZstd,
}

// outputPreference breaks ties between codings the visitor accepts with
// the same q-value, after the origin's own choice: cheapest to produce at a
// useful ratio first.
var outputPreference = []string{encZstd, encBrotli, encGzip, encDeflate}

// filterAcceptEncoding keeps only the codings in a request's
// Accept-Encoding that the rewriter can decode.
func filterAcceptEncoding(ae string) string {
	var keep []string
	for _, part := range strings.Split(ae, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if _, ok := decodable[name]; ok && name != "" {
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	return strings.Join(keep, ", ")
}

// acceptEncoding parses an Accept-Encoding header (RFC 9110 12.5.3) into
// q-values by lower-case coding name; "*" covers codings not named.
func acceptEncoding(ae string) map[string]float64 {
	q := make(map[string]float64, 4)
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		v := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				v = f
			}
		}
		if name == "x-gzip" {
			name = encGzip
		}
		q[name] = v
	}
	return q
}

// chooseEncoding picks the coding a rewritten page is sent in, given the
// visitor's Accept-Encoding and the coding the origin used (see decodable).
//
// A page the origin sent uncompressed stays uncompressed: the origin (or
// the server in front of Loupe) chose so, perhaps against BREACH, and
// compressing costs CPU on the critical path. A compressed page goes out in
// the coding the visitor gives the highest q-value, preferring on a tie the
// origin's own coding, then outputPreference; with no Accept-Encoding at
// all, any coding is acceptable (RFC 9110 12.5.3) and the origin's is kept.
// If the visitor accepts none, identity.
func chooseEncoding(ae, origin string) string {
	if origin == encIdentity || strings.TrimSpace(ae) == "" {
		return origin
	}
	q := acceptEncoding(ae)
	qOf := func(c string) float64 {
		if v, ok := q[c]; ok {
			return v
		}
		return q["*"] // 0 when absent
	}
	best, bestQ := encIdentity, 0.0
	for _, c := range append([]string{origin}, outputPreference...) {
		if v := qOf(c); v > bestQ {
			best, bestQ = c, v
		}
	}
	return best
}

// varyAcceptEncoding adds Accept-Encoding to a response's Vary values
// unless they already name it or "*".
func varyAcceptEncoding(vary []string) bool {
	for _, v := range vary {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return false
			}
		}
	}
	return true
}

// newDecoder returns a reader of src decoded from coding enc, and a
// function that gives pooled state back (call it once, after the last
// Read). Constructing it reads the coding's header, if it has one.
func newDecoder(enc string, src io.Reader) (io.Reader, func(), error) {
	switch enc {
	case encIdentity:
		return src, func() {}, nil
	case encGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("gzip header: %w", err)
		}
		return zr, func() { gzipReaders.Put(zr) }, nil
	case encDeflate:
		// RFC 9110 defines "deflate" as zlib, but some servers send raw
		// DEFLATE: look at the first two bytes (RFC 1950 2.2).
		br := bufio.NewReaderSize(src, 512)
		hdr, err := br.Peek(2)
		if err != nil && len(hdr) < 2 {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("deflate header: %w", err)
		}
		if hdr[0]&0x0f == 8 && hdr[0]>>4 <= 7 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 && hdr[1]&0x20 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, nil, fmt.Errorf("zlib header: %w", err)
			}
			return zr, func() {}, nil
		}
		return flate.NewReader(br), func() {}, nil
	case encBrotli:
		r, _ := brotliReaders.Get().(*brotli.Reader)
		if r == nil {
			r = brotli.NewReader(src)
		} else if err := r.Reset(src); err != nil {
			return nil, nil, fmt.Errorf("brotli reset: %w", err)
		}
		return r, func() { brotliReaders.Put(r) }, nil
	case encZstd:
		d, _ := zstdReaders.Get().(*zstd.Decoder)
		if d == nil {
			var err error
			// One goroutine (the caller's) and a window no larger than
			// browsers accept for Content-Encoding: zstd (RFC 9659).
			d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, nil, fmt.Errorf("zstd decoder: %w", err)
			}
		}
		if err := d.Reset(src); err != nil {
			zstdReaders.Put(d)
			return nil, nil, fmt.Errorf("zstd header: %w", err)
		}
		return d, func() { d.Reset(nil); zstdReaders.Put(d) }, nil
	}
	return nil, nil, fmt.Errorf("content coding %q: %w", enc, errPassThrough)
}

// An encoder compresses into the writer it was last Reset to.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

// zstdEncoder adapts *zstd.Encoder, whose Reset has no result.
type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

// Decoders and encoders are pooled: a brotli writer allocates megabytes
// when new, a zstd one more. Levels are chosen for speed: re-encoding is on
// the visitor's critical path.
var (
	gzipReaders   sync.Pool
	brotliReaders sync.Pool
	zstdReaders   sync.Pool

	encoders = map[string]*sync.Pool{
		encGzip: {New: func() any {
			w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
			return w
		}},
		encDeflate: {New: func() any {
			w, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
			return w
		}},
		encBrotli: {New: func() any {
			return brotli.NewWriterLevel(io.Discard, 2)
		}},
		encZstd: {New: func() any {
			w, err := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			if err != nil {
				panic(fmt.Sprintf("zstd encoder options: %v", err))
			}
			return zstdEncoder{w}
		}},
	}
)

// newEncoder returns a compressor for coding enc writing to dst, and a
// function giving it back to its pool (after Close). Identity has none.
func newEncoder(enc string, dst io.Writer) (encoder, func()) {
	pool, ok := encoders[enc]
	if !ok {
		return nil, func() {}
	}
	w := pool.Get().(encoder)
	w.Reset(dst)
	return w, func() {
		w.Reset(io.Discard)
		pool.Put(w)
	}
}
