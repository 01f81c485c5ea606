// Package certs is Loupe's TLS: the certificates the proxy's TLS listener
// presents, and the CA that mints per-host certificates in MITM mode.
//
// A Manager picks a certificate Source by the client's server name (SNI):
// exact names first, then "*.example.com" wildcards, then a default. Sources
// are certificate and key files reloaded when they change on disk
// (KeyPair), a self-signed certificate kept in the data folder (SelfSigned),
// and ACME certificates from Let's Encrypt or another ACME CA (ACME).
//
// For lab studies through `loupe mitm`, InitCA makes an ECDSA CA in the data
// folder, LoadCA reads it back, and a Minter signs a short-lived leaf
// certificate per host, minting each once and coalescing concurrent misses.
package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Source is where a certificate for a TLS handshake comes from; its method
// has the signature of tls.Config.GetCertificate.
type Source interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Static is a Source that always presents one certificate.
type Static struct{ Cert *tls.Certificate }

var (
	_ Source = Static{}
	_ Source = (*Manager)(nil)
)

// GetCertificate returns s.Cert.
func (s Static) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.Cert == nil {
		return nil, errors.New("no certificate")
	}
	return s.Cert, nil
}

// ErrNoCertificate is returned for a server name no source serves.
var ErrNoCertificate = errors.New("no certificate for this server name")

// Manager maps server names to certificate sources for one TLS listener.
// Its zero value serves nothing; it is safe for concurrent use, and sources
// may be added while the listener runs.
type Manager struct {
	mu    sync.RWMutex
	exact map[string]Source // "shop.example"
	wild  map[string]Source // "example" for "*.example"
	def   Source
	acme  bool
}

// Add serves each of hosts with s. A host is an exact name
// ("shop.example.com") or a wildcard ("*.example.com", which covers one
// label, as in RFC 6125: a.example.com but neither example.com nor
// a.b.example.com). Names are matched case-insensitively. A name added
// twice is an error: two sites cannot claim one name.
func (m *Manager) Add(hosts []string, s Source) error {
	if s == nil {
		return errors.New("add certificate source: nil source")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exact == nil {
		m.exact, m.wild = map[string]Source{}, map[string]Source{}
	}
	for _, h := range hosts {
		name, err := normalizeName(h)
		if err != nil {
			return err
		}
		table, key := m.exact, name
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			table, key = m.wild, rest
		}
		if _, dup := table[key]; dup {
			return fmt.Errorf("host %q has two certificate sources", h)
		}
		table[key] = s
	}
	if _, ok := s.(*ACME); ok {
		m.acme = true
	}
	return nil
}

// SetDefault serves s to clients that send no server name (an IP address
// in the URL) or one that no added host matches. If none is set, those
// handshakes fail.
func (m *Manager) SetDefault(s Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.def = s
	if _, ok := s.(*ACME); ok {
		m.acme = true
	}
}

// Empty reports whether m serves nothing at all.
func (m *Manager) Empty() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.def == nil && len(m.exact) == 0 && len(m.wild) == 0
}

// normalizeName lowercases a host name and checks its shape.
func normalizeName(h string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	rest := strings.TrimPrefix(name, "*.")
	if name == "" || rest == "" || strings.ContainsAny(rest, "*/: ") {
		return "", fmt.Errorf("host %q: want a name such as shop.example.com or *.example.com", h)
	}
	return name, nil
}

// source returns the source for a server name.
func (m *Manager) source(serverName string) Source {
	name := strings.TrimSuffix(strings.ToLower(serverName), ".")
	m.mu.RLock()
	defer m.mu.RUnlock()
	if name != "" {
		if s, ok := m.exact[name]; ok {
			return s
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if s, ok := m.wild[parent]; ok {
				return s
			}
		}
	}
	return m.def
}

// GetCertificate is for tls.Config.GetCertificate.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := m.source(hello.ServerName)
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCertificate, hello.ServerName)
	}
	return s.GetCertificate(hello)
}

// TLSConfig returns a server configuration presenting m's certificates,
// offering HTTP/2 and HTTP/1.1, and, when an ACME source is added, the
// TLS-ALPN-01 challenge protocol (acme-tls/1). Sources added later are
// served too; an ACME source added later needs a new TLSConfig for its
// TLS-ALPN-01 challenges (HTTP-01 works regardless).
func (m *Manager) TLSConfig() *tls.Config {
	m.mu.RLock()
	acme := m.acme
	m.mu.RUnlock()
	protos := []string{"h2", "http/1.1"}
	if acme {
		protos = append(protos, acmeALPNProto)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.GetCertificate,
		NextProtos:     protos,
	}
}
