package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
)

// A codec decodes and re-encodes an HTML body in one Content-Encoding.
// Levels are chosen for speed: re-encoding is on the visitor's critical
// path, and costs more than the rewrite itself.
type codec struct {
	decode func(b []byte, limit int64) ([]byte, error)
	encode func(b []byte) ([]byte, error)
}

// codecs holds the encodings the rewriter handles, by Content-Encoding.
var codecs = map[string]codec{
	"":         {decode: identity, encode: func(b []byte) ([]byte, error) { return b, nil }},
	"identity": {decode: identity, encode: func(b []byte) ([]byte, error) { return b, nil }},
	"gzip":     {decode: decodeGzip, encode: pooledEncode(&gzipWriters)},
	"x-gzip":   {decode: decodeGzip, encode: pooledEncode(&gzipWriters)},
	"deflate":  {decode: decodeDeflate, encode: pooledEncode(&zlibWriters)},
	"br":       {decode: decodeBrotli, encode: pooledEncode(&brotliWriters)},
}

// filterAcceptEncoding keeps only the codings in a request's
// Accept-Encoding that codecs can decode.
func filterAcceptEncoding(ae string) string {
	var keep []string
	for _, part := range strings.Split(ae, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if _, ok := codecs[strings.ToLower(strings.TrimSpace(name))]; ok && name != "" {
			keep = append(keep, strings.TrimSpace(part))
		}
	}
	return strings.Join(keep, ", ")
}

var errTooLarge = errors.New("decoded body too large")

func identity(b []byte, _ int64) ([]byte, error) { return b, nil }

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

func decodeGzip(b []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return readLimited(zr, limit)
}

// decodeDeflate reads HTTP "deflate", which RFC 9110 defines as zlib but
// some servers send as raw DEFLATE; both are accepted.
func decodeDeflate(b []byte, limit int64) ([]byte, error) {
	if zr, err := zlib.NewReader(bytes.NewReader(b)); err == nil {
		return readLimited(zr, limit)
	}
	return readLimited(flate.NewReader(bytes.NewReader(b)), limit)
}

func decodeBrotli(b []byte, limit int64) ([]byte, error) {
	return readLimited(brotli.NewReader(bytes.NewReader(b)), limit)
}

// resetWriter is a compressor that can be reused for another output.
type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// Writers are pooled: a brotli writer allocates about 10 MB when new.
var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
		return w
	}}
	zlibWriters = sync.Pool{New: func() any {
		w, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
		return w
	}}
	brotliWriters = sync.Pool{New: func() any {
		return brotli.NewWriterLevel(io.Discard, 4)
	}}
)

func pooledEncode(pool *sync.Pool) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		w := pool.Get().(resetWriter)
		defer pool.Put(w)
		var out bytes.Buffer
		out.Grow(len(b)/3 + 64)
		w.Reset(&out)
		if _, err := w.Write(b); err != nil {
			return nil, fmt.Errorf("compress: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("compress: %w", err)
		}
		return out.Bytes(), nil
	}
}
