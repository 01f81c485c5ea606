package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/loupe-dev/loupe/store"
)

// Defaults of FetchConfig's zero values.
const (
	defaultPerHost      = 2
	defaultFetchWorkers = 8
	defaultFetchTimeout = 10 * time.Second
	defaultRetries      = 3
	defaultBackoff      = time.Second
	defaultMaxRetryWait = time.Minute
	defaultCoolDown     = 10 * time.Minute
	defaultMaxQueue     = 1000
	defaultUserAgent    = "Loupe-archiver/1 (+https://github.com/loupe-dev/loupe)"
	fetchMaxRedirects   = 3
	fetchMaxCoolDowns   = 10000 // URLs cooling down at most; past it the oldest go first
)

// FetchConfig configures the background fetcher behind Want. Fetches
// carry no cookies or credentials; their responses go through the
// Policy's type and size rules, not its cache rules.
type FetchConfig struct {
	// PerHost bounds concurrent fetches to one host:port. If zero, 2.
	PerHost int

	// Workers bounds concurrent fetches in all. If zero, 8.
	Workers int

	// Timeout bounds one attempt, from dialing to the end of the body.
	// If zero, 10 s.
	Timeout time.Duration

	// Retries is how many times a failed attempt is retried: after a
	// network error, 408, 429 or 5xx. If zero, 3; if negative, none.
	Retries int

	// Backoff is the wait before the first retry, doubled before each
	// next one, unless the response's Retry-After asks for another
	// wait. If zero, 1 s.
	Backoff time.Duration

	// MaxRetryWait bounds any wait between attempts, Retry-After
	// included. If zero, 1 min.
	MaxRetryWait time.Duration

	// CoolDown is how long a URL whose fetch failed terminally is not
	// fetched again. If zero, 10 min.
	CoolDown time.Duration

	// AllowPrivate lists the only loopback, private or otherwise
	// non-public destinations fetches may reach: the configured
	// upstreams, as "host:port" (a URL such as "http://localhost:3000" is
	// accepted too). Matched against the host:port a fetch dials and the
	// IP:port it resolved to. If nil, only public addresses.
	AllowPrivate []string

	// Origins maps the site's own hosts, as its URLs name them ("host" or
	// "host:port"), to the upstream serving them. A wanted URL on such a
	// host is fetched from the upstream with the site's Host header, not
	// through its public name: assets visitors' browsers never loaded
	// through the proxy (an unused srcset candidate, a lazy image) are
	// archived even where that name resolves to a private address, or to
	// the proxy itself. Keys are lower case, as NormalizeURL writes hosts.
	// A private upstream must be in AllowPrivate too.
	Origins map[string]*url.URL

	// UserAgent is sent with every fetch. If empty, a Loupe default.
	UserAgent string

	// MaxQueue bounds the URLs queued or being fetched; Want skips URLs
	// beyond it. If zero, 1000.
	MaxQueue int
}

// errFetchRefused is returned for a destination the SSRF guard refuses.
var errFetchRefused = errors.New("destination not allowed")

// errFetchRedirects is returned after too many redirects.
var errFetchRedirects = errors.New("too many redirects")

// fetchRetry marks an attempt's error as worth retrying.
type fetchRetry struct {
	err   error
	after time.Duration // the response's Retry-After, 0 if none
}

func (e *fetchRetry) Error() string { return e.err.Error() }
func (e *fetchRetry) Unwrap() error { return e.err }

// fetcher fetches wanted URLs in the background.
type fetcher struct {
	a      *Archiver
	cfg    FetchConfig
	allow  map[string]bool // lowercased host:port
	client *http.Client
	tr     *http.Transport
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	global chan struct{}
	// sleep waits between attempts; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	closed  bool
	pending map[string]bool      // URLs queued or being fetched
	cool    map[string]time.Time // URL → end of its cool-down
	// coolOrder is cool's entries in the order they end: every cool-down
	// lasts CoolDown, so that is the order they began in. An entry whose
	// URL has since left cool, or cools again, no longer matches it.
	coolOrder []coolEntry
	hosts     map[string]*fetchHost
}

type coolEntry struct {
	url   string
	until time.Time
}

// fetchHost is the per-host semaphore, kept while anyone uses it.
type fetchHost struct {
	sem   chan struct{}
	users int
}

// fetchAllowKey marks a dial's context: its host:port is in AllowPrivate.
type fetchAllowKey struct{}

func newFetcher(a *Archiver, cfg FetchConfig) (*fetcher, error) {
	if cfg.PerHost <= 0 {
		cfg.PerHost = defaultPerHost
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultFetchWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultFetchTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = defaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = defaultBackoff
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = defaultMaxRetryWait
	}
	if cfg.CoolDown <= 0 {
		cfg.CoolDown = defaultCoolDown
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = defaultMaxQueue
	}
	f := &fetcher{
		a:       a,
		cfg:     cfg,
		allow:   make(map[string]bool),
		global:  make(chan struct{}, cfg.Workers),
		sleep:   fetchSleep,
		pending: make(map[string]bool),
		cool:    make(map[string]time.Time),
		hosts:   make(map[string]*fetchHost),
	}
	for _, e := range cfg.AllowPrivate {
		hp, err := fetchHostPort(e)
		if err != nil {
			return nil, fmt.Errorf("allow private %q: %w", e, err)
		}
		f.allow[hp] = true
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, ControlContext: f.control}
	f.tr = &http.Transport{
		Proxy: nil, // a proxy would dial on our behalf, past the guard
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if f.allow[strings.ToLower(addr)] {
				ctx = context.WithValue(ctx, fetchAllowKey{}, true)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   cfg.PerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	f.client = &http.Client{
		Transport: f.tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > fetchMaxRedirects {
				return fmt.Errorf("more than %d: %w", fetchMaxRedirects, errFetchRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s: %w", req.URL.Scheme, errFetchRefused)
			}
			return nil // the dialer checks the new destination
		},
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

// fetchHostPort turns an AllowPrivate entry into a lowercased host:port.
func fetchHostPort(e string) (string, error) {
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return "", err
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if u.Hostname() == "" || port == "" {
			return "", errors.New("want host:port")
		}
		e = net.JoinHostPort(u.Hostname(), port)
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		return "", err
	}
	return strings.ToLower(net.JoinHostPort(host, port)), nil
}

// control runs after resolution, before connecting: it refuses
// non-public addresses unless the dialed host:port or the resolved
// IP:port is allowed.
func (f *fetcher) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, errFetchRefused)
	}
	if fetchPublic(ap.Addr()) || ctx.Value(fetchAllowKey{}) == true || f.allow[strings.ToLower(address)] {
		return nil
	}
	return fmt.Errorf("dial %s: %w", address, errFetchRefused)
}

// cgnat is the shared address space of RFC 6598, not routable publicly.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// fetchPublic reports whether ip is a public unicast address.
func fetchPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() &&
		!ip.IsLinkLocalUnicast() && !ip.IsUnspecified() && !ip.IsMulticast() &&
		!cgnat.Contains(ip) && !(ip.Is4() && ip.As4()[0] == 0)
}

// Want fetches, in the background, each URL the archive does not hold
// yet (Store.Capture answers ErrNotFound) and that is not cooling down
// after a failure. It never blocks on the network or the store; URLs
// that are invalid, already queued, or beyond FetchConfig.MaxQueue are
// skipped (Stats.FetchSkipped).
func (a *Archiver) Want(urls []string) {
	if a == nil || a.closed.Load() {
		return
	}
	f := a.fetch
	for _, raw := range urls {
		u, err := NormalizeURL(raw)
		if err != nil {
			a.fetchSkipped.Add(1)
			continue
		}
		if _, ok := a.recent.Get(u); ok {
			a.fetchSkipped.Add(1)
			continue
		}
		f.mu.Lock()
		until, cooling := f.cool[u]
		if cooling && !a.now().Before(until) {
			delete(f.cool, u)
			cooling = false
		}
		if f.closed || cooling || f.pending[u] || len(f.pending) >= f.cfg.MaxQueue {
			f.mu.Unlock()
			a.fetchSkipped.Add(1)
			continue
		}
		f.pending[u] = true
		f.wg.Add(1)
		f.mu.Unlock()
		go f.run(u)
	}
}

// close cancels every fetch and waits for them.
func (f *fetcher) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	f.tr.CloseIdleConnections()
}

// run fetches and stores one URL, holding a per-host slot and then a
// global one (in that order, so that a busy host does not hold global
// slots while it waits).
func (f *fetcher) run(u string) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.pending, u)
		f.mu.Unlock()
	}()
	a := f.a
	host := u
	if pu, err := url.Parse(u); err == nil {
		host = pu.Host
	}
	release, err := f.acquire(host)
	if err != nil {
		return
	}
	defer release()
	select {
	case f.global <- struct{}{}:
		defer func() { <-f.global }()
	case <-f.ctx.Done():
		return
	}

	if _, err := a.store.Capture(f.ctx, u, a.now()); err == nil {
		a.fetchSkipped.Add(1)
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		if f.ctx.Err() == nil {
			a.log.Warn("archive: look up capture", "url", u, "err", err)
		}
		return
	}
	c, err := f.fetchURL(f.ctx, u)
	if f.ctx.Err() != nil {
		return // closing: neither a failure nor a cool-down
	}
	if err == nil && a.storeCapture(f.ctx, c) {
		a.fetched.Add(1)
		f.wantSubresources(c)
		return
	}
	if err != nil {
		a.fetchFailed.Add(1)
		a.log.Debug("archive: fetch", "url", u, "err", err)
	}
	f.coolDown(u)
}

// wantSubresources queues the fonts, images and imports a fetched
// stylesheet references: the visitor's browser loaded them from another
// origin, so the proxy never saw them either. Stylesheets the proxy tees
// need no such pass: their subresources come through the proxy too.
func (f *fetcher) wantSubresources(c *capture) {
	mt, _, _ := mime.ParseMediaType(c.contentType)
	if mt != "text/css" || len(c.encodings) > 0 {
		return
	}
	base, err := url.Parse(c.url)
	if err != nil {
		return
	}
	if urls := CSSURLs(c.body, base); len(urls) > 0 {
		f.a.Want(urls)
	}
}

// coolDown keeps u from being fetched for CoolDown. Cool-downs that ended
// are forgotten, and past fetchMaxCoolDowns the oldest are too (a flood of
// failing URLs then costs them their cool-down, never memory or a scan).
func (f *fetcher) coolDown(u string) {
	now := f.a.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.coolOrder) > 0 {
		e := f.coolOrder[0]
		if now.Before(e.until) && len(f.cool) < fetchMaxCoolDowns {
			break
		}
		if until, ok := f.cool[e.url]; ok && until.Equal(e.until) {
			delete(f.cool, e.url)
		}
		f.coolOrder[0] = coolEntry{}
		f.coolOrder = f.coolOrder[1:]
	}
	until := now.Add(f.cfg.CoolDown)
	f.cool[u] = until
	f.coolOrder = append(f.coolOrder, coolEntry{u, until})
}

// acquire takes one of host's PerHost slots.
func (f *fetcher) acquire(host string) (release func(), err error) {
	f.mu.Lock()
	h := f.hosts[host]
	if h == nil {
		h = &fetchHost{sem: make(chan struct{}, f.cfg.PerHost)}
		f.hosts[host] = h
	}
	h.users++
	f.mu.Unlock()
	unuse := func() {
		f.mu.Lock()
		if h.users--; h.users == 0 {
			delete(f.hosts, host)
		}
		f.mu.Unlock()
	}
	select {
	case h.sem <- struct{}{}:
		return func() { <-h.sem; unuse() }, nil
	case <-f.ctx.Done():
		unuse()
		return nil, f.ctx.Err()
	}
}

// fetchURL fetches u, retrying what is worth retrying.
func (f *fetcher) fetchURL(ctx context.Context, u string) (*capture, error) {
	for attempt := 0; ; attempt++ {
		c, err := f.fetchOnce(ctx, u)
		var re *fetchRetry
		if err == nil || !errors.As(err, &re) || attempt >= f.cfg.Retries {
			return c, err
		}
		wait := f.cfg.Backoff << attempt
		if re.after > 0 {
			wait = re.after
		}
		wait = min(wait, f.cfg.MaxRetryWait)
		if err := f.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// fetchOnce makes one attempt. Errors worth retrying are *fetchRetry.
func (f *fetcher) fetchOnce(ctx context.Context, u string) (*capture, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if up, ok := f.cfg.Origins[strings.ToLower(req.URL.Host)]; ok {
		req.Host = req.URL.Host
		req.URL.Scheme, req.URL.Host = up.Scheme, up.Host
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	req.Header.Set("Accept", "text/css,image/*,font/*,*/*;q=0.5")
	// No Accept-Encoding: the transport asks for gzip and decodes it.
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, errFetchRefused) || errors.Is(err, errFetchRedirects) {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		return nil, &fetchRetry{err: fmt.Errorf("fetch: %w", err)}
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, &fetchRetry{
			err:   fmt.Errorf("fetch: status %d", resp.StatusCode),
			after: fetchRetryAfter(resp.Header.Get("Retry-After"), f.a.now()),
		}
	default:
		return nil, fmt.Errorf("fetch: status %d", resp.StatusCode)
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt == "text/html" || mt == "application/xhtml+xml" {
		return nil, fmt.Errorf("fetch: %s is an error page", mt)
	}
	max := f.a.policy.maxBytes()
	if resp.ContentLength > max {
		return nil, fmt.Errorf("fetch: %w", errTooLarge)
	}
	codings, ok := decodable(resp.Header.Values("Content-Encoding"))
	if !ok {
		return nil, fmt.Errorf("fetch: content encoding %q", resp.Header.Get("Content-Encoding"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, &fetchRetry{err: fmt.Errorf("fetch: read body: %w", err)}
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("fetch: %w", errTooLarge)
	}
	if body, err = decodeBody(body, codings, max); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if ct == "" {
		ct = http.DetectContentType(body)
		mt, _, _ = mime.ParseMediaType(ct)
	}
	if mt != "image/svg+xml" && fetchLooksHTML(body) {
		return nil, errors.New("fetch: body is an HTML page")
	}
	if !f.a.policy.archivableType(ct) {
		return nil, fmt.Errorf("fetch: content type %q", ct)
	}
	return &capture{url: u, contentType: ct, body: body, at: f.a.now()}, nil
}

// fetchLooksHTML reports whether body sniffs as HTML (the WHATWG MIME
// sniffing algorithm, as http.DetectContentType implements it). A body
// that sniffs as HTML only because it starts with "<!--" is not taken
// for HTML unless an html, head or body tag follows soon: old stylesheets
// begin with that comment.
func fetchLooksHTML(body []byte) bool {
	if !strings.HasPrefix(http.DetectContentType(body), "text/html") {
		return false
	}
	head := strings.ToLower(strings.TrimLeft(string(body[:min(len(body), 1024)]), "\ufeff\t\n\f\r "))
	if !strings.HasPrefix(head, "<!--") {
		return true
	}
	for _, tag := range []string{"<!doctype html", "<html", "<head", "<body"} {
		if strings.Contains(head, tag) {
			return true
		}
	}
	return false
}

// fetchRetryAfter parses a Retry-After value (RFC 9110 §10.2.3): seconds
// or an HTTP date. It returns 0 if absent, malformed or in the past.
func fetchRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second // a day, far above any bound, never overflows
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// fetchSleep waits d or until ctx is done.
func fetchSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
