package collector

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Session identity comes from the proxy, not from browser storage. Two
// signed values carry it, both minted with one shared secret so that any
// proxy or collector node holding the secret can verify them without shared
// memory:
//
//   - the session cookie, HttpOnly and first-party, holding the session id,
//     the time the session started and the time the visitor was last seen;
//     the proxy renews it on every page and starts a new session after
//     IdleTimeout of silence or once the session is older than
//     MaxSessionLength;
//   - the page-view token, written into each HTML page's recorder tag,
//     binding one page view to its session and carrying the session's start.
//     Every ingest batch carries it, so the collector accepts a batch only
//     for the session its token proves (a token can never write into another
//     session) and can enforce the maximum session length without asking
//     the store.

// IdleTimeout is how long a session survives without a page load.
const IdleTimeout = 30 * time.Minute

// TokenTTL bounds how long after its page was served a page-view token is
// accepted: a tab left open records for at most this long.
const TokenTTL = 24 * time.Hour

// DefaultMaxSessionLength is the default for Tokens.MaxSessionLength and
// Limits.MaxSessionLength.
const DefaultMaxSessionLength = 12 * time.Hour

// ErrBadToken is returned for a token or cookie that does not verify, has
// expired, or (for a cookie) belongs to a session that is over.
var ErrBadToken = errors.New("invalid token")

// Tokens mints and verifies session cookies and page-view tokens.
type Tokens struct {
	key   []byte // signs cookies and tokens
	ipKey []byte // keys HashIP; derived from the secret, never the secret

	// MaxSessionLength is the age after which ParseSessionCookie refuses a
	// session, so that the proxy starts a new one. It should equal the
	// collector's Limits.MaxSessionLength. If zero, DefaultMaxSessionLength.
	MaxSessionLength time.Duration
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Session is what a session cookie proves.
type Session struct {
	ID    string    // 32 hex digits
	Start time.Time // when the proxy started the session, whole seconds
}

// PageView is what a page-view token proves.
type PageView struct {
	SessionID    string
	ID           string    // page-view id the proxy minted for the page
	SessionStart time.Time // start of the session, whole seconds
	Issued       time.Time // when the page was served, whole seconds
}

// NewTokens returns Tokens keyed by secret, which must be at least 32 bytes.
func NewTokens(secret []byte) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("secret is %d bytes, want at least 32", len(secret))
	}
	// A separate key for IP hashes, so that the hashes (which the store
	// keeps and an operator may export) reveal nothing about the signing key.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("loupe client-ip hash key v1"))
	return &Tokens{key: append([]byte(nil), secret...), ipKey: m.Sum(nil)}, nil
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tokens) maxSessionLength() time.Duration {
	if t.MaxSessionLength > 0 {
		return t.MaxSessionLength
	}
	return DefaultMaxSessionLength
}

// NewID returns a random 128-bit identifier as 32 hex digits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand.Read panics on its own if it cannot)
	return hex.EncodeToString(b[:])
}

// NewSession returns a new session starting now.
func (t *Tokens) NewSession() Session {
	return Session{ID: NewID(), Start: time.Unix(t.now().Unix(), 0)}
}

// validID reports whether s looks like an id from NewID: 32 lowercase hex
// digits.
func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// HashIP returns a keyed hash of ip: the hex of the first 16 bytes of
// HMAC-SHA256(k, ip), where k is derived from the secret. It is stable for
// one secret, so visits from one address can be grouped, and cannot be
// reversed by enumerating addresses without the secret. IPv4-mapped IPv6
// addresses hash as their IPv4 form.
func (t *Tokens) HashIP(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	b := ip.Unmap().As16()
	m := hmac.New(sha256.New, t.ipKey)
	m.Write(b[:])
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// sign returns the truncated HMAC-SHA256 of the domain-separated payload.
func (t *Tokens) sign(domain, payload string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (t *Tokens) verify(domain, payload, mac string) bool {
	return hmac.Equal([]byte(t.sign(domain, payload)), []byte(mac))
}

// SessionCookie returns the cookie value for session s seen now:
// "<sid>.<start unix seconds>.<seen unix seconds>.<mac>".
func (t *Tokens) SessionCookie(s Session) string {
	payload := s.ID + "." + strconv.FormatInt(s.Start.Unix(), 10) + "." + strconv.FormatInt(t.now().Unix(), 10)
	return payload + "." + t.sign("session2", payload)
}

// ParseSessionCookie returns the session a cookie value proves if it
// verifies, the session has not been idle for longer than IdleTimeout and it
// started no more than MaxSessionLength ago. Cookies of the earlier
// three-part form no longer verify: their visitor starts a new session.
func (t *Tokens) ParseSessionCookie(v string) (Session, error) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return Session{}, ErrBadToken
	}
	payload, mac := v[:i], v[i+1:]
	if !t.verify("session2", payload, mac) {
		return Session{}, ErrBadToken
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || !validID(parts[0]) {
		return Session{}, ErrBadToken
	}
	start, err1 := strconv.ParseInt(parts[1], 10, 64)
	seen, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Session{}, ErrBadToken
	}
	now := t.now()
	if now.Sub(time.Unix(seen, 0)) > IdleTimeout {
		return Session{}, fmt.Errorf("session idle: %w", ErrBadToken)
	}
	if now.Sub(time.Unix(start, 0)) > t.maxSessionLength() {
		return Session{}, fmt.Errorf("session over %v: %w", t.maxSessionLength(), ErrBadToken)
	}
	return Session{ID: parts[0], Start: time.Unix(start, 0)}, nil
}

// Page-view token payload lengths: the current form, and the form before
// the session start was added (still accepted so that pages served by a
// node of the previous release keep recording during a rolling upgrade).
const (
	tokenLen       = 16 + 16 + 8 + 8 // sid, pv, issued, session start
	legacyTokenLen = 16 + 16 + 8     // sid, pv, issued
)

// PageViewToken returns the token for page view pv of session s, issued
// now. Its form is base64url(sid ‖ pv ‖ issued ‖ start) "." mac, times as
// big-endian Unix seconds.
func (t *Tokens) PageViewToken(s Session, pv string) string {
	raw := make([]byte, 0, tokenLen)
	sb, _ := hex.DecodeString(s.ID)
	pb, _ := hex.DecodeString(pv)
	raw = append(raw, sb...)
	raw = append(raw, pb...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(t.now().Unix()))
	raw = binary.BigEndian.AppendUint64(raw, uint64(s.Start.Unix()))
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + t.sign("pageview", payload)
}

// ParsePageViewToken returns the page view a token proves. A token of the
// legacy form without a session start reports its issue time as the start.
func (t *Tokens) ParsePageViewToken(tok string) (PageView, error) {
	payload, mac, ok := strings.Cut(tok, ".")
	if !ok || !t.verify("pageview", payload, mac) {
		return PageView{}, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || (len(raw) != tokenLen && len(raw) != legacyTokenLen) {
		return PageView{}, ErrBadToken
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[32:40])), 0)
	start := issued
	if len(raw) == tokenLen {
		start = time.Unix(int64(binary.BigEndian.Uint64(raw[40:48])), 0)
	}
	if age := t.now().Sub(issued); age > TokenTTL || age < -time.Minute {
		return PageView{}, fmt.Errorf("token expired: %w", ErrBadToken)
	}
	if start.After(issued) {
		return PageView{}, ErrBadToken // never minted so
	}
	return PageView{
		SessionID:    hex.EncodeToString(raw[:16]),
		ID:           hex.EncodeToString(raw[16:32]),
		SessionStart: start,
		Issued:       issued,
	}, nil
}
