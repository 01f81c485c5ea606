package collector

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func mustTokens(tb testing.TB, now *time.Time) *Tokens {
	tb.Helper()
	tk, err := NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		tb.Fatal(err)
	}
	tk.Now = func() time.Time { return *now }
	return tk
}

func TestNewTokensShortSecret(t *testing.T) {
	if _, err := NewTokens([]byte("short")); err == nil {
		t.Fatal("got nil error for a 5-byte secret, want one")
	}
}

func TestSessionCookie(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	tk.MaxSessionLength = 2 * time.Hour
	sess := tk.NewSession()
	v := tk.SessionCookie(sess)
	// A session that started 90 minutes ago, renewed now.
	old := Session{ID: sess.ID, Start: now.Add(-90 * time.Minute)}
	vOld := tk.SessionCookie(old)

	tests := []struct {
		name    string
		value   string
		advance time.Duration
		want    Session
		wantErr bool
	}{
		{name: "fresh", value: v, want: sess},
		{name: "within idle timeout", value: v, advance: IdleTimeout - time.Second, want: sess},
		{name: "idle too long", value: v, advance: IdleTimeout + time.Second, wantErr: true},
		{name: "old session still within length", value: vOld, advance: 29 * time.Minute, want: old},
		{name: "session over max length", value: vOld, advance: 31 * time.Minute, wantErr: true},
		{name: "tampered id", value: NewID() + v[32:], wantErr: true},
		{name: "tampered start", value: strings.Replace(vOld, ".1699", ".1700", 1), wantErr: true},
		{name: "tampered seen", value: strings.Replace(v, ".1700000000.", ".1700009999.", 1), wantErr: true},
		{name: "legacy three-part cookie", value: func() string {
			payload := sess.ID + ".1700000000"
			return payload + "." + tk.sign("session", payload)
		}(), wantErr: true},
		{name: "other key", value: func() string {
			other, _ := NewTokens([]byte(strings.Repeat("x", 32)))
			other.Now = tk.Now
			return other.SessionCookie(sess)
		}(), wantErr: true},
		{name: "empty", value: "", wantErr: true},
		{name: "garbage", value: "a.b.c.d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = now.Add(tt.advance)
			defer func() { now = saved }()
			got, err := tk.ParseSessionCookie(tt.value)
			if tt.wantErr {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("got (%+v, %v), want ErrBadToken", got, err)
				}
				return
			}
			if err != nil || got.ID != tt.want.ID || !got.Start.Equal(tt.want.Start) {
				t.Fatalf("got (%+v, %v), want (%+v, nil)", got, err, tt.want)
			}
		})
	}
}

func TestPageViewToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	sess := Session{ID: NewID(), Start: now.Add(-3 * time.Hour)}
	pv := NewID()
	tok := tk.PageViewToken(sess, pv)

	got, err := tk.ParsePageViewToken(tok)
	want := PageView{SessionID: sess.ID, ID: pv, SessionStart: sess.Start, Issued: now}
	if err != nil || got != want {
		t.Fatalf("got (%+v, %v), want (%+v, nil)", got, err, want)
	}

	// Flip each character of the payload: every change must be caught,
	// the session start (last 8 bytes) included.
	for i := 0; i < strings.IndexByte(tok, '.'); i++ {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, err := tk.ParsePageViewToken(string(b)); err == nil {
			t.Fatalf("tampered token (byte %d) verified", i)
		}
	}

	now = now.Add(TokenTTL + time.Minute)
	if _, err := tk.ParsePageViewToken(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: got %v, want ErrBadToken", err)
	}
}

func TestLegacyPageViewToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	sid, pv := NewID(), NewID()
	// The token a node of the previous release minted: no session start.
	raw, _ := hexBytes(sid + pv)
	raw = binary.BigEndian.AppendUint64(raw, uint64(now.Unix()-60))
	payload := base64.RawURLEncoding.EncodeToString(raw)
	tok := payload + "." + tk.sign("pageview", payload)

	got, err := tk.ParsePageViewToken(tok)
	if err != nil || got.SessionID != sid || got.ID != pv || !got.SessionStart.Equal(now.Add(-time.Minute)) {
		t.Fatalf("got (%+v, %v), want session %s, page view %s, start = issue time", got, err, sid, pv)
	}
}

func hexBytes(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b, nil
}

func TestCookieIsNotAPageViewToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	if _, err := tk.ParsePageViewToken(tk.SessionCookie(tk.NewSession())); err == nil {
		t.Fatal("a session cookie verified as a page-view token")
	}
}

func TestHashIP(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	other, _ := NewTokens([]byte(strings.Repeat("x", 32)))
	a := netip.MustParseAddr("203.0.113.7")
	h := tk.HashIP(a)
	if len(h) != 32 {
		t.Fatalf("got hash %q, want 32 hex digits", h)
	}
	if got := tk.HashIP(netip.MustParseAddr("203.0.113.7")); got != h {
		t.Errorf("hash not stable: got %q then %q", h, got)
	}
	if got := tk.HashIP(netip.MustParseAddr("::ffff:203.0.113.7")); got != h {
		t.Errorf("IPv4-mapped address hashed to %q, want %q", got, h)
	}
	if got := tk.HashIP(netip.MustParseAddr("203.0.113.8")); got == h {
		t.Error("two addresses share a hash")
	}
	if got := other.HashIP(a); got == h {
		t.Error("hash does not depend on the secret")
	}
	if strings.Contains(h, "cb00") || strings.Contains(string(tk.ipKey), strings.Repeat("k", 32)) {
		t.Error("hash key is the raw secret or the hash shows the address")
	}
}
