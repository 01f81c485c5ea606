package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The MITM CA's files in the data folder.
const (
	CACertFile = "mitm-ca.crt"
	CAKeyFile  = "mitm-ca.key"
)

// caValidity is how long a CA made by InitCA is valid.
const caValidity = 5 * 365 * 24 * time.Hour

// ErrCAExists is returned by InitCA when the folder already holds a CA.
var ErrCAExists = errors.New("a CA already exists")

// CA is the certificate authority that signs the leaf certificates Loupe
// presents for recorded hosts in MITM mode. Each installation makes its own
// (InitCA): its key never leaves the data folder.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is Cert in PEM, for installing in a test browser.
	PEM []byte
}

// InitCA makes a new ECDSA P-256 CA in dir: CACertFile and CAKeyFile, the
// key readable by its owner only. It refuses (ErrCAExists) to replace a CA
// already there, which browsers may trust: remove the files to make a new
// one. now is the clock; nil means time.Now.
func InitCA(dir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrCAExists, p)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make CA key: %w", err)
	}
	sn := serial()
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject: pkix.Name{
			// A distinct name per installation, so that a person who trusts
			// several can tell them apart.
			CommonName:   "Loupe lab CA " + hex.EncodeToString(sn.Bytes()[:4]),
			Organization: []string{"Loupe (lab studies)"},
		},
		NotBefore:             t.Add(-time.Hour),
		NotAfter:              t.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("make CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	// The key first: a certificate without its key would be a CA no one
	// can use, while a stray key is overwritten by the next init.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: certPEM}, nil
}

// LoadCA reads the CA that InitCA made in dir. A missing CA is an error
// wrapping os.ErrNotExist.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load CA: %s is readable by others (mode %v); chmod 600 it", keyPath, fi.Mode().Perm())
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !pair.Leaf.IsCA {
		return nil, fmt.Errorf("load CA: %s is not a CA certificate", certPath)
	}
	return &CA{
		Cert: pair.Leaf,
		Key:  key,
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Leaf.Raw}),
	}, nil
}

// Pool returns a certificate pool holding the CA, for clients (tests) that
// trust it.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}
