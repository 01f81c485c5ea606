package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// A rewritten HTML body streams: one goroutine per response reads the
// origin's body, decodes it, runs the injector over it and re-encodes the
// result into a pipe that httputil.ReverseProxy copies to the visitor. Only
// fixed buffers are held (64 KiB in, 64 KiB out, the tokenizer's current
// token), so neither memory nor the time to the first byte depends on the
// page's size.
//
// Whatever the rewriter produced is flushed to the visitor once a read of
// the origin's bytes has waited for stallFlush (flushingReader): an origin
// that sends its <head> and then stalls has the head, and the recorder tag
// in it, in the visitor's browser while it stalls, and one that streams its
// page piece by piece has each piece there within stallFlush of its
// arrival. Otherwise a page goes out in 64 KiB pieces, which the visitor's
// side (pacedWriter) does not flush one by one: an origin that answers at
// once costs no flush, and no chunk or write of its own, per read.
//
// A goroutine is the price of that rule: the rewriter cannot know whether
// its next read of the origin would block until it makes it, so the
// rewriting cannot run inside the visitor side's Read.

// streamBufSize is the size of the read buffer over the origin's body and
// of the output buffer: most pages go out in one piece, and so in one
// chunk (a 50 KB page took two at 32 KiB, and 6–17% more CPU; bench/).
const streamBufSize = 64 << 10

var errStreamClosed = errors.New("rewritten body closed")

// stream is the body of a rewritten response.
//
// The rewrite starts at the first Read, not before: until then
// httputil.ReverseProxy reads the response's Trailer map, which the
// transport fills in when the goroutine reaches the end of the origin's
// body.
type stream struct {
	pr    *io.PipeReader
	up    io.Closer    // the origin's body
	pace  *pacedWriter // the visitor's side; nil if not paced
	run   func()       // the rewrite, run in its own goroutine
	drop  func()       // gives the rewrite's resources back if it never ran
	start sync.Once
}

func (s *stream) Read(p []byte) (int, error) {
	s.start.Do(func() { go s.run() })
	n, err := s.pr.Read(p)
	if err == io.EOF && s.pace != nil {
		s.pace.unpace()
	}
	return n, err
}

// Close stops the rewrite: its next write fails, and the origin's body is
// closed, which also ends a read waiting on it.
func (s *stream) Close() error {
	s.start.Do(s.drop)
	s.pr.CloseWithError(errStreamClosed)
	return s.up.Close()
}

// rewriteFunc copies the HTML document src to dst with the recorder
// inserted (*injector.Injector.Rewrite with the page's settings).
type rewriteFunc func(dst io.Writer, src io.Reader) error

// streamBuffers are the pooled buffers of one stream.
type streamBuffers struct {
	in    *bufio.Reader
	out   []byte       // rewritten bytes not yet encoded
	zbuf  bytes.Buffer // encoded bytes not yet in the pipe
	first []byte       // first decoded bytes (see newStream)
}

var streamPool = sync.Pool{New: func() any {
	return &streamBuffers{
		in:    bufio.NewReaderSize(nil, streamBufSize),
		out:   make([]byte, 0, streamBufSize),
		first: make([]byte, 4<<10),
	}
}}

// newStream starts rewriting up, the origin's body in content coding in
// (see decodable), into a body in coding out. If pace is not nil, the
// stream asks it for its flushes (see pacedWriter): the caller makes it
// pace the response once the stream is its body.
//
// Before it returns, it decodes the first bytes: if the body is not in the
// coding it claims, or the origin breaks off before sending any, it returns
// an error and a body replaying the origin's bytes, so that the response
// can go out as the origin sent it. Errors after that end the new body
// with an error, as an origin breaking off would.
func newStream(up io.ReadCloser, in, out string, rewrite rewriteFunc, pace *pacedWriter, log *slog.Logger) (io.ReadCloser, error) {
	bufs := streamPool.Get().(*streamBuffers)
	pr, pw := io.Pipe()
	snk := &sink{pw: pw, out: bufs.out[:0], zbuf: &bufs.zbuf, pace: pace, asked: -1}
	rec := &recordingReader{r: up, on: in != encIdentity}
	bufs.in.Reset(&flushingReader{r: rec, s: snk, wait: stallFlush})

	restore := func(err error) (io.ReadCloser, error) {
		body := readCloser{io.MultiReader(bytes.NewReader(rec.buf), up), up}
		bufs.in.Reset(nil)
		streamPool.Put(bufs)
		return body, err
	}
	dec, release, err := newDecoder(in, bufs.in)
	if err != nil {
		return restore(fmt.Errorf("decode %s body: %w", in, err))
	}
	src := dec
	if in != encIdentity {
		// Decode the first bytes now, while the origin's bytes can still
		// be sent instead.
		n, err := readSome(dec, bufs.first)
		switch {
		case errors.Is(err, io.EOF):
			src = bytes.NewReader(bufs.first[:n])
		case err != nil:
			release()
			return restore(fmt.Errorf("decode %s body: %w", in, err))
		default:
			src = io.MultiReader(bytes.NewReader(bufs.first[:n]), dec)
		}
	}
	rec.stop()

	snk.enc, snk.releaseEnc = newEncoder(out, snk.zbuf)
	// done gives everything back once the rewrite is over; ok: the coders
	// ended normally and may be reused.
	done := func(ok bool) {
		if ok {
			release()
			snk.releaseEnc()
		}
		bufs.in.Reset(nil)
		bufs.out = snk.out[:0]
		bufs.zbuf.Reset()
		streamPool.Put(bufs)
	}
	run := func() {
		var err error
		ok := false
		defer func() {
			if v := recover(); v != nil {
				// A coder that panicked may be in any state: let it go.
				err = fmt.Errorf("rewrite panic: %v", v)
				log.Error("rewrite stream panic", "panic", v)
			}
			if err != nil && !errors.Is(err, errStreamClosed) {
				log.Warn("rewritten body broke off", "err", err)
			}
			pw.CloseWithError(err) // nil: io.EOF
			done(ok)
		}()
		err = rewrite(snk, src)
		if err == nil {
			err = snk.close()
		} else {
			// What arrived before the break goes out, as it would have
			// from the origin.
			snk.flush()
		}
		ok = true
	}
	return &stream{pr: pr, up: up, pace: pace, run: run, drop: func() { done(true) }}, nil
}

// readSome reads into b until it gets a byte or an error.
func readSome(r io.Reader, b []byte) (int, error) {
	for i := 0; i < 100; i++ {
		n, err := r.Read(b)
		if n > 0 || err != nil {
			if err == io.EOF && n > 0 {
				return n, io.EOF
			}
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// recordingReader keeps what it reads while on, so that a body found not
// to be in its coding can be replayed.
type recordingReader struct {
	r   io.Reader
	on  bool
	buf []byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if r.on {
		r.buf = append(r.buf, p[:n]...)
	}
	return n, err
}

func (r *recordingReader) stop() { r.on, r.buf = false, nil }

// stallFlush is how long a read of the origin's body waits before what
// the rewriter produced so far is flushed to the visitor. A stream takes
// it when it starts; tests lengthen it to count the other flushes.
var stallFlush = time.Millisecond

// flushingReader flushes the sink when a read of the origin's body has
// waited stallFlush with output not yet flushed (sink.unsent). The flush
// runs on the timer's goroutine while the rewrite's is blocked in the
// read; Read returns only once it is over, so the two never use the sink
// at once.
type flushingReader struct {
	r     io.Reader
	s     *sink
	wait  time.Duration // stallFlush
	t     *time.Timer   // flushes the sink; made on the first read that needs it
	fired chan struct{} // the timer's flush is over
}

func (f *flushingReader) Read(p []byte) (int, error) {
	if f.s.err != nil {
		return 0, f.s.err
	}
	if !f.s.unsent() {
		return f.r.Read(p)
	}
	if f.t == nil {
		f.fired = make(chan struct{}, 1)
		f.t = time.AfterFunc(f.wait, func() {
			f.s.flush()
			f.fired <- struct{}{}
		})
	} else {
		f.t.Reset(f.wait)
	}
	n, err := f.r.Read(p)
	if !f.t.Stop() {
		<-f.fired
	}
	return n, err
}

// sink takes the rewriter's small writes, buffers them, encodes them in
// large pieces and writes the result to the pipe.
type sink struct {
	pw         *io.PipeWriter
	out        []byte        // rewritten bytes not yet encoded
	enc        encoder       // nil for identity
	releaseEnc func()        // gives enc back to its pool
	zbuf       *bytes.Buffer // enc's output not yet in the pipe
	encDirty   bool          // enc holds bytes not yet flushed
	err        error

	pace  *pacedWriter // nil: the pipe's reader flushes what it reads
	piped int64        // bytes written to the pipe
	asked int64        // piped at the last flush asked of pace; -1 before
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(s.out)+len(p) > cap(s.out) {
		if err := s.drain(); err != nil {
			return 0, err
		}
		if len(p) >= cap(s.out) {
			if err := s.encode(p); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	s.out = append(s.out, p...)
	return len(p), nil
}

func (s *sink) dirty() bool {
	return len(s.out) > 0 || s.encDirty || s.zbuf.Len() > 0
}

// unsent reports whether some output, or the response's header, may not
// have reached the visitor yet.
func (s *sink) unsent() bool {
	return s.dirty() || s.pace != nil && s.piped > s.asked
}

// drain encodes the buffered bytes.
func (s *sink) drain() error {
	if len(s.out) == 0 {
		return nil
	}
	err := s.encode(s.out)
	s.out = s.out[:0]
	return err
}

// encode encodes b, writing to the pipe when enough output is ready.
func (s *sink) encode(b []byte) error {
	if s.enc == nil {
		return s.pipe(b)
	}
	s.encDirty = true
	if _, err := s.enc.Write(b); err != nil {
		return s.fail(fmt.Errorf("encode: %w", err))
	}
	if s.zbuf.Len() >= streamBufSize {
		return s.pipeZ()
	}
	return nil
}

func (s *sink) pipe(b []byte) error {
	n, err := s.pw.Write(b)
	s.piped += int64(n)
	if err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *sink) pipeZ() error {
	if s.zbuf.Len() == 0 {
		return nil
	}
	err := s.pipe(s.zbuf.Bytes())
	s.zbuf.Reset()
	return err
}

func (s *sink) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// flush sends everything written so far to the visitor.
func (s *sink) flush() error {
	if s.err != nil {
		return s.err
	}
	if err := s.drain(); err != nil {
		return err
	}
	if s.enc != nil && s.encDirty {
		s.encDirty = false
		if err := s.enc.Flush(); err != nil {
			return s.fail(fmt.Errorf("encode: %w", err))
		}
	}
	if err := s.pipeZ(); err != nil {
		return err
	}
	if s.pace != nil {
		s.asked = s.piped
		s.pace.flushTo(s.piped)
	}
	return nil
}

// close ends the encoding and sends the rest.
func (s *sink) close() error {
	if err := s.drain(); err != nil {
		return err
	}
	if s.enc != nil {
		if err := s.enc.Close(); err != nil {
			return s.fail(fmt.Errorf("encode: %w", err))
		}
	}
	return s.pipeZ()
}
