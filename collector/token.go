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
	"strconv"
	"strings"
	"time"
)

// Session identity comes from the proxy, not from browser storage. Two
// signed values carry it, both minted with one shared secret so that any
// proxy or collector node holding the secret can verify them without shared
// memory:
//
//   - the session cookie, HttpOnly and first-party, holding the session id and
//     the time the visitor was last seen; the proxy renews it on every page and
//     starts a new session after IdleTimeout of silence;
//   - the page-view token, written into each HTML page's recorder tag, binding
//     one page view to its session. Every ingest batch carries it, so the
//     collector accepts a batch only for the session its token proves, and a
//     token can never write into another session.

// IdleTimeout is how long a session survives without a page load.
const IdleTimeout = 30 * time.Minute

// TokenTTL bounds how long after its page was served a page-view token is
// accepted: a tab left open records for at most this long.
const TokenTTL = 24 * time.Hour

// ErrBadToken is returned for a token or cookie that does not verify.
var ErrBadToken = errors.New("invalid token")

// Tokens mints and verifies session cookies and page-view tokens.
type Tokens struct {
	key []byte
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// NewTokens returns Tokens keyed by secret, which must be at least 32 bytes.
func NewTokens(secret []byte) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("secret is %d bytes, want at least 32", len(secret))
	}
	return &Tokens{key: append([]byte(nil), secret...)}, nil
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// NewID returns a random 128-bit identifier as 32 hex digits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand.Read panics on its own if it cannot)
	return hex.EncodeToString(b[:])
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

// SessionCookie returns the cookie value for session sid seen now:
// "<sid>.<unix seconds>.<mac>".
func (t *Tokens) SessionCookie(sid string) string {
	payload := sid + "." + strconv.FormatInt(t.now().Unix(), 10)
	return payload + "." + t.sign("session", payload)
}

// ParseSessionCookie returns the session id of a cookie value if it verifies
// and the session has not been idle for longer than IdleTimeout.
func (t *Tokens) ParseSessionCookie(v string) (sid string, err error) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", ErrBadToken
	}
	payload, mac := v[:i], v[i+1:]
	if !t.verify("session", payload, mac) {
		return "", ErrBadToken
	}
	sid, secs, ok := strings.Cut(payload, ".")
	seen, err := strconv.ParseInt(secs, 10, 64)
	if !ok || err != nil || !validID(sid) {
		return "", ErrBadToken
	}
	if t.now().Sub(time.Unix(seen, 0)) > IdleTimeout {
		return "", fmt.Errorf("session idle: %w", ErrBadToken)
	}
	return sid, nil
}

// PageViewToken returns the token for page view pv of session sid, issued
// now. Its form is base64url(sid ‖ pv ‖ issued) "." mac.
func (t *Tokens) PageViewToken(sid, pv string) string {
	raw := make([]byte, 0, 40)
	s, _ := hex.DecodeString(sid)
	p, _ := hex.DecodeString(pv)
	raw = append(raw, s...)
	raw = append(raw, p...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(t.now().Unix()))
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + t.sign("pageview", payload)
}

// ParsePageViewToken returns the session and page view a token proves.
func (t *Tokens) ParsePageViewToken(tok string) (sid, pv string, err error) {
	payload, mac, ok := strings.Cut(tok, ".")
	if !ok || !t.verify("pageview", payload, mac) {
		return "", "", ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || len(raw) != 40 {
		return "", "", ErrBadToken
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[32:])), 0)
	if age := t.now().Sub(issued); age > TokenTTL || age < -time.Minute {
		return "", "", fmt.Errorf("token expired: %w", ErrBadToken)
	}
	return hex.EncodeToString(raw[:16]), hex.EncodeToString(raw[16:32]), nil
}
