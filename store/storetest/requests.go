package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/loupe-dev/loupe/store"
)

// RequestBackend is what RunRequests needs of a backend.
type RequestBackend interface {
	store.Store
	store.RequestStore
	store.SignalReader
}

// RunRequests runs the conformance suite of the proxy's network log and
// user identification. open must return a new, empty store for each call;
// RunRequests closes it when the subtest ends.
func RunRequests(t *testing.T, open func(t *testing.T) RequestBackend) {
	t.Helper()
	runCases(t, open, []testCase[RequestBackend]{
		{"AppendAndRead", testRequestsAppendAndRead},
		{"BeforeSession", testRequestsBeforeSession},
		{"EffectsWait", testRequestsEffectsWait},
		{"User", testRequestsUser},
		{"Invalid", testRequestsInvalid},
		{"NotFound", testRequestsNotFound},
	})
}

// Session ids of the network log tests: 32 hex digits, as the proxy's.
const (
	reqSession  = "0123456789abcdef0123456789abcdef"
	reqSession2 = "fedcba9876543210fedcba9876543210"
	reqPage     = "00112233445566778899aabbccddeeff"
)

func req(session string, at int64, method, url string, status int, ms int64) store.Request {
	return store.Request{SessionID: session, At: base + at, Method: method, URL: url, Status: status, DurationMS: ms, Bytes: 100 + at}
}

func mustAppendRequests(tb testing.TB, s RequestBackend, reqs ...store.Request) {
	tb.Helper()
	if err := s.AppendRequests(context.Background(), reqs); err != nil {
		tb.Fatalf("append requests: %v", err)
	}
}

func mustRequests(tb testing.TB, s RequestBackend, id string) []store.Request {
	tb.Helper()
	got, err := s.Requests(context.Background(), id)
	if err != nil {
		tb.Fatalf("requests %q: %v", id, err)
	}
	return got
}

func mustRequestSignals(tb testing.TB, s RequestBackend, id string) []store.Signal {
	tb.Helper()
	sigs, err := s.Signals(context.Background(), id)
	if err != nil {
		tb.Fatalf("signals %q: %v", id, err)
	}
	return sigs
}

// stored is r as Requests returns it: without the fields not kept.
func stored(r store.Request) store.Request {
	r.PageURL, r.UserID, r.Stream = "", "", false
	return r
}

func testRequestsAppendAndRead(t *testing.T, s RequestBackend) {
	mustAppend(t, s, Batch(reqSession, reqPage, 0, base, 10, 100, "https://shop.example/", 0))
	page := req(reqSession, 0, "GET", "/", 200, 40)
	page.PageViewID, page.PageURL = reqPage, "https://shop.example/"
	ok := req(reqSession, 50, "GET", "/api/cart?id=7", 200, 12)
	boom := req(reqSession, 120, "POST", "/api/checkout", 502, 30)
	boom.PageURL = "https://shop.example/checkout"
	gone := req(reqSession, 110, "GET", "/api/hang", 0, 1500)
	slow := req(reqSession, 300, "GET", "/api/search?q=tea", 200, 4000)
	ws := req(reqSession, 400, "GET", "/ws", 101, 60_000)
	ws.Stream = true
	other := req(reqSession2, 60, "GET", "/", 200, 5)
	mustAppendRequests(t, s, page, ok, boom, gone, other)
	mustAppendRequests(t, s, slow, ws)

	want := []store.Request{stored(page), stored(ok), stored(gone), stored(boom), stored(slow), stored(ws)}
	if got := mustRequests(t, s, reqSession); !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\ngot  %+v\nwant %+v", got, want)
	}

	sigs := mustRequestSignals(t, s, reqSession)
	var got []string
	for _, g := range sigs {
		got = append(got, fmt.Sprintf("%s@%d %s %q", g.Kind, g.At-base, g.URL, g.Detail))
	}
	wantSigs := []string{
		`failed_request@110  "GET /api/hang: no response after 1500 ms"`,
		`server_error@120 https://shop.example/checkout "POST /api/checkout: 502 in 30 ms"`,
		`slow_request@300  "GET /api/search?q=tea: 200 in 4000 ms"`,
	}
	if !reflect.DeepEqual(got, wantSigs) {
		t.Errorf("signals:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(wantSigs, "\n     "))
	}
	sess := mustSession(t, s, reqSession)
	if sess.Signals.ServerError != 1 || sess.Friction != store.Friction(sess.Signals, false) || sess.Friction <= 0 {
		t.Errorf("session: got server errors %d, friction %v; want 1 and store.Friction of the counters", sess.Signals.ServerError, sess.Friction)
	}
	if sess.EventCount != 10 || sess.EntryURL != "https://shop.example/" {
		t.Errorf("session summary changed: %+v", sess)
	}
}

// testRequestsBeforeSession: a page's requests usually arrive before its
// first batch; they are found once the session exists.
func testRequestsBeforeSession(t *testing.T, s RequestBackend) {
	r := req(reqSession, 0, "GET", "/", 200, 10)
	mustAppendRequests(t, s, r)
	if _, err := s.Requests(context.Background(), reqSession); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("requests of a session with no row: got %v, want ErrNotFound", err)
	}
	if ss, err := s.Sessions(context.Background(), store.SessionFilter{}); err != nil || len(ss) != 0 {
		t.Errorf("sessions: got %d (%v), want none: a request without a signal makes no session", len(ss), err)
	}
	mustAppend(t, s, Batch(reqSession, reqPage, 0, base+100, 5, 100, "https://shop.example/", 0))
	if got := mustRequests(t, s, reqSession); !reflect.DeepEqual(got, []store.Request{r}) {
		t.Errorf("got %+v, want %+v", got, r)
	}
}

// testRequestsEffectsWait: the signals and user id of requests logged
// before the session's first batch make no session of their own (a bot's
// or an unrecorded visit's would stay empty forever); the first batch
// applies them.
func testRequestsEffectsWait(t *testing.T, s RequestBackend) {
	ctx := context.Background()
	named := req(reqSession, 7, "GET", "/api/me", 200, 10)
	named.UserID = "ada@example.test"
	mustAppendRequests(t, s, req(reqSession, 0, "GET", "/api/x", 500, 10), named, req(reqSession, 5, "GET", "/api/y", 0, 10))
	if err := s.SetSessionUser(ctx, reqSession, "later"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, reqSession); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session before its first batch: got %v, want ErrNotFound", err)
	}
	if ss, err := s.Sessions(ctx, store.SessionFilter{}); err != nil || len(ss) != 0 {
		t.Errorf("sessions: got %d (%v), want none", len(ss), err)
	}
	mustAppend(t, s, Batch(reqSession, reqPage, 0, base+100, 5, 100, "https://shop.example/", 0))
	sess := mustSession(t, s, reqSession)
	if sess.Signals.ServerError != 1 || sess.EventCount != 5 || sess.StartedAt.UnixMilli() != base+100 ||
		sess.UserID != "ada@example.test" || sess.Friction != store.Friction(sess.Signals, false) || sess.Friction <= 0 {
		t.Errorf("after the first batch: got %+v; want 1 server error, the first user id and its friction", sess)
	}
	sigs := mustRequestSignals(t, s, reqSession)
	var kinds []string
	for _, g := range sigs {
		kinds = append(kinds, g.Kind)
	}
	if fmt.Sprint(kinds) != "[server_error failed_request]" {
		t.Errorf("got signals %v, want [server_error failed_request]", kinds)
	}
	// Applied once: later batches add nothing.
	mustAppend(t, s, Batch(reqSession, reqPage, 1, base+700, 5, 100, "", 0))
	if got := mustSession(t, s, reqSession); got.Signals.ServerError != 1 || len(mustRequestSignals(t, s, reqSession)) != 2 {
		t.Errorf("after a second batch: got %d server errors, want 1", got.Signals.ServerError)
	}
	// Another session's waiting effects are untouched.
	mustAppendRequests(t, s, req(reqSession2, 0, "GET", "/api/z", 503, 10))
	mustAppend(t, s, Batch(reqSession, reqPage, 2, base+1300, 5, 100, "", 0))
	if _, err := s.Session(ctx, reqSession2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other session: got %v, want still no row", err)
	}
}

func testRequestsUser(t *testing.T, s RequestBackend) {
	ctx := context.Background()
	mustAppend(t, s, Batch(reqSession, "p0", 0, base, 5, 100, "https://shop.example/", 0))
	a := req(reqSession, 0, "GET", "/", 200, 1)
	b := req(reqSession, 1, "GET", "/a", 200, 1)
	b.UserID = "ada@example.test"
	c := req(reqSession, 2, "GET", "/b", 200, 1)
	c.UserID = "bob@example.test"
	mustAppendRequests(t, s, a, b, c)
	if got := mustSession(t, s, reqSession).UserID; got != "ada@example.test" {
		t.Errorf("got user %q, want the first one named", got)
	}
	// Later identifications keep the first.
	if err := s.SetSessionUser(ctx, reqSession, "carol"); err != nil {
		t.Fatal(err)
	}
	mustAppendRequests(t, s, c)
	if got := mustSession(t, s, reqSession).UserID; got != "ada@example.test" {
		t.Errorf("got user %q after later ones, want the first", got)
	}
	// The recorder's DOM rule identifies a session of its own.
	mustAppend(t, s, Batch(reqSession2, "p1", 0, base, 5, 100, "https://shop.example/", 0))
	if err := s.SetSessionUser(ctx, reqSession2, "dora"); err != nil {
		t.Fatal(err)
	}
	if got := mustSession(t, s, reqSession2).UserID; got != "dora" {
		t.Errorf("got user %q, want dora", got)
	}
	// And the list finds sessions by user.
	ss, err := s.Sessions(ctx, store.SessionFilter{UserID: "dora"})
	if err != nil || len(ss) != 1 || ss[0].ID != reqSession2 {
		t.Errorf("sessions of user dora: got %v (%v), want %s", ss, err, reqSession2)
	}
	if err := s.SetSessionUser(ctx, reqSession2, ""); err == nil {
		t.Error("SetSessionUser with an empty user: got nil error")
	}
}

func testRequestsInvalid(t *testing.T, s RequestBackend) {
	mustAppend(t, s, Batch(reqSession, reqPage, 0, base, 5, 100, "", 0))
	good := req(reqSession, 0, "GET", "/", 500, 1)
	for _, bad := range []store.Request{
		{SessionID: reqSession, At: base, URL: "/"},                                                       // no method
		{SessionID: "", At: base, Method: "GET"},                                                          // no session
		{SessionID: reqSession, At: 0, Method: "GET"},                                                     // no time
		{SessionID: reqSession, At: base, Method: "GET", Status: -1},                                      // status
		{SessionID: reqSession, At: base, Method: "GET", DurationMS: -5},                                  // duration
		{SessionID: reqSession, At: base, Method: "GET", URL: strings.Repeat("x", store.MaxRequestURL+1)}, // url
	} {
		if err := s.AppendRequests(context.Background(), []store.Request{good, bad}); err == nil {
			t.Errorf("append %+v: got nil error", bad)
		}
	}
	if got := mustRequests(t, s, reqSession); len(got) != 0 {
		t.Errorf("got %d requests stored from invalid batches, want none", len(got))
	}
	if got := mustSession(t, s, reqSession); got.Signals.ServerError != 0 {
		t.Errorf("got %d server errors from invalid batches, want none", got.Signals.ServerError)
	}
	if err := s.AppendRequests(context.Background(), nil); err != nil {
		t.Errorf("append no requests: %v", err)
	}
}

func testRequestsNotFound(t *testing.T, s RequestBackend) {
	if _, err := s.Requests(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
}
