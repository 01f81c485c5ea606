package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/loupe-dev/loupe/certs"
	"github.com/loupe-dev/loupe/injector"
)

// TLSConfig is how the site-facing proxy serves TLS. Its zero value serves
// none: only the plain listener (--listen) runs.
type TLSConfig struct {
	// Listen is the TLS listener's address. It is used only when a
	// certificate source is configured here or by a site (AddSiteTLS).
	Listen string
	// CertFile and KeyFile are a PEM certificate (with its chain) and key,
	// served for every host no site names, and loaded again when they
	// change on disk. Both or neither.
	CertFile, KeyFile string
	// SelfSigned serves a self-signed certificate, kept in the data folder,
	// for the site hosts, localhost and 127.0.0.1, to hosts no site names.
	SelfSigned bool
	// ACME gets certificates for every --site-host from an ACME CA (Let's
	// Encrypt unless ACMEDirectory is set), answering its challenges on
	// the plain listener (HTTP-01, so --listen should be :80) and on the
	// TLS listener (TLS-ALPN-01, :443). Account and certificates are kept
	// in the data folder's acme folder.
	ACME bool
	// ACMEEmail is given to the CA for expiry notices; it may be empty.
	ACMEEmail string
	// ACMEDirectory is the ACME CA's directory URL; if empty, Let's
	// Encrypt's production one.
	ACMEDirectory string
	// Redirect makes the plain listener redirect every request to the
	// TLS listener (308), except ACME challenges and the health probe.
	Redirect bool
}

const defaultTLSListen = "127.0.0.1:8443"

// tlsFlags binds TLSConfig's flags to fs (the proxy role's).
func (c *Config) tlsFlags(fs *flag.FlagSet) {
	t := &c.TLS
	fs.StringVar(&t.Listen, "tls-listen", defaultTLSListen, "address visitors reach the site on over TLS (HTTP/2 and HTTP/1.1), when a certificate is configured; e.g. :443")
	fs.StringVar(&t.CertFile, "tls-cert", "", "PEM certificate `file` (with its chain) for the TLS listener; reloaded when it changes")
	fs.StringVar(&t.KeyFile, "tls-key", "", "PEM key `file` of --tls-cert")
	fs.BoolVar(&t.SelfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate for --site-host, localhost and 127.0.0.1, kept in --data so a browser's exception lasts")
	fs.BoolVar(&t.ACME, "acme", false, "get certificates for every --site-host automatically from an ACME CA (Let's Encrypt); needs --listen :80 or --tls-listen :443 reachable from the internet")
	fs.StringVar(&t.ACMEEmail, "acme-email", "", "`address` the ACME CA may send expiry notices to")
	fs.StringVar(&t.ACMEDirectory, "acme-directory", "", "directory `URL` of the ACME CA; empty for Let's Encrypt's")
	fs.BoolVar(&t.Redirect, "tls-redirect", false, "redirect plain-HTTP visitors to the TLS listener")
}

// SiteTLS is a site's own certificate source (a site's tls block in the
// sites file). Exactly one way is set.
type SiteTLS struct {
	// CertFile and KeyFile are PEM files, reloaded when they change.
	CertFile, KeyFile string
	// SelfSigned adds the site's hosts to the self-signed certificate.
	SelfSigned bool
	// ACME gets the site's certificates from an ACME CA: ACMEDirectory's,
	// with ACMEEmail, each "" meaning --acme-directory's and --acme-email's.
	ACME                     bool
	ACMEDirectory, ACMEEmail string
}

// proxyTLS is the proxy's TLS listener's certificates, gathered from the
// flags and the sites before the listener starts.
type proxyTLS struct {
	mgr certs.Manager
	// acme are the ACME sources by CA directory and email; most
	// deployments have one.
	acme map[acmeKey]*certs.ACME
	self *selfSigned // nil unless some host uses the self-signed certificate
}

type acmeKey struct{ directory, email string }

// AddSiteTLS serves hosts (exact names or "*.example.com") on the proxy's
// TLS listener with s's certificate. Call it before Open starts the
// listeners, e.g. while loading the sites file; it also turns the TLS
// listener on.
func (m *Main) AddSiteTLS(hosts []string, s SiteTLS) error {
	ways := 0
	for _, on := range []bool{s.CertFile != "" || s.KeyFile != "", s.SelfSigned, s.ACME} {
		if on {
			ways++
		}
	}
	if ways != 1 {
		return usageError{"tls: give exactly one of a cert and key file, self_signed or acme"}
	}
	var src certs.Source
	switch {
	case s.SelfSigned:
		self := m.selfSigned()
		self.hosts = append(self.hosts, hosts...)
		src = self
	case s.ACME:
		a, err := m.acme(s.ACMEDirectory, s.ACMEEmail)
		if err != nil {
			return err
		}
		if err := a.AddHosts(hosts...); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		src = a
	default:
		if s.CertFile == "" || s.KeyFile == "" {
			return usageError{"tls: give both a cert and a key file"}
		}
		kp, err := certs.LoadKeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		kp.Log = m.Logger
		src = kp
	}
	if err := m.proxyTLS().mgr.Add(hosts, src); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

func (m *Main) proxyTLS() *proxyTLS {
	if m.tls == nil {
		m.tls = &proxyTLS{acme: map[acmeKey]*certs.ACME{}}
	}
	return m.tls
}

// acme returns the ACME source for a CA directory and an email ("" for
// the flags' --acme-directory and --acme-email), made on first use. The
// flags' CA keeps its account and certificates in the data folder's acme
// folder; another CA in acme-<hash of its directory and email>.
func (m *Main) acme(directory, email string) (*certs.ACME, error) {
	if directory == "" {
		directory = m.Config.TLS.ACMEDirectory
	}
	if email == "" {
		email = m.Config.TLS.ACMEEmail
	}
	t := m.proxyTLS()
	k := acmeKey{directory, email}
	if a, ok := t.acme[k]; ok {
		return a, nil
	}
	cache := filepath.Join(m.Config.Data, "acme")
	if k != (acmeKey{m.Config.TLS.ACMEDirectory, m.Config.TLS.ACMEEmail}) {
		sum := sha256.Sum256([]byte(directory + "\n" + email))
		cache += "-" + hex.EncodeToString(sum[:6])
	}
	a, err := certs.NewACME(certs.ACMEConfig{Email: email, CacheDir: cache, DirectoryURL: directory})
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	t.acme[k] = a
	return a, nil
}

// selfSigned returns the process's one self-signed source.
func (m *Main) selfSigned() *selfSigned {
	t := m.proxyTLS()
	if t.self == nil {
		t.self = &selfSigned{dir: m.Config.Data}
	}
	return t.self
}

// selfSigned is the self-signed certificate, made (or reused from the data
// folder) once every host it must name is known, before the listener
// starts.
type selfSigned struct {
	dir   string
	hosts []string
	cert  *tls.Certificate
}

var _ certs.Source = (*selfSigned)(nil)

func (s *selfSigned) make() error {
	c, err := certs.SelfSigned(s.dir, s.hosts, nil)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.cert = c
	return nil
}

func (s *selfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return certs.Static{Cert: s.cert}.GetCertificate(nil)
}

// tlsFromFlags adds the sources --tls-cert, --tls-self-signed and --acme
// name.
func (m *Main) tlsFromFlags() error {
	c := m.Config.TLS
	if (c.CertFile == "") != (c.KeyFile == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	if c.CertFile != "" && c.SelfSigned {
		return usageError{"--tls-cert and --tls-self-signed exclude each other"}
	}
	switch {
	case c.CertFile != "":
		kp, err := certs.LoadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return usageError{fmt.Sprintf("--tls-cert: %v", err)}
		}
		kp.Log = m.Logger
		m.proxyTLS().mgr.SetDefault(kp)
	case c.SelfSigned:
		self := m.selfSigned()
		self.hosts = append(self.hosts, m.Config.siteHosts()...)
		m.proxyTLS().mgr.SetDefault(self)
	}
	if c.ACME {
		hosts := m.Config.siteHostList()
		if len(hosts) == 0 {
			return usageError{"--acme needs --site-host, the names to get certificates for (with --config: a tls block with acme in each site)"}
		}
		a, err := m.acme("", "")
		if err != nil {
			return err
		}
		if err := a.AddHosts(hosts...); err != nil {
			return usageError{fmt.Sprintf("--acme: %v", err)}
		}
		if err := m.proxyTLS().mgr.Add(hosts, a); err != nil {
			return usageError{fmt.Sprintf("--acme: %v", err)}
		}
	}
	return nil
}

// serveProxy starts the proxy's listeners: the plain one on --listen and,
// when a certificate is configured by flag or by a site, the TLS one on
// --tls-listen, speaking HTTP/2 and HTTP/1.1. With ACME, the plain
// listener answers the CA's HTTP-01 challenges.
func (m *Main) serveProxy(px http.Handler) error {
	if err := m.tlsFromFlags(); err != nil {
		return err
	}
	t := m.tls
	if t == nil || t.mgr.Empty() {
		var err error
		m.ProxyURL, err = m.serve(m.Config.Listen, "proxy", px)
		return err
	}
	if t.self != nil {
		if err := t.self.make(); err != nil {
			return err
		}
	}
	tlsAddr := m.Config.TLS.Listen
	if tlsAddr == "" {
		tlsAddr = defaultTLSListen
	}
	ln, err := net.Listen("tcp", tlsAddr)
	if err != nil {
		return fmt.Errorf("proxy TLS listener: %w", err)
	}
	m.ProxyTLSURL = "https://" + ln.Addr().String()
	plain := px
	if m.Config.TLS.Redirect {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		plain = redirectToTLS(port, px)
	}
	if len(t.acme) > 0 {
		plain = acmeChallenges(t.acme, plain)
	}
	if m.ProxyURL, err = m.serve(m.Config.Listen, "proxy", plain); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           px,
		TLSConfig:         t.mgr.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.servers = append(m.servers, srv)
	go func() {
		// ServeTLS adds HTTP/2 to the server as it does for ListenAndServeTLS.
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			m.errc <- fmt.Errorf("proxy TLS server: %w", err)
		}
	}()
	return nil
}

// redirectToTLS answers plain-HTTP requests with a 308 to the same URL on
// the TLS listener's port (omitted when 443); the health probe stays plain
// for load balancers.
func redirectToTLS(port string, next http.Handler) http.Handler {
	health := injector.DefaultPrefix + "healthz"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == health {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// acmeChallenges answers HTTP-01 challenges with the ACME source whose
// hosts include the request's, and sends every other request to next.
func acmeChallenges(sources map[acmeKey]*certs.ACME, next http.Handler) http.Handler {
	type route struct {
		a *certs.ACME
		h http.Handler
	}
	var routes []route
	for _, a := range sources {
		routes = append(routes, route{a, a.HTTPHandler(next)})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			for _, rt := range routes {
				if rt.a.Serves(strings.ToLower(host)) {
					rt.h.ServeHTTP(w, r)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
