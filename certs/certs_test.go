package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustCA makes a CA in a temporary folder.
func mustCA(tb testing.TB) (*CA, string) {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := InitCA(dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ca, dir
}

// named is a Source that tells which source answered.
type named string

func (n named) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &tls.Certificate{OCSPStaple: []byte(n)}, nil
}

func TestManagerPicksBySNI(t *testing.T) {
	var m Manager
	if !m.Empty() {
		t.Fatal("zero Manager is not empty")
	}
	if err := m.Add([]string{"Shop.Example.com", "shop.test."}, named("shop")); err != nil {
		t.Fatal(err)
	}
	if err := m.Add([]string{"*.example.com"}, named("wild")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sni, want string
	}{
		{"exact", "shop.example.com", "shop"},
		{"exact, other case and trailing dot", "SHOP.example.COM.", "shop"},
		{"second name", "shop.test", "shop"},
		{"wildcard", "blog.example.com", "wild"},
		{"wildcard covers one label only", "a.blog.example.com", ""},
		{"wildcard does not cover the apex", "example.com", ""},
		{"no SNI, no default", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
			if tc.want == "" {
				if !errors.Is(err, ErrNoCertificate) {
					t.Fatalf("got %v, %v; want ErrNoCertificate", c, err)
				}
				return
			}
			if err != nil || string(c.OCSPStaple) != tc.want {
				t.Fatalf("got %v, %v; want source %q", c, err, tc.want)
			}
		})
	}
	m.SetDefault(named("default"))
	for _, sni := range []string{"", "a.blog.example.com"} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil || string(c.OCSPStaple) != "default" {
			t.Errorf("SNI %q: got %v, %v; want the default", sni, c, err)
		}
	}
}

func TestManagerRejects(t *testing.T) {
	var m Manager
	if err := m.Add([]string{"a.test"}, named("a")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hosts []string
	}{
		{"duplicate", []string{"A.test"}},
		{"empty", []string{""}},
		{"port", []string{"b.test:443"}},
		{"inner wildcard", []string{"a.*.test"}},
		{"bare wildcard", []string{"*."}},
	} {
		if err := m.Add(tc.hosts, named("b")); err == nil {
			t.Errorf("%s: Add(%q) succeeded", tc.name, tc.hosts)
		}
	}
}

func TestManagerTLSConfig(t *testing.T) {
	var m Manager
	m.SetDefault(named("x"))
	if got := m.TLSConfig().NextProtos; !slices.Equal(got, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos %q, want h2 and http/1.1", got)
	}
	a, err := NewACME(ACMEConfig{Hosts: []string{"shop.example"}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add([]string{"shop.example"}, a); err != nil {
		t.Fatal(err)
	}
	if got := m.TLSConfig().NextProtos; !slices.Contains(got, "acme-tls/1") || got[0] != "h2" {
		t.Errorf("with ACME, NextProtos %q, want h2 first and acme-tls/1", got)
	}
}

// writePair writes a self-signed pair for name to dir/name.{crt,key}.
func writePair(tb testing.TB, dir, name string) (certFile, keyFile string, c *tls.Certificate) {
	tb.Helper()
	sub := filepath.Join(tb.TempDir(), name)
	c, err := SelfSigned(sub, []string{name}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	for src, dst := range map[string]string{SelfSignedCertFile: certFile, SelfSignedKeyFile: keyFile} {
		b, err := os.ReadFile(filepath.Join(sub, src))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return certFile, keyFile, c
}

func TestKeyPairReloads(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeyPair(filepath.Join(dir, "none.crt"), filepath.Join(dir, "none.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing files: got %v, want ErrNotExist", err)
	}
	certFile, keyFile, first := writePair(t, dir, "one.test")
	k, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	k.Log = slog.New(slog.NewTextHandler(&logged, nil))
	got, _ := k.GetCertificate(nil)
	if logged.Len() != 0 {
		t.Errorf("unchanged files logged %q", logged.String())
	}
	if got.Leaf.DNSNames[1] != first.Leaf.DNSNames[1] {
		t.Fatalf("got %v, want one.test", got.Leaf.DNSNames)
	}

	// A renewal writes a new pair; set distinct times so that coarse
	// file-system clocks cannot hide the change.
	_, _, second := writePair(t, dir, "two.test")
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)
	got, _ = k.GetCertificate(nil)
	if !slices.Contains(got.Leaf.DNSNames, "two.test") || !got.Leaf.Equal(second.Leaf) {
		t.Fatalf("after renewal got %v, want two.test", got.Leaf.DNSNames)
	}
	if k.Err() != nil {
		t.Fatal(k.Err())
	}
	if !strings.Contains(logged.String(), "new pair loaded") {
		t.Errorf("renewal logged %q, want it said", logged.String())
	}
	logged.Reset()

	// A half-written renewal (a key not matching the certificate) keeps the
	// last good pair and says why.
	_, otherKey, _ := writePair(t, t.TempDir(), "three.test")
	b, _ := os.ReadFile(otherKey)
	os.WriteFile(keyFile, b, 0o600)
	even := later.Add(time.Minute)
	os.Chtimes(keyFile, even, even)
	got, err = k.GetCertificate(nil)
	if err != nil || !got.Leaf.Equal(second.Leaf) {
		t.Fatalf("after a bad renewal got %v, %v; want the last good pair", got.Leaf.DNSNames, err)
	}
	if k.Err() == nil {
		t.Fatal("Err() is nil after a bad renewal")
	}
	// Said once, not at every handshake.
	k.GetCertificate(nil)
	if n := strings.Count(logged.String(), "do not load"); n != 1 {
		t.Errorf("a bad renewal logged %d times, want once: %q", n, logged.String())
	}
}

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c, err := SelfSigned(dir, []string{"shop.test", "shop.test:8443", "10.1.2.3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost", "shop.test"}) {
		t.Errorf("DNS names %q, want localhost and shop.test", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 3 {
		t.Errorf("IP addresses %v, want 127.0.0.1, ::1 and 10.1.2.3", leaf.IPAddresses)
	}
	fi, err := os.Stat(filepath.Join(dir, SelfSignedKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// A browser that trusts the certificate accepts it for each name.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"shop.test", "localhost", "127.0.0.1", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}

	again, err := SelfSigned(dir, []string{"shop.test"}, nil)
	if err != nil || !again.Leaf.Equal(leaf) {
		t.Fatalf("second start made a new certificate (%v): a browser's exception would be lost", err)
	}
	more, err := SelfSigned(dir, []string{"shop.test", "blog.test"}, nil)
	if err != nil || more.Leaf.Equal(leaf) || !slices.Contains(more.Leaf.DNSNames, "blog.test") {
		t.Fatalf("a new host did not make a new certificate: %v %v", err, more.Leaf.DNSNames)
	}
	soon := func() time.Time { return time.Now().Add(340 * 24 * time.Hour) }
	renewed, err := SelfSigned(dir, []string{"shop.test", "blog.test"}, soon)
	if err != nil || renewed.Leaf.Equal(more.Leaf) {
		t.Fatalf("a certificate near its end was kept (%v)", err)
	}
}

func TestCA(t *testing.T) {
	ca, dir := mustCA(t)
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero {
		t.Error("CA certificate is not a CA with path length 0")
	}
	if k, ok := ca.Key.Public().(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.Key.Public())
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if _, err := InitCA(dir, nil); !errors.Is(err, ErrCAExists) {
		t.Fatalf("second InitCA: got %v, want ErrCAExists", err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) || string(loaded.PEM) != string(ca.PEM) {
		t.Fatalf("LoadCA: %v, or a different CA", err)
	}
	if _, err := LoadCA(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadCA of an empty folder: got %v, want ErrNotExist", err)
	}
	os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)
	if _, err := LoadCA(dir); err == nil {
		t.Fatal("LoadCA accepted a key readable by others")
	}
}

func TestMinterLeaf(t *testing.T) {
	ca, _ := mustCA(t)
	now := time.Now()
	clock := func() time.Time { return now }
	m, err := NewMinter(ca, MinterConfig{Validity: 24 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, host := range []string{"shop.example", "127.0.0.1", "[::1]"} {
		c, err := m.Leaf(host)
		if err != nil {
			t.Fatal(err)
		}
		inter := x509.NewCertPool()
		if len(c.Certificate) != 2 {
			t.Fatalf("%s: chain of %d, want leaf and CA", host, len(c.Certificate))
		}
		name := host
		if ip := net.ParseIP(host[1 : len(host)-1]); host[0] == '[' && ip != nil {
			name = ip.String()
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool(), Intermediates: inter, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
		if d := c.Leaf.NotAfter.Sub(now); d > 24*time.Hour {
			t.Errorf("%s: valid for %v, want at most a day", host, d)
		}
	}
	if n := m.Minted(); n != 3 {
		t.Fatalf("minted %d for 3 hosts", n)
	}
	if _, err := m.Leaf("Shop.Example."); err != nil || m.Minted() != 3 {
		t.Fatalf("the same host again minted anew (%d, %v)", m.Minted(), err)
	}
	// Past half its life a leaf is replaced.
	now = now.Add(13 * time.Hour)
	if _, err := m.Leaf("shop.example"); err != nil || m.Minted() != 4 {
		t.Fatalf("an aging leaf was kept (%d minted, %v)", m.Minted(), err)
	}
}

func TestMinterCoalesces(t *testing.T) {
	ca, _ := mustCA(t)
	m, err := NewMinter(ca, MinterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 32
	var wg sync.WaitGroup
	start := make(chan struct{})
	certs := make([]*tls.Certificate, n)
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := m.Leaf("busy.example")
			if err != nil {
				t.Error(err)
			}
			certs[i] = c
		})
	}
	close(start)
	wg.Wait()
	if got := m.Minted(); got != 1 {
		t.Fatalf("%d concurrent misses minted %d leaves, want 1", n, got)
	}
	for _, c := range certs[1:] {
		if c != certs[0] {
			t.Fatal("callers got different leaves")
		}
	}
}
