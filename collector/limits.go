package collector

import (
	"net/netip"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Default limits; see Limits.
const (
	DefaultMaxBodyBytes  = 16 << 20 // request body as sent
	DefaultMaxBatchBytes = 16 << 20 // request body after decompression
	DefaultMaxEventBytes = 4 << 20  // one event; the recorder splits above 1 MiB

	DefaultSessionRate  = 10 // batches per second per session
	DefaultSessionBurst = 40
	DefaultClientRate   = 50 // requests per second per client address
	DefaultClientBurst  = 200
	DefaultLimiterKeys  = 50_000 // sessions and addresses remembered per limiter

	DefaultMaxBackstep   = 5 * time.Second
	DefaultMaxFutureSkew = 24 * time.Hour
)

// Limits bounds what one request, session or client may send. Every zero
// field means its default.
//
// Rate limits are per collector node: each node keeps its own token
// buckets in memory, so behind a load balancer that spreads one visitor
// over n nodes the effective limit is up to n times the configured one.
// Each limiter remembers at most LimiterKeys sessions or addresses, the
// least recently seen forgotten first (a forgotten key starts again with a
// full bucket), so memory stays bounded however many keys arrive.
type Limits struct {
	// MaxBodyBytes bounds the request body as sent (compressed or not).
	// Default DefaultMaxBodyBytes (16 MiB).
	MaxBodyBytes int64
	// MaxBatchBytes bounds the body after decompression. Default
	// DefaultMaxBatchBytes (16 MiB).
	MaxBatchBytes int64
	// MaxEventBytes bounds one event's JSON. Default DefaultMaxEventBytes
	// (4 MiB).
	MaxEventBytes int64

	// SessionRate and SessionBurst are the token bucket of each session, in
	// batches per second. Defaults 10/s, burst 40. rate.Inf or a negative
	// rate disables it.
	SessionRate  rate.Limit
	SessionBurst int
	// ClientRate and ClientBurst are the token bucket of each client
	// address (an IPv6 client's /64), in requests per second. Defaults 50/s,
	// burst 200. rate.Inf or a negative rate disables it.
	ClientRate  rate.Limit
	ClientBurst int
	// LimiterKeys is how many sessions, and separately how many client
	// addresses, the rate limiters remember. Default 50,000 each: about
	// 23 MB for both when full (measured: 45 MB at 100,000 each).
	LimiterKeys int

	// MaxSessionLength is how long after its start (carried in the signed
	// token) a session may still send batches; later batches get 403. It
	// should equal the proxy's Tokens.MaxSessionLength. Default
	// DefaultMaxSessionLength (12 h).
	MaxSessionLength time.Duration
	// MaxBackstep is how far an event's timestamp may precede the latest
	// earlier one in its batch (rrweb emits in order, with a little skew
	// between its timers). Default 5 s.
	MaxBackstep time.Duration
	// MaxFutureSkew is how far ahead of the server's clock an event's
	// timestamp may be. Default 24 h.
	MaxFutureSkew time.Duration
}

func orDefault[T int | int64 | time.Duration | rate.Limit](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func (l *Limits) maxBodyBytes() int64  { return orDefault(l.MaxBodyBytes, DefaultMaxBodyBytes) }
func (l *Limits) maxBatchBytes() int64 { return orDefault(l.MaxBatchBytes, DefaultMaxBatchBytes) }
func (l *Limits) maxEventBytes() int64 { return orDefault(l.MaxEventBytes, DefaultMaxEventBytes) }
func (l *Limits) maxSessionLength() time.Duration {
	return orDefault(l.MaxSessionLength, DefaultMaxSessionLength)
}
func (l *Limits) maxBackstep() time.Duration { return orDefault(l.MaxBackstep, DefaultMaxBackstep) }
func (l *Limits) maxFutureSkew() time.Duration {
	return orDefault(l.MaxFutureSkew, DefaultMaxFutureSkew)
}

// Limiter is a set of token buckets, one per key, in a bounded LRU map:
// the collector's per-session and per-client rates, and the replay
// server's sign-in attempts.
type Limiter[K comparable] struct {
	r     rate.Limit
	burst int
	m     *lru.Cache[K, *rate.Limiter]
}

// NewLimiter returns a Limiter of rate r and burst per key, remembering at
// most keys keys (the least recently used go first). A negative r, or
// rate.Inf, limits nothing.
func NewLimiter[K comparable](r rate.Limit, burst, keys int) *Limiter[K] {
	if r < 0 {
		r = rate.Inf
	}
	m, _ := lru.New[K, *rate.Limiter](keys) // fails only for keys <= 0
	return &Limiter[K]{r: r, burst: burst, m: m}
}

// Wait takes one token from key's bucket at now. It returns 0 if the
// request may proceed, or how long until a token is free.
func (l *Limiter[K]) Wait(key K, now time.Time) time.Duration {
	if l.r == rate.Inf {
		return 0
	}
	lim, ok := l.m.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.r, l.burst)
		lim.SetLimitAt(now, l.r) // start the bucket's clock at the injected now
		if prev, found, _ := l.m.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() { // only with a burst below 1: nothing ever passes
		return time.Hour
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now) // a refused request takes no token
	}
	return d
}

// ClientKey is the rate-limit key of a client address: the address, or
// for IPv6 its /64, which one subscriber usually holds whole.
func ClientKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// RetryAfter is a wait as a Retry-After header's whole seconds, rounded up
// so that the client never comes back early, at most a day.
func RetryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(min(max(secs, 1), 24*3600), 10)
}
