package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/store"
)

// chanLogger is a RequestLogger handing entries to the test.
type chanLogger chan store.Request

func (c chanLogger) LogRequest(r store.Request) { c <- r }

// next returns the next entry, failing after a few seconds without one.
func (c chanLogger) next(tb testing.TB) store.Request {
	tb.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(5 * time.Second):
		tb.Fatal("no network log entry")
		return store.Request{}
	}
}

// none fails if an entry arrives within a short while.
func (c chanLogger) none(tb testing.TB, what string) {
	tb.Helper()
	select {
	case r := <-c:
		tb.Fatalf("%s: got entry %+v, want none", what, r)
	case <-time.After(100 * time.Millisecond):
	}
}

func sessionCookie(tb testing.TB, resp *http.Response) *http.Cookie {
	tb.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == DefaultCookieName {
			return c
		}
	}
	tb.Fatal("no session cookie")
	return nil
}

func netlogOrigin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})
	mux.HandleFunc("/api/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `"hello"`)
	})
	mux.HandleFunc("/api/boom", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/api/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, "body{}")
	})
	return mux
}

func TestNetlog(t *testing.T) {
	log := make(chanLogger, 16)
	rules, err := collector.ParseUserRules("cookie:uid")
	if err != nil {
		t.Fatal(err)
	}
	srv, tk := mustProxy(t, netlogOrigin(), func(c *Config) { c.Requests = log; c.UserRules = rules })

	// A page request without a cookie starts a session: it is logged with
	// the session and page view the response was given.
	resp, body := get(t, srv.URL+"/?q=1", nil)
	sc := sessionCookie(t, resp)
	pv := tokenOf(t, tk, body)
	e := log.next(t)
	if e.SessionID != pv.SessionID || e.PageViewID != pv.ID || e.PageViewID == "" {
		t.Errorf("page entry: got session %q page view %q, want %q %q", e.SessionID, e.PageViewID, pv.SessionID, pv.ID)
	}
	if e.Method != "GET" || e.URL != "/?q=1" || e.Status != 200 || e.Bytes != int64(len(body)) || e.At <= 0 || e.DurationMS < 0 {
		t.Errorf("page entry: got %+v, want GET /?q=1 200 with %d bytes", e, len(body))
	}
	if e.PageURL != srv.URL+"/?q=1" || e.UserID != "" || e.Stream {
		t.Errorf("page entry: got page url %q, user %q, stream %v; want %s/?q=1, none, false", e.PageURL, e.UserID, e.Stream, srv.URL)
	}

	cookie := sc.Name + "=" + sc.Value + "; uid=ada%40example.test"
	tests := []struct {
		name, path string
		header     map[string]string
		want       *store.Request // nil: not logged
	}{
		{name: "api call", path: "/api/ok", header: map[string]string{"Cookie": cookie, "Referer": srv.URL + "/?q=1"},
			want: &store.Request{Method: "GET", URL: "/api/ok", Status: 200, Bytes: 7, PageURL: srv.URL + "/?q=1", UserID: "ada@example.test"}},
		{name: "server error", path: "/api/boom?x=%20y", header: map[string]string{"Cookie": cookie},
			want: &store.Request{Method: "GET", URL: "/api/boom?x=%20y", Status: 500, Bytes: 5, UserID: "ada@example.test"}},
		{name: "asset", path: "/style.css", header: map[string]string{"Cookie": sc.Name + "=" + sc.Value},
			want: &store.Request{Method: "GET", URL: "/style.css", Status: 200, Bytes: 6}},
		{name: "no session", path: "/style.css"},
		{name: "forged cookie", path: "/api/ok", header: map[string]string{"Cookie": DefaultCookieName + "=" + strings.Repeat("a", 32) + ".1.2.mac"}},
		{name: "loupe route", path: "/__loupe/healthz", header: map[string]string{"Cookie": cookie}},
		{name: "loupe recorder", path: "/__loupe/recorder.js", header: map[string]string{"Cookie": cookie}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(t, srv.URL+tt.path, tt.header)
			if tt.want == nil {
				if tt.path == "/style.css" && resp.StatusCode != 200 {
					t.Fatalf("got %d", resp.StatusCode)
				}
				log.none(t, tt.path)
				return
			}
			got := log.next(t)
			if got.SessionID != pv.SessionID {
				t.Errorf("got session %q, want %q", got.SessionID, pv.SessionID)
			}
			w := *tt.want
			w.SessionID, w.At, w.DurationMS = got.SessionID, got.At, got.DurationMS
			if got != w {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
		})
	}
}

// TestNetlogPrivacySignal: once a visitor sends Do-Not-Track or Global
// Privacy Control, their session's requests are no longer logged where the
// site honours the signal, and still are where it does not.
func TestNetlogPrivacySignal(t *testing.T) {
	for _, honor := range []bool{true, false} {
		t.Run(fmt.Sprintf("honour=%v", honor), func(t *testing.T) {
			log := make(chanLogger, 16)
			rec, err := RecordRules{Sampling: 1, IgnorePrivacySignals: !honor}.Func()
			if err != nil {
				t.Fatal(err)
			}
			srv, _ := mustProxy(t, netlogOrigin(), func(c *Config) { c.Requests = log; c.Record = rec })
			resp, _ := get(t, srv.URL+"/", nil)
			sc := sessionCookie(t, resp)
			log.next(t) // the page that started the session
			cookie := sc.Name + "=" + sc.Value
			for _, h := range []string{"DNT", "Sec-GPC"} {
				get(t, srv.URL+"/api/ok", map[string]string{"Cookie": cookie, h: "1"})
				if honor {
					log.none(t, h+": 1")
				} else if e := log.next(t); e.URL != "/api/ok" {
					t.Errorf("%s: 1 on a site ignoring it: logged %+v", h, e)
				}
			}
			get(t, srv.URL+"/api/ok", map[string]string{"Cookie": cookie})
			if e := log.next(t); e.URL != "/api/ok" {
				t.Errorf("without the signal: logged %+v", e)
			}
		})
	}
}

func TestNetlogNoResponse(t *testing.T) {
	log := make(chanLogger, 4)
	srv, _ := mustProxy(t, netlogOrigin(), func(c *Config) { c.Requests = log })
	resp, _ := get(t, srv.URL+"/", nil)
	log.next(t)
	sc := sessionCookie(t, resp)

	// The visitor gives up on a request the origin never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// A GET: the server notices a client that went away once the request
	// body is read, and a GET's is at once.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/hang", nil)
	req.AddCookie(sc)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %s, want the request to time out", resp.Status)
	}
	e := log.next(t)
	if e.Status != 0 || e.Method != "GET" || e.URL != "/api/hang" || e.Bytes != 0 || e.DurationMS < 150 {
		t.Errorf("got %+v, want GET /api/hang, status 0, no bytes, about 200 ms", e)
	}
	if kind, _ := e.Signal(); kind != "failed_request" {
		t.Errorf("got signal %q, want failed_request", kind)
	}
}

// TestNetlogStreams: flushing and WebSocket hijacking still work through
// the logging writer, and both are logged as streams.
func TestNetlogStreams(t *testing.T) {
	release := make(chan struct{})
	origin := http.NewServeMux()
	origin.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})
	origin.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: two\n\n")
	})
	origin.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("origin hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	log := make(chanLogger, 4)
	srv, _ := mustProxy(t, origin, func(c *Config) { c.Requests = log })
	resp, _ := get(t, srv.URL+"/", nil)
	log.next(t)
	sc := sessionCookie(t, resp)

	// Server-sent events: the first event arrives while the origin still
	// holds the response open.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events", nil)
	req.AddCookie(sc)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "data: one\n" {
		t.Fatalf("first event: got %q, %v", first, err)
	}
	close(release)
	io.ReadAll(br)
	resp.Body.Close()
	e := log.next(t)
	if e.URL != "/events" || e.Status != 200 || !e.Stream || e.Bytes != int64(len("data: one\n\ndata: two\n\n")) {
		t.Errorf("event stream: got %+v, want a 200 stream of 22 bytes", e)
	}

	// A protocol switch: the proxy hijacks the connection through the
	// logging writer.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nCookie: %s=%s\r\n\r\n", sc.Name, sc.Value)
	cr := bufio.NewReader(conn)
	status, _ := cr.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("got status line %q, want 101", status)
	}
	for {
		l, err := cr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	io.WriteString(conn, "hi\n")
	if got, _ := cr.ReadString('\n'); got != "echo hi\n" {
		t.Errorf("through the switched connection: got %q, want echo", got)
	}
	conn.Close()
	e = log.next(t)
	if e.URL != "/ws" || e.Status != 101 || !e.Stream {
		t.Errorf("protocol switch: got %+v, want 101 stream", e)
	}
	if kind, _ := (&store.Request{Status: 101, Stream: true, DurationMS: 60_000}).Signal(); kind != "" {
		t.Errorf("a long stream raised %q, want no signal", kind)
	}
}

// fakeSink records deliveries and fails the first fails of them.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]store.Request
	calls   int
	fails   int
	err     error
	block   chan struct{} // if set, each call waits for it
}

func (s *fakeSink) AppendRequests(ctx context.Context, reqs []store.Request) error {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.fails {
		return s.err
	}
	s.batches = append(s.batches, append([]store.Request(nil), reqs...))
	return nil
}

func (s *fakeSink) snapshot() (calls int, sizes []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		sizes = append(sizes, len(b))
	}
	return s.calls, sizes
}

func entry(i int) store.Request {
	return store.Request{SessionID: collector.NewID(), At: int64(i + 1), Method: "GET", URL: fmt.Sprint("/", i), Status: 200}
}

func TestRequestQueue(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	t.Run("batches by size then on close", func(t *testing.T) {
		sink := &fakeSink{}
		q, err := NewRequestQueue(QueueConfig{Sink: sink, Batch: 3, Interval: time.Hour, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 7 {
			q.LogRequest(entry(i))
		}
		q.Close()
		q.LogRequest(entry(8)) // after Close: dropped
		_, sizes := sink.snapshot()
		if fmt.Sprint(sizes) != "[3 3 1]" {
			t.Errorf("got batches of %v, want [3 3 1]", sizes)
		}
		if st := q.Stats(); st != (QueueStats{Sent: 7, Dropped: 1}) {
			t.Errorf("got %+v, want 7 sent, 1 dropped", st)
		}
	})
	t.Run("sends on the interval", func(t *testing.T) {
		sink := &fakeSink{}
		q, _ := NewRequestQueue(QueueConfig{Sink: sink, Interval: 20 * time.Millisecond, Logger: quiet})
		defer q.Close()
		q.LogRequest(entry(0))
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, sizes := sink.snapshot(); len(sizes) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("entry not sent on the interval")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("drops when full without blocking", func(t *testing.T) {
		sink := &fakeSink{block: make(chan struct{})}
		q, _ := NewRequestQueue(QueueConfig{Sink: sink, Size: 2, Batch: 1, Interval: time.Hour, Logger: quiet})
		for i := range 10 {
			q.LogRequest(entry(i)) // the first is taken, blocks the sink; 2 wait
		}
		close(sink.block)
		q.Close()
		st := q.Stats()
		if st.Dropped < 1 || st.Sent+st.Dropped != 10 || st.Failed != 0 {
			t.Errorf("got %+v, want drops, and every entry sent or dropped", st)
		}
	})
	t.Run("retries then succeeds", func(t *testing.T) {
		sink := &fakeSink{fails: 2, err: errors.New("store down")}
		q, _ := NewRequestQueue(QueueConfig{Sink: sink, Batch: 2, Interval: time.Hour, Logger: quiet})
		q.LogRequest(entry(0))
		q.LogRequest(entry(1))
		deadline := time.Now().Add(5 * time.Second)
		for q.Stats().Sent != 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		q.Close()
		if calls, _ := sink.snapshot(); calls != 3 || q.Stats() != (QueueStats{Sent: 2}) {
			t.Errorf("got %d calls, %+v; want 3 calls and 2 sent", calls, q.Stats())
		}
	})
	t.Run("gives up after retries", func(t *testing.T) {
		sink := &fakeSink{fails: 100, err: errors.New("store down")}
		q, _ := NewRequestQueue(QueueConfig{Sink: sink, Batch: 1, Retries: 1, Interval: time.Hour, Logger: quiet})
		q.LogRequest(entry(0))
		deadline := time.Now().Add(5 * time.Second)
		for q.Stats().Failed != 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		q.Close()
		if calls, _ := sink.snapshot(); calls != 2 || q.Stats() != (QueueStats{Failed: 1}) {
			t.Errorf("got %d calls, %+v; want 2 calls and 1 failed", calls, q.Stats())
		}
	})
	t.Run("rejected is not retried", func(t *testing.T) {
		sink := &fakeSink{fails: 100, err: fmt.Errorf("400: %w", collector.ErrRejected)}
		q, _ := NewRequestQueue(QueueConfig{Sink: sink, Batch: 1, Interval: time.Hour, Logger: quiet})
		q.LogRequest(entry(0))
		q.Close()
		if calls, _ := sink.snapshot(); calls != 1 || q.Stats() != (QueueStats{Failed: 1}) {
			t.Errorf("got %d calls, %+v; want 1 call and 1 failed", calls, q.Stats())
		}
	})
	if _, err := NewRequestQueue(QueueConfig{}); err == nil {
		t.Error("NewRequestQueue without a sink: got nil error")
	}
}

// TestNetlogToQueue: the proxy's entries reach a sink through the queue.
func TestNetlogToQueue(t *testing.T) {
	sink := &fakeSink{}
	q, _ := NewRequestQueue(QueueConfig{Sink: sink, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	srv, _ := mustProxy(t, netlogOrigin(), func(c *Config) { c.Requests = q })
	resp, _ := get(t, srv.URL+"/", nil)
	sc := sessionCookie(t, resp)
	get(t, srv.URL+"/api/boom", map[string]string{"Cookie": sc.Name + "=" + sc.Value})
	srv.Close() // waits for the handlers, so both entries are queued
	q.Close()
	if _, sizes := sink.snapshot(); len(sizes) != 1 || sizes[0] != 2 {
		t.Fatalf("got batches %v, want one of 2", sizes)
	}
	if st := q.Stats(); st.Sent != 2 {
		t.Errorf("got %+v, want 2 sent", st)
	}
}
