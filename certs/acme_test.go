package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestACMEHostPolicy(t *testing.T) {
	a, err := NewACME(ACMEConfig{Hosts: []string{"Shop.Example"}, Email: "ops@shop.example", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.hostPolicy(context.Background(), "shop.example"); err != nil {
		t.Errorf("configured host refused: %v", err)
	}
	if err := a.hostPolicy(context.Background(), "evil.example"); err == nil {
		t.Error("unconfigured host allowed")
	}
	if err := a.AddHosts("blog.example"); err != nil {
		t.Fatal(err)
	}
	if err := a.hostPolicy(context.Background(), "blog.example"); err != nil {
		t.Errorf("added host refused: %v", err)
	}
	if err := a.AddHosts("*.example"); err == nil {
		t.Error("wildcard accepted")
	}
	if _, err := NewACME(ACMEConfig{Hosts: []string{"shop.example"}}); err == nil {
		t.Error("no cache folder accepted")
	}
	if a.m.Email != "ops@shop.example" || a.m.Client != nil {
		t.Errorf("email %q, client %v; want the email and Let's Encrypt", a.m.Email, a.m.Client)
	}
	b, _ := NewACME(ACMEConfig{CacheDir: t.TempDir(), DirectoryURL: "https://acme.test/dir"})
	if b.m.Client == nil || b.m.Client.DirectoryURL != "https://acme.test/dir" {
		t.Error("DirectoryURL not used")
	}

	// A handshake naming an unconfigured host fails before any CA is
	// asked (there is no network here: asking would fail differently).
	_, err = a.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example", CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("not configured")) {
		t.Fatalf("unconfigured SNI: got %v, want the host policy's refusal", err)
	}
}

// TestACMECache: a certificate in the cache folder (as autocert stores
// one: key then chain, under the host's name) is served with no CA.
func TestACMECache(t *testing.T) {
	dir := t.TempDir()
	c, err := SelfSigned(filepath.Join(t.TempDir(), "x"), []string{"shop.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	if err := os.WriteFile(filepath.Join(dir, "shop.example"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewACME(ACMEConfig{Hosts: []string{"shop.example"}, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "shop.example", CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
	if err != nil || !got.Leaf.Equal(c.Leaf) {
		t.Fatalf("got %v, %v; want the cached certificate", got, err)
	}
}

func TestACMEHTTPHandler(t *testing.T) {
	a, err := NewACME(ACMEConfig{Hosts: []string{"shop.example"}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := a.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	for _, tc := range []struct {
		name, host, path string
		want             int
	}{
		{"site request goes to the fallback", "shop.example", "/cart", http.StatusTeapot},
		{"challenge for an unconfigured host", "evil.example", "/.well-known/acme-challenge/tok", http.StatusForbidden},
		{"unknown token", "shop.example", "/.well-known/acme-challenge/tok", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "http://"+tc.host+tc.path, nil)
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("got %d, want %d", rec.Code, tc.want)
			}
		})
	}
}
