package collector

import (
	"errors"
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
	sid := NewID()
	v := tk.SessionCookie(sid)

	tests := []struct {
		name    string
		value   string
		advance time.Duration
		wantErr bool
	}{
		{name: "fresh", value: v},
		{name: "within idle timeout", value: v, advance: IdleTimeout - time.Second},
		{name: "idle too long", value: v, advance: IdleTimeout + time.Second, wantErr: true},
		{name: "tampered id", value: NewID() + v[32:], wantErr: true},
		{name: "tampered time", value: strings.Replace(v, ".17", ".18", 1), wantErr: true},
		{name: "other key", value: func() string {
			other, _ := NewTokens([]byte(strings.Repeat("x", 32)))
			other.Now = tk.Now
			return other.SessionCookie(sid)
		}(), wantErr: true},
		{name: "empty", value: "", wantErr: true},
		{name: "garbage", value: "a.b.c", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = now.Add(tt.advance)
			defer func() { now = saved }()
			got, err := tk.ParseSessionCookie(tt.value)
			if tt.wantErr {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("got (%q, %v), want ErrBadToken", got, err)
				}
				return
			}
			if err != nil || got != sid {
				t.Fatalf("got (%q, %v), want (%q, nil)", got, err, sid)
			}
		})
	}
}

func TestPageViewToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	sid, pv := NewID(), NewID()
	tok := tk.PageViewToken(sid, pv)

	gotSID, gotPV, err := tk.ParsePageViewToken(tok)
	if err != nil || gotSID != sid || gotPV != pv {
		t.Fatalf("got (%q, %q, %v), want (%q, %q, nil)", gotSID, gotPV, err, sid, pv)
	}

	// Flip each character of the payload: every change must be caught.
	for i := 0; i < strings.IndexByte(tok, '.'); i++ {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if _, _, err := tk.ParsePageViewToken(string(b)); err == nil {
			t.Fatalf("tampered token (byte %d) verified", i)
		}
	}

	now = now.Add(TokenTTL + time.Minute)
	if _, _, err := tk.ParsePageViewToken(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: got %v, want ErrBadToken", err)
	}
}

func TestCookieIsNotAPageViewToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tk := mustTokens(t, &now)
	if _, _, err := tk.ParsePageViewToken(tk.SessionCookie(NewID())); err == nil {
		t.Fatal("a session cookie verified as a page-view token")
	}
}
