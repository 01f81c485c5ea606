package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// MinterConfig configures a Minter. Each zero field has the default its
// comment names.
type MinterConfig struct {
	// Validity is how long a leaf certificate is valid from now. If zero,
	// 24 hours. Cached leaves are replaced after half of it.
	Validity time.Duration
	// MaxHosts bounds how many leaves are kept. If zero, 10,000.
	MaxHosts int64
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// Minter signs, with a CA, the leaf certificate presented to the browser
// for each intercepted host. A host's leaf is minted once and cached;
// concurrent requests for a host not yet cached wait for one signing.
type Minter struct {
	ca    *CA
	cfg   MinterConfig
	cache *ristretto.Cache[string, *tls.Certificate]
	group singleflight.Group
	// minted counts signatures, for tests and stats.
	minted atomic.Int64
}

// NewMinter returns a Minter signing with ca. Close it to stop its cache.
func NewMinter(ca *CA, cfg MinterConfig) (*Minter, error) {
	if ca == nil || ca.Key == nil || ca.Cert == nil {
		return nil, errors.New("minter: no CA")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = 24 * time.Hour
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *tls.Certificate]{
		NumCounters: cfg.MaxHosts * 10,
		MaxCost:     cfg.MaxHosts,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("minter cache: %w", err)
	}
	return &Minter{ca: ca, cfg: cfg, cache: cache}, nil
}

// Close releases the cache.
func (m *Minter) Close() { m.cache.Close() }

// Minted returns how many leaves m has signed.
func (m *Minter) Minted() int64 { return m.minted.Load() }

// Leaf returns the certificate for host (a name or an IP address, without
// port), with the CA in its chain.
func (m *Minter) Leaf(host string) (*tls.Certificate, error) {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return nil, errors.New("mint certificate: no host name")
	}
	if c, ok := m.fresh(host); ok {
		return c, nil
	}
	v, err, _ := m.group.Do(host, func() (any, error) {
		// A call that missed the cache just before another call's
		// leaf was stored starts a new flight: look again.
		if c, ok := m.fresh(host); ok {
			return c, nil
		}
		c, err := m.mint(host)
		if err != nil {
			return nil, err
		}
		m.cache.SetWithTTL(host, c, 1, m.cfg.Validity/2)
		m.cache.Wait()
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// fresh returns host's cached leaf if it has at least half its life left
// on m's clock (the cache's TTL runs on the wall clock).
func (m *Minter) fresh(host string) (*tls.Certificate, bool) {
	c, ok := m.cache.Get(host)
	if !ok || m.cfg.Now().After(c.Leaf.NotAfter.Add(-m.cfg.Validity/2)) {
		return nil, false
	}
	return c, true
}

// mint signs a new leaf for host.
func (m *Minter) mint(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", host, err)
	}
	now := m.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: host, Organization: []string{"Loupe (lab studies)"}},
		// An hour back for clients whose clock is a little behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(m.cfg.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca.Cert, &key.PublicKey, m.ca.Key)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mint certificate for %s: %w", host, err)
	}
	m.minted.Add(1)
	return &tls.Certificate{Certificate: [][]byte{der, m.ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
