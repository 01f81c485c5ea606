package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Self-signed certificate files in the data folder.
const (
	SelfSignedCertFile = "selfsigned.crt"
	SelfSignedKeyFile  = "selfsigned.key"
)

// selfSignedValidity is how long a self-signed certificate is made for;
// one with less than selfSignedRenew left is made again.
const (
	selfSignedValidity = 365 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// SelfSigned returns a self-signed ECDSA P-256 certificate for hosts plus
// localhost, 127.0.0.1 and ::1, kept in dir (SelfSignedCertFile and
// SelfSignedKeyFile, the key 0600). The certificate in dir is reused while
// it covers every host and has more than 30 days left, so that a browser
// keeps the exception a person made for it; otherwise a new one replaces
// it. now is the clock; nil means time.Now.
func SelfSigned(dir string, hosts []string, now func() time.Time) (*tls.Certificate, error) {
	if now == nil {
		now = time.Now
	}
	names, ips := sans(append([]string{"localhost", "127.0.0.1", "::1"}, hosts...))
	certPath, keyPath := filepath.Join(dir, SelfSignedCertFile), filepath.Join(dir, SelfSignedKeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && covers(c.Leaf, names, ips, now()) {
		return &c, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Loupe (self-signed)", Organization: []string{"Loupe"}},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write self-signed key: %w", err)
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("write self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// sans splits host names (ports and wildcards allowed) into DNS names and
// IP addresses, without duplicates.
func sans(hosts []string) ([]string, []net.IP) {
	var names []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.ToLower(strings.Trim(h, "[]"))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, ips
}

// covers reports whether c is valid at now for a while yet and names every
// one of names and ips.
func covers(c *x509.Certificate, names []string, ips []net.IP, now time.Time) bool {
	if c == nil || now.Before(c.NotBefore) || now.Add(selfSignedRenew).After(c.NotAfter) {
		return false
	}
	for _, n := range names {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
