package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeALPNProto is the TLS-ALPN-01 challenge protocol (RFC 8737).
const acmeALPNProto = acme.ALPNProto

// ACMEConfig configures automatic certificates.
type ACMEConfig struct {
	// Hosts are the names certificates may be requested for. More can be
	// added later with AddHosts. Wildcards are not allowed: HTTP-01 and
	// TLS-ALPN-01 cannot prove them.
	Hosts []string
	// Email is given to the CA for expiry notices. It may be empty.
	Email string
	// CacheDir keeps the account key and certificates across restarts
	// (in Loupe, a folder in the data folder). Required: without it every
	// start would ask the CA again and soon hit its rate limits.
	CacheDir string
	// DirectoryURL is the ACME CA's directory. If empty, Let's Encrypt's
	// production directory.
	DirectoryURL string
}

// ACME is a Source of certificates obtained from an ACME CA when a client
// first asks for a configured host, renewed before they expire, and kept in
// CacheDir. It answers the CA's HTTP-01 challenges through HTTPHandler
// (the plain :80 listener) and its TLS-ALPN-01 challenges through
// GetCertificate (a listener whose NextProtos include acme-tls/1, as
// Manager.TLSConfig's do).
type ACME struct {
	m *autocert.Manager

	mu    sync.RWMutex
	hosts map[string]bool
}

var _ Source = (*ACME)(nil)

// NewACME returns an ACME source. It does not reach the CA: that happens
// at the first handshake for a host with no cached certificate.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if cfg.CacheDir == "" {
		return nil, errors.New("acme: a cache folder is required")
	}
	a := &ACME{hosts: map[string]bool{}}
	if err := a.AddHosts(cfg.Hosts...); err != nil {
		return nil, err
	}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.CacheDir),
		HostPolicy: a.hostPolicy,
		Email:      cfg.Email,
	}
	if cfg.DirectoryURL != "" {
		a.m.Client = &acme.Client{DirectoryURL: cfg.DirectoryURL}
	}
	return a, nil
}

// AddHosts allows certificates for more host names.
func (a *ACME) AddHosts(hosts ...string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range hosts {
		name, err := normalizeName(h)
		if err != nil {
			return fmt.Errorf("acme: %w", err)
		}
		if strings.HasPrefix(name, "*.") {
			return fmt.Errorf("acme: %q: an ACME certificate cannot be a wildcard here (HTTP-01 and TLS-ALPN-01 prove one name); give each name", h)
		}
		a.hosts[name] = true
	}
	return nil
}

// hostPolicy is autocert's HostPolicy: only the configured names, so that
// a client sending any SNI cannot make Loupe ask the CA for it.
func (a *ACME) hostPolicy(_ context.Context, host string) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.hosts[strings.ToLower(host)] {
		return nil
	}
	return fmt.Errorf("acme: host %q is not configured", host)
}

// GetCertificate returns the host's certificate, from memory, the cache or
// the CA; it also answers TLS-ALPN-01 challenges.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.m.GetCertificate(hello)
}

// HTTPHandler answers the CA's HTTP-01 challenges under
// /.well-known/acme-challenge/ and hands every other request to fallback.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		// autocert's nil fallback redirects to https; Loupe decides that.
		fallback = http.NotFoundHandler()
	}
	return a.m.HTTPHandler(fallback)
}

// Serves reports whether host (without port) is one a has certificates
// for.
func (a *ACME) Serves(host string) bool {
	return a.hostPolicy(context.Background(), host) == nil
}
