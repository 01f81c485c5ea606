package collector

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParseUserRules(t *testing.T) {
	tests := []struct {
		name    string
		specs   []string
		want    []string // rules as String gives them
		wantErr bool
	}{
		{name: "each kind", specs: []string{"cookie:uid", "header:x-user-email", "jwt:session_token:email", "dom:#account .email"},
			want: []string{"cookie:uid", "header:X-User-Email", "jwt:session_token:email", "dom:#account .email"}},
		{name: "comma-separated", specs: []string{"cookie:uid, header:X-User , jwt:t:user.email"},
			want: []string{"cookie:uid", "header:X-User", "jwt:t:user.email"}},
		{name: "dom keeps its commas", specs: []string{"cookie:uid,dom:.a, .b"}, want: []string{"cookie:uid", "dom:.a, .b"}},
		{name: "empty", specs: []string{"", " , "}, want: []string{}},
		{name: "unknown kind", specs: []string{"query:user"}, wantErr: true},
		{name: "no kind", specs: []string{"uid"}, wantErr: true},
		{name: "empty name", specs: []string{"cookie:"}, wantErr: true},
		{name: "bad cookie name", specs: []string{"cookie:a b"}, wantErr: true},
		{name: "jwt without claim", specs: []string{"jwt:token"}, wantErr: true},
		{name: "jwt empty claim", specs: []string{"jwt:token:"}, wantErr: true},
		{name: "dom without selector", specs: []string{"dom: "}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUserRules(tt.specs...)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Strings(); !reflect.DeepEqual(s, tt.want) {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
	rules, _ := ParseUserRules("dom:#a", "cookie:x", "dom:.b .c")
	if got := rules.DOMSelector(); got != "#a, .b .c" {
		t.Errorf("DOMSelector: got %q", got)
	}
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + ".c2lnbmF0dXJl"
}

func TestUserFromRequest(t *testing.T) {
	tests := []struct {
		name    string
		rules   string
		cookies map[string]string
		header  map[string]string
		want    string
	}{
		{name: "cookie", rules: "cookie:uid", cookies: map[string]string{"uid": "u-42"}, want: "u-42"},
		{name: "cookie url-encoded", rules: "cookie:email", cookies: map[string]string{"email": "ada%40example.test"}, want: "ada@example.test"},
		{name: "cookie absent", rules: "cookie:uid", cookies: map[string]string{"other": "x"}, want: ""},
		{name: "header", rules: "header:X-User-Email", header: map[string]string{"X-User-Email": " bob@example.test "}, want: "bob@example.test"},
		{name: "jwt string claim", rules: "jwt:session_token:email", cookies: map[string]string{"session_token": jwt(`{"sub":"1","email":"carol@example.test"}`)}, want: "carol@example.test"},
		{name: "jwt number claim", rules: "jwt:t:sub", cookies: map[string]string{"t": jwt(`{"sub":12345678901234567890}`)}, want: "12345678901234567890"},
		{name: "jwt nested claim", rules: "jwt:t:user.email", cookies: map[string]string{"t": jwt(`{"user":{"email":"dan@example.test"}}`)}, want: "dan@example.test"},
		{name: "jwt padded payload", rules: "jwt:t:sub", cookies: map[string]string{"t": strings.Replace(jwt(`{"sub":"pad"}`), ".c2ln", "==.c2ln", 1)}, want: "pad"},
		{name: "jwt missing claim", rules: "jwt:t:email", cookies: map[string]string{"t": jwt(`{"sub":"1"}`)}, want: ""},
		{name: "jwt object claim", rules: "jwt:t:user", cookies: map[string]string{"t": jwt(`{"user":{"a":1}}`)}, want: ""},
		{name: "jwt two parts", rules: "jwt:t:sub", cookies: map[string]string{"t": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0"}, want: ""},
		{name: "jwt bad base64", rules: "jwt:t:sub", cookies: map[string]string{"t": "a.!!!.c"}, want: ""},
		{name: "jwt payload not json", rules: "jwt:t:sub", cookies: map[string]string{"t": jwt(`not json`)}, want: ""},
		{name: "jwt payload an array", rules: "jwt:t:sub", cookies: map[string]string{"t": jwt(`["sub"]`)}, want: ""},
		{name: "jwt empty", rules: "jwt:t:sub", cookies: map[string]string{"t": ".."}, want: ""},
		{name: "jwt nested through a string", rules: "jwt:t:sub.x", cookies: map[string]string{"t": jwt(`{"sub":"s"}`)}, want: ""},
		{name: "first non-empty wins", rules: "cookie:uid,header:X-User,cookie:email",
			cookies: map[string]string{"email": "e@example.test"}, header: map[string]string{"X-User": "from-header"}, want: "from-header"},
		{name: "falls through a malformed jwt", rules: "jwt:t:sub,cookie:uid",
			cookies: map[string]string{"t": "garbage", "uid": "u1"}, want: "u1"},
		{name: "dom rules ignored", rules: "dom:#user", cookies: map[string]string{"uid": "u1"}, want: ""},
		{name: "control characters dropped", rules: "header:X-User", header: map[string]string{"X-User": "a\tb"}, want: "ab"},
		{name: "cut to MaxUserID", rules: "header:X-User", header: map[string]string{"X-User": strings.Repeat("é", 150)}, want: strings.Repeat("é", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParseUserRules(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := rules.FromRequest(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzJWTClaim(f *testing.F) {
	f.Add(jwt(`{"email":"a@b"}`), "email")
	f.Add("a.b.c", "x.y")
	f.Add("..", "")
	f.Fuzz(func(t *testing.T, tok, claim string) {
		jwtClaim(tok, claim) // must not panic
	})
}

// userStore is a memStore that also records user ids.
type userStore struct {
	memStore
	users map[string]string
	err   error
}

func (u *userStore) SetSessionUser(_ context.Context, sid, user string) error {
	if u.err != nil {
		return u.err
	}
	if u.users == nil {
		u.users = map[string]string{}
	}
	if u.users[sid] == "" {
		u.users[sid] = user
	}
	return nil
}

// TestIngestUserEvent: the recorder's "loupe/user" event names the
// session's user; the batch is stored whatever becomes of it.
func TestIngestUserEvent(t *testing.T) {
	f := newFixture(t)
	us := &userStore{}
	f.c.Store = us
	events := `[
 {"type":4,"data":{"href":"http://shop.test/","width":1280,"height":720},"timestamp":1700000000000},
 {"type":5,"data":{"tag":"loupe/user","payload":{"user":"  ada@example.test\n"}},"timestamp":1700000000100},
 {"type":5,"data":{"tag":"loupe/user","payload":{"user":"second"}},"timestamp":1700000000200}
]`
	if w := post(f.c, []byte(batchJSON(f.token, 0, events)), nil); w.Code != http.StatusNoContent {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if got := us.users[f.sid]; got != "ada@example.test" {
		t.Errorf("got user %q, want ada@example.test", got)
	}
	if len(us.batches) != 1 || us.batches[0].EventCount != 3 {
		t.Errorf("got %d batches, want the batch stored with its 3 events", len(us.batches))
	}

	// Payloads that name nobody are ignored.
	f2 := newFixture(t)
	us2 := &userStore{}
	f2.c.Store = us2
	events = `[
 {"type":5,"data":{"tag":"loupe/user","payload":{"user":"   "}},"timestamp":1700000000100},
 {"type":5,"data":{"tag":"loupe/user","payload":{"user":42}},"timestamp":1700000000200},
 {"type":5,"data":{"tag":"loupe/user","payload":"x"},"timestamp":1700000000300}
]`
	if w := post(f2.c, []byte(batchJSON(f2.token, 0, events)), nil); w.Code != http.StatusNoContent {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if len(us2.users) != 0 {
		t.Errorf("got users %v, want none", us2.users)
	}

	// A store that fails to set it still acknowledges the batch.
	f3 := newFixture(t)
	f3.c.Store = &userStore{err: errors.New("down")}
	events = `[{"type":5,"data":{"tag":"loupe/user","payload":{"user":"x"}},"timestamp":1700000000100}]`
	if w := post(f3.c, []byte(batchJSON(f3.token, 0, events)), nil); w.Code != http.StatusNoContent {
		t.Fatalf("got %d %s, want 204", w.Code, w.Body)
	}
}
