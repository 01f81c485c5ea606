package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loupe-dev/loupe/archive"
	"github.com/loupe-dev/loupe/collector"
	"github.com/loupe-dev/loupe/injector"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/proxy"
	"github.com/loupe-dev/loupe/replayer/ui"
	"github.com/loupe-dev/loupe/store"
)

// Main is a running Loupe: the roles it was asked for over one store.
type Main struct {
	Config Config
	// Roles is what this process runs. If zero, every role (loupe serve).
	Roles  roles
	Logger *slog.Logger

	// ProxyURL, CollectorURL and AdminURL are where the listeners of the
	// roles that run are, once Open returns; the others are "".
	ProxyURL, CollectorURL, AdminURL string
	// ProxyTLSURL is the proxy's TLS listener (https://…), or "" when no
	// certificate is configured (tls.go).
	ProxyTLSURL string

	tls *proxyTLS // the proxy's certificates; nil when none is configured

	// siteList are the sites of --config; nil without one.
	siteList []*site

	tok *collector.Tokens
	// firstLogin is the user and password made at this start because the
	// store had no user (users.go); empty otherwise.
	firstLogin struct{ name, password string }
	db         store.Store
	arch       *archive.Archiver // nil when archiving is off
	// netlog delivers the proxy's network log; nil when no proxy runs.
	netlog *proxy.RequestQueue
	// stopLoops end the background loops (loop), in the order started.
	stopLoops []func()
	now       func() time.Time // the clock; nil means time.Now
	closers   []io.Closer      // closed with the store
	servers   []*http.Server
	errc      chan error
}

// drainTimeout bounds how long Close waits for in-flight requests.
const drainTimeout = 20 * time.Second

// Open validates the config, opens the store and starts the listeners of
// the process's roles.
func (m *Main) Open(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	if m.Roles == 0 {
		m.Roles = allRoles
	}
	var (
		px, ingest, rp http.Handler
		err            error
	)
	if m.Roles.has(roleProxy) {
		if px, err = m.proxy(ctx); err != nil {
			return err
		}
	} else if m.Roles.has(roleCollector) {
		c, err := m.collector(ctx)
		if err != nil {
			return err
		}
		// A collector alone fetches what recordings reference; the
		// proxies in front of it capture what they serve.
		arch, err := m.archiver(ctx, nil)
		if err != nil {
			return err
		}
		if arch != nil {
			c.Assets = arch
		}
		ingest = c
	}
	if m.Roles.has(roleReplayer) {
		if err := m.openStore(ctx); err != nil {
			return err
		}
		if rp, err = m.replayServer(ctx); err != nil {
			return err
		}
		if !ui.Built() {
			m.Logger.Warn("the replay UI bundle is not built; run make build")
		}
	}

	if err := m.startRetention(); err != nil {
		return err
	}
	if m.Roles.has(roleCollector) {
		m.startIdleEnder()
	}

	m.errc = make(chan error, 3)
	if px != nil {
		if err := m.serveProxy(px); err != nil {
			return err
		}
	}
	if ingest != nil {
		if m.CollectorURL, err = m.serve(m.Config.Listen, "collector", m.collectorRoutes(ingest)); err != nil {
			return err
		}
	}
	if rp != nil {
		if m.AdminURL, err = m.serve(m.Config.Admin, "admin", rp); err != nil {
			return err
		}
	}
	return nil
}

// proxy returns the site-facing proxy, with the collector in process unless
// --collector names one elsewhere.
func (m *Main) proxy(ctx context.Context) (http.Handler, error) {
	sites, err := m.sites()
	if err != nil {
		return nil, err
	}
	coll, err := m.Config.collectorURL()
	if err != nil {
		return nil, err
	}
	if err := m.checkUpstreams(ctx, sites); err != nil {
		return nil, err
	}
	tokens, err := m.tokens()
	if err != nil {
		return nil, err
	}
	trusted, err := m.Config.trustedProxies()
	if err != nil {
		return nil, err
	}
	var ingest http.Handler
	if coll != nil {
		ingest = forwardIngest(coll, trusted, m.Logger)
	} else if ingest, err = m.collector(ctx); err != nil {
		return nil, err
	}
	if recorder.JS() == nil {
		m.Logger.Warn("the recorder bundle is not built; run make build")
	}
	// What every site's proxy shares; sites.go adds each site's own.
	pc := proxy.Config{
		Tokens:     tokens,
		Ingest:     ingest,
		RecorderJS: recorder.JS(),
		Logger:     m.Logger,
	}
	pc.TrustedProxies, pc.PreserveHost = trusted, m.Config.PreserveHost
	if pc.UserRules, err = m.Config.userRules(); err != nil {
		return nil, err
	}
	if pc.Requests, err = m.requestLog(coll, tokens); err != nil {
		return nil, err
	}
	var arch *archive.Archiver
	switch {
	case m.Config.NoArchive:
	case coll != nil && !m.Config.isPostgres():
		// Its captures would land in a SQLite file of this node's own that
		// no collector or replayer of the deployment reads.
		m.Logger.Warn("not archiving assets: a proxy forwarding to --collector archives only into a shared --database postgres://…")
	default:
		if arch, err = m.archiver(ctx, m.siteOrigins(sites)); err != nil {
			return nil, err
		}
		if c, ok := ingest.(*collector.Collector); ok {
			c.Assets = assetWanter(sites, arch)
		}
	}
	return m.siteHandler(sites, pc, arch)
}

// requestLog returns the queue delivering the proxy's network log: to the
// store, or, with --collector, to that collector's network log route.
func (m *Main) requestLog(coll *url.URL, tokens *collector.Tokens) (proxy.RequestLogger, error) {
	var sink proxy.RequestSink
	if coll != nil {
		sink = &collector.RequestClient{
			URL:    coll.JoinPath(injector.DefaultPrefix, "requests").String(),
			Tokens: tokens,
			Client: &http.Client{Timeout: 10 * time.Second},
		}
	} else if rs, ok := m.db.(store.RequestStore); ok {
		sink = rs
	} else {
		return nil, nil
	}
	q, err := proxy.NewRequestQueue(proxy.QueueConfig{Sink: sink, Logger: m.Logger})
	if err != nil {
		return nil, err
	}
	m.netlog = q
	return q, nil
}

// collector returns the ingest handler over the store.
func (m *Main) collector(ctx context.Context) (*collector.Collector, error) {
	tokens, err := m.tokens()
	if err != nil {
		return nil, err
	}
	trusted, err := m.Config.trustedProxies()
	if err != nil {
		return nil, err
	}
	c := &collector.Collector{
		Tokens:         tokens,
		Limits:         m.Config.limits(),
		TrustedProxies: trusted,
		KeepIP:         m.Config.KeepIP,
		ConversionURL:  m.Config.ConversionURL,
		Logger:         m.Logger,
	}
	if m.Config.GeoIP != "" {
		geo, err := collector.OpenGeoIP(m.Config.GeoIP)
		if err != nil {
			return nil, fmt.Errorf("--geoip: %w", err)
		}
		m.closers = append(m.closers, geo)
		c.GeoIP = geo
	}
	if err := m.openStore(ctx); err != nil {
		return nil, err
	}
	c.Store = m.db
	return c, nil
}

// collectorRoutes lists every route of a stand-alone collector.
func (m *Main) collectorRoutes(ingest http.Handler) http.Handler {
	mux := http.NewServeMux()
	// The collector answers 405 for other methods itself, with Allow.
	mux.Handle(injector.DefaultPrefix+"ingest", ingest)
	if rs, ok := m.db.(store.RequestStore); ok {
		// Proxies elsewhere post their network log here, signed.
		mux.Handle("POST "+injector.DefaultPrefix+"requests", &collector.RequestsHandler{Store: rs, Tokens: m.tok, Logger: m.Logger})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := m.db.Ping(ctx); err != nil {
			m.Logger.Warn("store not ready", "err", err)
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// tokens returns the process's one Tokens, keyed by the secret.
func (m *Main) tokens() (*collector.Tokens, error) {
	if m.tok != nil {
		return m.tok, nil
	}
	secret, err := m.secret()
	if err != nil {
		return nil, err
	}
	tokens, err := collector.NewTokens(secret)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	tokens.MaxSessionLength = m.Config.Limits.MaxSessionLength
	m.tok = tokens
	return tokens, nil
}

// serve starts an HTTP server for h on addr and returns its URL.
func (m *Main) serve(addr, name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s listener: %w", name, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.servers = append(m.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.errc <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Wait blocks until ctx is done or a server fails.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.errc:
		return err
	}
}

// Close stops every listener at once, waits up to drainTimeout for
// in-flight requests to finish, lets the archiver store what it captured,
// then closes the store. A batch still in
// flight when the store closes is answered 503, never acknowledged.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	errs := make([]error, len(m.servers)+1)
	var wg sync.WaitGroup
	for i, srv := range m.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				errs[i] = fmt.Errorf("drain: %w", errs[i])
				srv.Close()
			}
		}()
	}
	wg.Wait()
	// The last requests' entries are delivered before the store closes.
	if m.netlog != nil {
		m.netlog.Close()
		st := m.netlog.Stats()
		m.Logger.Info("network log", "sent", st.Sent, "dropped", st.Dropped, "failed", st.Failed)
	}
	// Captures of the last responses are stored before the store closes.
	if m.arch != nil {
		errs = append(errs, m.arch.Close())
		st := m.arch.Stats()
		m.Logger.Info("archive", "captured", st.Captured, "new_bodies", st.NewBodies, "dropped", st.Dropped,
			"failed", st.Failed, "fetched", st.Fetched, "fetch_failed", st.FetchFailed)
	}
	for _, stop := range m.stopLoops {
		stop()
	}
	if m.db != nil {
		errs[len(m.servers)] = m.db.Close()
	}
	for _, c := range m.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// describe tells the operator where the process's listeners are.
func (m *Main) describe(w io.Writer) {
	switch {
	case m.Roles.has(roleProxy) && len(m.siteList) > 0:
		m.describeSites(w)
	case m.Roles.has(roleProxy):
		fmt.Fprintf(w, "Loupe is recording %s\n  the site through Loupe: %s\n", m.Config.Upstream, m.ProxyURL)
		if m.ProxyTLSURL != "" {
			fmt.Fprintf(w, "  over TLS:               %s\n", m.ProxyTLSURL)
		}
		if m.Config.Collector != "" && !m.Roles.has(roleCollector|roleReplayer) {
			fmt.Fprintf(w, "  ingest forwarded to:    %s\n", m.Config.Collector)
		}
	case m.Roles.has(roleCollector):
		fmt.Fprintf(w, "Loupe collector is up\n  ingest:                 %s%singest\n", m.CollectorURL, injector.DefaultPrefix)
	}
	if m.Roles.has(roleReplayer) {
		fmt.Fprintf(w, "  the replay UI:          %s\n", m.AdminURL)
		m.describeFirstUser(w, "  ")
	}
}

// secret returns the configured secret, or the one kept in the data folder,
// making it on first start.
func (m *Main) secret() ([]byte, error) {
	if m.Config.Secret != "" {
		if len(m.Config.Secret) < 32 {
			return nil, usageError{"LOUPE_SECRET must be at least 32 characters"}
		}
		return []byte(m.Config.Secret), nil
	}
	path := filepath.Join(m.Config.Data, "secret")
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, fmt.Errorf("secret file %s is shorter than 32 characters", path)
		}
		return []byte(s), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := os.MkdirAll(m.Config.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	var b [32]byte
	rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	// O_EXCL: two processes starting at once agree on one secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return m.secret()
	}
	if err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if _, err := io.WriteString(f, s+"\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if m.Roles != 0 && m.Roles != allRoles {
		// One role of a deployment: its other nodes cannot know this
		// secret, so their tokens and this node's will not verify.
		m.Logger.Warn("made a new secret for this node alone; give every node the same LOUPE_SECRET", "file", path)
	}
	return []byte(s), f.Close()
}

// checkReachable dials the upstream once so that a wrong address is a
// clear error at start rather than a 502 for every visitor.
func checkReachable(ctx context.Context, u *url.URL) error {
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("upstream %s is unreachable: %w", u.Redacted(), err)
	}
	return conn.Close()
}

// loop runs fn now and then every period, in a goroutine of its own, until
// Close; fn's context ends then.
func (m *Main) loop(period time.Duration, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopLoops = append(m.stopLoops, func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			fn(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// clock is m.now, or time.Now.
func (m *Main) clock() func() time.Time {
	if m.now != nil {
		return m.now
	}
	return time.Now
}

// idleEvery is how often the collector ends page views left without a
// pagehide (store.IdleEnder), idleBatch how many at most each time: small
// enough that SQLite's one write transaction for them stays short, so that
// a backlog (the first run over an older database) drains over a few
// hours beside the traffic rather than stalling it.
const (
	idleEvery = time.Minute
	idleBatch = 200
)

// startIdleEnder ends, now and every idleEvery until Close, the page views
// idle for store.PageViewIdle, so that a page left without a pagehide gets
// its verdicts (an abandoned form, say). Nothing when the store cannot.
func (m *Main) startIdleEnder() {
	ie, ok := m.db.(store.IdleEnder)
	if !ok {
		return
	}
	now := m.clock()
	m.loop(idleEvery, func(ctx context.Context) {
		n, err := ie.EndIdlePageViews(ctx, now().Add(-store.PageViewIdle), idleBatch)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			m.Logger.Warn("ending idle page views", "err", err)
		case n > 0:
			m.Logger.Debug("ended idle page views", "count", n)
		}
	})
}
