package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loupe-dev/loupe/collector"
)

// load is a load generator speaking the recorder's protocol to an ingest
// URL: several visitors, each one page view, each sending batch after
// batch. Like the recorder it retries a batch on 503, 429 or a network
// error, with backoff, until it is acknowledged; it never skips one.
type load struct {
	url      string
	visitors []*visitor
	client   *http.Client

	stop chan struct{}
	wg   sync.WaitGroup

	acked      atomic.Int64 // 204s
	unavail    atomic.Int64 // 503s
	retryAfter atomic.Int64 // 503s or 429s with a Retry-After header
	netErrs    atomic.Int64 // requests that got no answer
	mu         sync.Mutex
	failures   []string // answers the recorder would not retry
}

// visitor is one page view of one session.
type visitor struct {
	sid, pv, token string
	mu             sync.Mutex
	acked          []int // seqs answered 204, in order
	pending        int   // seq being sent, -1 if none
}

// startLoad starts n visitors whose tokens are minted with testSecret, as
// the proxy mints them.
func startLoad(t testing.TB, url string, n int) *load {
	t.Helper()
	tokens := testTokens(t)
	l := &load{
		url:    url,
		client: &http.Client{Timeout: 5 * time.Second},
		stop:   make(chan struct{}),
	}
	for range n {
		v := newVisitor(tokens)
		l.visitors = append(l.visitors, v)
		l.wg.Add(1)
		go l.run(v)
	}
	return l
}

// testTokens mints tokens with testSecret, as the proxies of the test do.
func testTokens(t testing.TB) *collector.Tokens {
	t.Helper()
	tokens, err := collector.NewTokens([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// newVisitor starts a session and a page view in it, minting its token
// the way the proxy does.
func newVisitor(tokens *collector.Tokens) *visitor {
	sess, pv := tokens.NewSession(), collector.NewID()
	return &visitor{sid: sess.ID, pv: pv, token: tokens.PageViewToken(sess, pv), pending: -1}
}

// finish stops the visitors after their batch in flight is acknowledged
// and waits for them, at most d.
func (l *load) finish(t testing.TB, d time.Duration) {
	t.Helper()
	close(l.stop)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		for _, v := range l.visitors {
			v.mu.Lock()
			if v.pending >= 0 {
				t.Errorf("visitor %s: batch %d still not acknowledged after %v", v.sid, v.pending, d)
			}
			v.mu.Unlock()
		}
		t.FailNow()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.failures {
		t.Error(f)
	}
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) run(v *visitor) {
	defer l.wg.Done()
	for seq := 0; !l.stopped(); seq++ {
		v.mu.Lock()
		v.pending = seq
		v.mu.Unlock()
		body := batchBody(v, seq)
		backoff := 20 * time.Millisecond
		for {
			status, retryAfter, err := l.post(body)
			if err == nil && status == http.StatusNoContent {
				l.acked.Add(1)
				v.mu.Lock()
				v.acked = append(v.acked, seq)
				v.pending = -1
				v.mu.Unlock()
				break
			}
			switch {
			case err != nil:
				l.netErrs.Add(1)
			case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
				if status == http.StatusServiceUnavailable {
					l.unavail.Add(1)
				}
				if retryAfter {
					l.retryAfter.Add(1)
				}
			default:
				l.mu.Lock()
				l.failures = append(l.failures, fmt.Sprintf("visitor %s batch %d: got status %d, want 204 (or 503 to retry)", v.sid, seq, status))
				l.mu.Unlock()
				return
			}
			// The recorder's backoff, shortened for the test: doubling
			// from 20 ms to 400 ms, jittered. It does not wait the whole
			// Retry-After (5 s) so that the test stays short.
			time.Sleep(backoff/2 + rand.N(backoff/2))
			backoff = min(2*backoff, 400*time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *load) post(body []byte) (status int, retryAfter bool, err error) {
	req, err := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, false, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After") != "", nil
}

// batchBody is batch seq of v's page view: on seq 0 a Meta and a full
// snapshot, then a custom event naming the page view and seq, which is how
// checkStored finds each batch in the store.
func batchBody(v *visitor, seq int) []byte {
	ts := time.Now().UnixMilli()
	var events []any
	if seq == 0 {
		events = append(events,
			map[string]any{"type": 4, "timestamp": ts, "data": map[string]any{"href": "http://127.0.0.1/load", "width": 1280, "height": 800}},
			map[string]any{"type": 2, "timestamp": ts, "data": map[string]any{
				"node":          map[string]any{"type": 0, "id": 1, "childNodes": []any{}},
				"initialOffset": map[string]any{"top": 0, "left": 0},
			}})
	}
	events = append(events, map[string]any{"type": 5, "timestamp": ts, "data": map[string]any{
		"tag": "loupe-load", "payload": map[string]any{"pv": v.pv, "seq": seq},
	}})
	b, _ := json.Marshal(map[string]any{"v": 1, "token": v.token, "pv": v.pv, "seq": seq, "events": events})
	return b
}

// checkStored requires every acknowledged batch of every visitor in the
// store exactly once, and no batch the visitor did not send.
func checkStored(t testing.TB, m *Main, l *load) {
	t.Helper()
	total := 0
	for _, v := range l.visitors {
		var buf bytes.Buffer
		if err := m.db.WriteEvents(context.Background(), v.sid, &buf); err != nil {
			t.Errorf("session %s: %v", v.sid, err)
			continue
		}
		var events []struct {
			Type int `json:"type"`
			Data struct {
				Tag     string `json:"tag"`
				Payload struct {
					PV  string `json:"pv"`
					Seq int    `json:"seq"`
				} `json:"payload"`
			} `json:"data"`
		}
		if err := json.Unmarshal(buf.Bytes(), &events); err != nil {
			t.Fatalf("session %s: events are not JSON: %v", v.sid, err)
		}
		stored := map[int]int{}
		for _, e := range events {
			if e.Type == 5 && e.Data.Tag == "loupe-load" {
				if e.Data.Payload.PV != v.pv {
					t.Errorf("session %s holds a batch of page view %s", v.sid, e.Data.Payload.PV)
				}
				stored[e.Data.Payload.Seq]++
			}
		}
		v.mu.Lock()
		for i, seq := range v.acked {
			if seq != i {
				t.Fatalf("visitor %s: acknowledged seqs %v are not 0…n", v.sid, v.acked)
			}
			if stored[seq] != 1 {
				t.Errorf("session %s: batch %d was acknowledged and is stored %d times, want once", v.sid, seq, stored[seq])
			}
		}
		if len(stored) != len(v.acked) {
			t.Errorf("session %s: %d batches stored, %d acknowledged", v.sid, len(stored), len(v.acked))
		}
		total += len(v.acked)
		v.mu.Unlock()
	}
	t.Logf("%d batches acknowledged and stored; %d answered 503 (%d with Retry-After), %d without an answer",
		total, l.unavail.Load(), l.retryAfter.Load(), l.netErrs.Load())
}

// waitAcked waits until at least n more batches were acknowledged than
// when it was called, or fails after d.
func (l *load) waitAcked(t testing.TB, n int64, d time.Duration) {
	t.Helper()
	start := l.acked.Load()
	deadline := time.Now().Add(d)
	for l.acked.Load() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d batches acknowledged in %v, want %d", l.acked.Load()-start, d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
