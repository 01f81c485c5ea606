package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// KeyPair is a certificate and key kept in PEM files, such as a
// certificate an operator renews with another tool. Each handshake checks
// the files' size and modification time and loads them again when either
// changed; until a changed pair loads (a renewal tool may write the
// certificate before the key), the last good pair is served.
type KeyPair struct {
	// Log, when set, hears of each change: a changed pair loaded, or the
	// files failing to load (once per failure, not per handshake).
	Log *slog.Logger

	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	lastErr error
	// failed is the stamp of files that did not load, so that a broken
	// pair is not parsed again on every handshake until they change.
	failed [2]fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

var _ Source = (*KeyPair)(nil)

// LoadKeyPair loads a PEM certificate (with its chain) and key. It fails
// at once when they do not load, so that a wrong path is a start-up error.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// reload loads the pair if the files changed. Called with mu held, or
// before k is shared.
func (k *KeyPair) reload() error {
	cs, err := stampOf(k.certFile)
	if err != nil {
		return fmt.Errorf("certificate file: %w", err)
	}
	ks, err := stampOf(k.keyFile)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	stamp := [2]fileStamp{cs, ks}
	if k.cert != nil && stamp == k.stamp {
		return nil
	}
	if k.cert != nil && stamp == k.failed {
		return k.lastErr
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		k.failed = stamp
		return fmt.Errorf("load %s and %s: %w", filepath.Base(k.certFile), filepath.Base(k.keyFile), err)
	}
	if k.cert != nil && k.Log != nil {
		k.Log.Info("certificate files changed; new pair loaded", "cert", k.certFile, "names", cert.Leaf.DNSNames, "expires", cert.Leaf.NotAfter)
	}
	k.cert, k.stamp = &cert, stamp
	return nil
}

// GetCertificate returns the pair, loading it again if its files changed.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.reload()
	if err != nil && k.Log != nil && (k.lastErr == nil || err.Error() != k.lastErr.Error()) {
		k.Log.Warn("certificate files do not load; serving the last good pair", "cert", k.certFile, "key", k.keyFile, "err", err)
	}
	k.lastErr = err
	return k.cert, nil
}

// Err returns why the files last failed to load again, or nil if the
// served pair is the files' current content.
func (k *KeyPair) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// writeFileAtomic writes data to path so that a crash leaves the old file
// or the new one, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
