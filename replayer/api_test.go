package replayer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/replayer/replayertest"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

// apiBase is the first event time of the API tests' sessions, Unix ms.
var apiBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

// apiServer serves a real SQLite store holding three sessions:
//
//	old:  Chrome, 2 pages (/ then /cart), a dead click, a js error, tagged
//	mid:  Firefox, 1 page, a rage click
//	new:  Chrome, 1 page, nothing
func apiServer(t *testing.T) (*httptest.Server, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "loupe.db"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	batch := func(sid, pv string, first int64, url string, browser string) *store.Batch {
		b := storetest.Batch(sid, sid+pv, 0, apiBase+first, 11, 300, url, 0)
		b.Clicks = nil
		b.Client = store.Client{Browser: browser, Device: "desktop"}
		return b
	}
	o1 := batch("old", "1", 0, "https://shop.test/", "Chrome")
	o1.Clicks = []store.Click{{At: apiBase + 500, X: 10, Y: 20, NodeID: 4, Target: `button#buy "Buy"`}}
	o1.Errors = []store.JSError{{At: apiBase + 2000, Kind: "error", Message: "x is undefined"}}
	o2 := batch("old", "2", 4000, "https://shop.test/cart", "Chrome")
	m := batch("mid", "1", 60_000, "https://shop.test/", "Firefox")
	m.Clicks = []store.Click{{At: apiBase + 60_100, Mutated: true}, {At: apiBase + 60_200, Mutated: true}, {At: apiBase + 60_300, Mutated: true}}
	n := batch("new", "1", 120_000, "https://shop.test/about", "Chrome")
	for _, b := range []*store.Batch{o1, o2, m, n} {
		if err := db.AppendBatch(context.Background(), b); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	if _, err := db.SetTags(context.Background(), "old", []string{"bug"}); err != nil {
		t.Fatalf("tags: %v", err)
	}
	srv, err := replayer.New(replayer.Config{Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	replayertest.SignIn(t, hs.Client(), hs.URL, db, store.RoleAdmin)
	return hs, db
}

// call sends a request with the client signed in to the server u is on
// and decodes a JSON answer into out (if not nil).
func call(t *testing.T, method, u, body string, out any) (int, string) {
	t.Helper()
	return callAs(t, replayertest.ClientFor(u), method, u, body, out)
}

func callAs(t *testing.T, c *http.Client, method, u, body string, out any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, r)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

type listAnswer struct {
	Sessions []struct {
		ID       string         `json:"id"`
		Signals  map[string]int `json:"signals"`
		Friction float64        `json:"friction"`
		ExitURL  string         `json:"exit_url"`
		UserID   *string        `json:"user_id"`
		Browser  string         `json:"browser"`
		Tags     []string       `json:"tags"`
	} `json:"sessions"`
	Next *string `json:"next"`
}

func (l listAnswer) ids() string {
	var out []string
	for _, s := range l.Sessions {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

func TestAPIList(t *testing.T) {
	hs, _ := apiServer(t)
	for _, tt := range []struct{ query, want string }{
		{"", "new,mid,old"},
		{"browser=Chrome", "new,old"},
		{"signal=dead_click", "old"},
		{"signal=dead_click&signal=rage_click", ""},
		{"signal=js_error,dead_click", "old"},
		{"url=/cart", "old"},
		{"url=*/about", "new"},
		{"entry=https://shop.test/&exit=*/cart", "old"},
		{"tag=bug", "old"},
		{"min_pages=2", "old"},
		{"max_pages=1&sort=friction", "mid,new"},
		{"min_duration=3.5", "old"},
		{"from=" + url.QueryEscape(time.UnixMilli(apiBase+60_000).Format(time.RFC3339)), "new,mid"},
		{"to=" + itoa(apiBase+60_000), "old"},
		{"sort=friction", "mid,old,new"},
		{"sort=pages", "old,new,mid"},
		{"sort=duration", "old,new,mid"},
		{"unknown=ignored", "new,mid,old"},
	} {
		var got listAnswer
		if code, body := call(t, "GET", hs.URL+"/api/sessions?"+tt.query, "", &got); code != 200 {
			t.Errorf("%s: %d %s", tt.query, code, body)
			continue
		}
		if got.ids() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.query, got.ids(), tt.want)
		}
	}

	// Session objects carry the behaviour fields.
	var all listAnswer
	call(t, "GET", hs.URL+"/api/sessions?sort=friction", "", &all)
	old := all.Sessions[1]
	if old.ID != "old" || old.Signals["dead_click"] != 1 || old.Signals["js_error"] != 1 || old.Signals["rage_click"] != 0 ||
		len(old.Signals) != 6 || old.Friction != 2 || old.ExitURL != "https://shop.test/cart" || old.UserID == nil ||
		len(old.Tags) != 1 || old.Tags[0] != "bug" || all.Sessions[0].Tags == nil {
		t.Errorf("old as listed: %+v", old)
	}

	// Pages: next is a cursor until a page comes back short.
	var p1, p2, p3 listAnswer
	call(t, "GET", hs.URL+"/api/sessions?limit=2", "", &p1)
	if p1.ids() != "new,mid" || p1.Next == nil {
		t.Fatalf("page 1: %q next %v", p1.ids(), p1.Next)
	}
	call(t, "GET", hs.URL+"/api/sessions?limit=2&cursor="+*p1.Next, "", &p2)
	if p2.ids() != "old" || p2.Next != nil {
		t.Errorf("page 2: %q next %v", p2.ids(), p2.Next)
	}
	call(t, "GET", hs.URL+"/api/sessions?limit=1&offset=2", "", &p3)
	if p3.ids() != "old" {
		t.Errorf("offset: %q", p3.ids())
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestAPIListBadParams(t *testing.T) {
	hs, _ := apiServer(t)
	for _, tt := range []struct{ query, want string }{
		{"limit=abc", "limit:"},
		{"limit=5000", "limit:"},
		{"offset=-1", "offset:"},
		{"cursor=zz", "cursor:"},
		{"signal=nope", `unknown signal "nope"`},
		{"sort=random", "sort:"},
		{"from=yesterday", "from:"},
		{"to=-5", "to:"},
		{"min_duration=-1", "min_duration:"},
		{"max_duration=abc", "max_duration:"},
		{"min_pages=many", "min_pages: want an integer"},
		{"url=" + strings.Repeat("x", store.MaxFilterLen+1), "url:"},
	} {
		code, body := call(t, "GET", hs.URL+"/api/sessions?"+tt.query, "", nil)
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%.40s: %d %s, want 400 with %q", tt.query, code, body, tt.want)
		}
	}
}

func TestAPITimeline(t *testing.T) {
	hs, db := apiServer(t)
	// The proxy's log: a 500 from an API call 2.5 s in.
	if err := db.AppendRequests(context.Background(), []store.Request{
		{SessionID: "old", At: apiBase + 2500, Method: "POST", URL: "/api/cart", Status: 500, DurationMS: 42, Bytes: 10},
	}); err != nil {
		t.Fatalf("append requests: %v", err)
	}
	var tl []map[string]any
	if code, body := call(t, "GET", hs.URL+"/api/sessions/old/timeline", "", &tl); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got []string
	for _, e := range tl {
		got = append(got, e["kind"].(string)+"@"+itoa(int64(e["at_ms"].(float64))))
	}
	want := "page@0 click@500 dead_click@500 js_error@2000 request@2500 server_error@2500 page@4000"
	if strings.Join(got, " ") != want {
		t.Fatalf("timeline: %s\nwant      %s", strings.Join(got, " "), want)
	}
	click, dead, jsErr, req := tl[1], tl[2], tl[3], tl[4]
	if req["method"] != "POST" || req["url"] != "/api/cart" || req["status"] != 500.0 || req["duration_ms"] != 42.0 {
		t.Errorf("request entry: %v", req)
	}
	if !strings.Contains(tl[5]["message"].(string), "500") {
		t.Errorf("server error entry: %v", tl[5])
	}
	var reqs []map[string]any
	if code, body := call(t, "GET", hs.URL+"/api/sessions/old/requests", "", &reqs); code != 200 || len(reqs) != 1 || reqs[0]["at_ms"] != 2500.0 {
		t.Errorf("requests: %d %s", code, body)
	}
	if click["target"] != `button#buy "Buy"` || click["page"] != "https://shop.test/" || click["x"] != 10.0 {
		t.Errorf("click entry: %v", click)
	}
	if dead["target"] != `button#buy "Buy"` || dead["page"] != "https://shop.test/" {
		t.Errorf("dead click entry: %v", dead)
	}
	if jsErr["message"] != "x is undefined" {
		t.Errorf("js error entry: %v", jsErr)
	}
	if tl[6]["page"] != "https://shop.test/cart" {
		t.Errorf("page entry: %v", tl[6])
	}
	if code, _ := call(t, "GET", hs.URL+"/api/sessions/nope/timeline", "", nil); code != 404 {
		t.Errorf("unknown session: %d", code)
	}
	var empty []any
	if code, body := call(t, "GET", hs.URL+"/api/sessions/new/timeline", "", &empty); code != 200 || len(empty) != 1 {
		t.Errorf("quiet session: %d %s", code, body)
	}
}

func TestAPITagsAndNotes(t *testing.T) {
	hs, _ := apiServer(t)
	u := hs.URL + "/api/sessions/mid"
	var tags []string
	if code, body := call(t, "PUT", u+"/tags", `["vip"," slow ","vip"]`, &tags); code != 200 || strings.Join(tags, ",") != "slow,vip" {
		t.Fatalf("put tags: %d %s", code, body)
	}
	call(t, "GET", u+"/tags", "", &tags)
	if strings.Join(tags, ",") != "slow,vip" {
		t.Errorf("get tags: %v", tags)
	}
	var sess struct{ Tags []string }
	call(t, "GET", u, "", &sess)
	if strings.Join(sess.Tags, ",") != "slow,vip" {
		t.Errorf("session tags: %v", sess.Tags)
	}
	for _, bad := range []string{`"vip"`, `[""]`, `[1]`, `["` + strings.Repeat("x", 65) + `"]`, `not json`} {
		if code, body := call(t, "PUT", u+"/tags", bad, nil); code != 400 {
			t.Errorf("put tags %s: %d %s", bad, code, body)
		}
	}
	if code, _ := call(t, "PUT", hs.URL+"/api/sessions/nope/tags", `["x"]`, nil); code != 404 {
		t.Errorf("tags of unknown session: %d", code)
	}

	var n1, n2 struct {
		ID        int64  `json:"id"`
		AtMS      *int64 `json:"at_ms"`
		Text      string `json:"text"`
		CreatedAt string `json:"created_at"`
	}
	if code, body := call(t, "POST", u+"/notes", `{"text":"rage here","at_ms":1200}`, &n1); code != 201 || n1.ID == 0 || n1.AtMS == nil || *n1.AtMS != 1200 || n1.CreatedAt == "" {
		t.Fatalf("post note: %d %s", code, body)
	}
	if code, body := call(t, "POST", u+"/notes", `{"text":"overall"}`, &n2); code != 201 || n2.AtMS != nil {
		t.Fatalf("post note 2: %d %s", code, body)
	}
	for _, bad := range []string{`{}`, `{"text":""}`, `{"text":"x","at_ms":-1}`, `{"text":"` + strings.Repeat("x", store.MaxNoteLen+1) + `"}`, `[`} {
		if code, body := call(t, "POST", u+"/notes", bad, nil); code != 400 {
			t.Errorf("post note %.30s: %d %s", bad, code, body)
		}
	}
	var notes []map[string]any
	call(t, "GET", u+"/notes", "", &notes)
	if len(notes) != 2 || notes[0]["text"] != "rage here" || notes[1]["at_ms"] != nil {
		t.Errorf("notes: %v", notes)
	}
	if code, _ := call(t, "DELETE", u+"/notes/"+itoa(n1.ID), "", nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	for _, p := range []string{u + "/notes/" + itoa(n1.ID), u + "/notes/abc", hs.URL + "/api/sessions/old/notes/" + itoa(n2.ID)} {
		if code, _ := call(t, "DELETE", p, "", nil); code != 404 {
			t.Errorf("delete %s: %d, want 404", p, code)
		}
	}
	call(t, "GET", u+"/notes", "", &notes)
	if len(notes) != 1 {
		t.Errorf("after delete: %v", notes)
	}
	if code, _ := call(t, "GET", hs.URL+"/api/sessions/nope/notes", "", nil); code != 404 {
		t.Errorf("notes of unknown session: %d", code)
	}
}

// TestNoteAuthors: a note names its author; an editor deletes its own
// notes only, an admin anyone's.
func TestNoteAuthors(t *testing.T) {
	hs, db := apiServer(t) // signed in as test-admin
	editor := replayertest.Client(t, hs.URL, db, store.RoleEditor)
	notes := hs.URL + "/api/sessions/old/notes"
	var mine, admins struct {
		ID     int64  `json:"id"`
		Author string `json:"author"`
	}
	if code, body := callAs(t, editor, "POST", notes, `{"text":"mine"}`, &mine); code != 201 || mine.Author != "test-editor" {
		t.Fatalf("editor's note: %d %s", code, body)
	}
	if code, body := call(t, "POST", notes, `{"text":"the admin's"}`, &admins); code != 201 || admins.Author != "test-admin" {
		t.Fatalf("admin's note: %d %s", code, body)
	}
	var list []struct{ Author string }
	if call(t, "GET", notes, "", &list); len(list) != 2 || list[0].Author != "test-editor" || list[1].Author != "test-admin" {
		t.Errorf("notes list authors %+v", list)
	}
	if code, _ := callAs(t, editor, "DELETE", fmt.Sprintf("%s/%d", notes, admins.ID), "", nil); code != 403 {
		t.Errorf("editor deletes the admin's note: %d, want 403", code)
	}
	if code, _ := callAs(t, editor, "DELETE", notes+"/999", "", nil); code != 404 {
		t.Errorf("editor deletes a missing note: %d, want 404", code)
	}
	if code, _ := callAs(t, editor, "DELETE", fmt.Sprintf("%s/%d", notes, mine.ID), "", nil); code != 204 {
		t.Errorf("editor deletes its note: %d, want 204", code)
	}
	if code, _ := call(t, "DELETE", fmt.Sprintf("%s/%d", notes, admins.ID), "", nil); code != 204 {
		t.Errorf("admin deletes its note: %d, want 204", code)
	}
}

// TestUsersAPI: an admin manages users; the last admin stays one.
func TestUsersAPI(t *testing.T) {
	hs, db := apiServer(t) // signed in as test-admin, the only admin
	users := hs.URL + "/api/users"
	for _, tt := range []struct {
		method, url, body string
		want              int
	}{
		{"POST", users, `{"name":"vic","role":"viewer","password":"vic's password"}`, 201},
		{"POST", users, `{"name":"vic","role":"viewer","password":"vic's password"}`, 409},
		{"POST", users, `{"name":"Vic","role":"viewer","password":"vic's password"}`, 400},
		{"POST", users, `{"name":"val","role":"owner","password":"val's password"}`, 400},
		{"POST", users, `{"name":"val","role":"viewer","password":"short"}`, 400},
		{"POST", users, `{"name":"val","role":"viewer"}`, 400},
		{"PATCH", users + "/test-admin", `{"role":"editor"}`, 409},
		{"DELETE", users + "/test-admin", ``, 409},
		{"PATCH", users + "/nobody", `{"role":"editor"}`, 404},
		{"DELETE", users + "/nobody", ``, 404},
		{"PATCH", users + "/vic", `{"role":"admin"}`, 200},
		{"PATCH", users + "/test-admin", `{"role":"editor"}`, 200}, // vic is an admin now
	} {
		if code, body := call(t, tt.method, tt.url, tt.body, nil); code != tt.want {
			t.Errorf("%s %s %s: %d %s, want %d", tt.method, tt.url, tt.body, code, body, tt.want)
		}
	}
	u, err := db.User(context.Background(), "vic")
	if err != nil || u.Role != store.RoleAdmin || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("vic's password")) != nil {
		t.Errorf("vic as stored: %+v, %v; want an admin with the password given", u, err)
	}
	// The list shows no password hash, and test-admin is an editor now,
	// which may not list users any more.
	code, body := call(t, "GET", users, "", nil)
	if code != 403 {
		t.Errorf("GET /api/users as an editor: %d, want 403", code)
	}
	vic := &http.Client{}
	vic.Jar, _ = cookiejar.New(nil)
	resp, err := vic.PostForm(hs.URL+"/login", url.Values{"name": {"vic"}, "password": {"vic's password"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("vic signs in: %v %v", resp, err)
	}
	resp.Body.Close()
	var list []map[string]any
	if code, body = callAs(t, vic, "GET", users, "", &list); code != 200 || strings.Contains(body, "$2") || len(list) != 2 {
		t.Errorf("GET /api/users as vic: %d %s; want two users and no hashes", code, body)
	}
	if code, _ := callAs(t, vic, "DELETE", users+"/test-admin", "", nil); code != 204 {
		t.Errorf("delete test-admin: %d", code)
	}
	if _, err := db.User(context.Background(), "test-admin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("test-admin after delete: %v", err)
	}
	if code, _ := call(t, "GET", hs.URL+"/api/me", "", nil); code != 401 {
		t.Errorf("the deleted user's login: %d, want 401 at once", code)
	}
}

// TestChangeOwnPassword: a user changes its password with the old one; the
// login goes on under a new cookie, and its other logins end.
func TestChangeOwnPassword(t *testing.T) {
	hs, db := apiServer(t)
	me := replayertest.Client(t, hs.URL, db, store.RoleViewer)
	other := replayertest.Client(t, hs.URL, db, store.RoleViewer) // the same user, another browser
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"old":"wrong","new":"a brand new password"}`, 403},
		{`{"old":"password of a test user","new":"short"}`, 400},
		{`{"old":"password of a test user"}`, 400},
		{`not json`, 400},
		{`{"old":"password of a test user","new":"a brand new password"}`, 204},
	} {
		if code, body := callAs(t, me, "PUT", hs.URL+"/api/me/password", tt.body, nil); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.body, code, body, tt.want)
		}
	}
	if code, _ := callAs(t, me, "GET", hs.URL+"/api/me", "", nil); code != 200 {
		t.Errorf("after the change, the same browser: %d, want 200 (a new cookie)", code)
	}
	if code, _ := callAs(t, other, "GET", hs.URL+"/api/me", "", nil); code != 401 {
		t.Errorf("after the change, the other browser: %d, want 401", code)
	}
	u, err := db.User(context.Background(), "test-viewer")
	if err != nil || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("a brand new password")) != nil {
		t.Errorf("stored password is not the new one (%v)", err)
	}
}
