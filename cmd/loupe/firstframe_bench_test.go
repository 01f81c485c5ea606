package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/loupe-dev/loupe/replayer"
	"github.com/loupe-dev/loupe/replayer/ui"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/sqlite"
	"github.com/loupe-dev/loupe/store/storetest"
)

// BenchmarkPlayerFirstFrame30Min measures the player's time to first frame
// for a 30-minute session: from navigating to /sessions/{id} in headless
// Chromium until the replay iframe shows the recorded page. The session is
// storetest.Recording with 10 page loads of 36 batches (about 5 s of
// activity each: 360 batches, ~30 minutes), in SQLite behind a
// replayer.Server. Reported: first-frame-ms per load, and the size of the
// session's events as served (raw-MB).
//
//	go test ./cmd/loupe -run '^$' -bench PlayerFirstFrame -benchtime 5x
func BenchmarkPlayerFirstFrame30Min(b *testing.B) {
	path, err := exec.LookPath("chromium")
	if err != nil || !ui.Built() {
		b.Skip("needs chromium and the UI bundle (make build)")
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "loupe.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	const id = "thirty-minutes"
	batches := storetest.Recording(id, 10, 36)
	var raw int
	for _, bt := range batches {
		raw += len(bt.Events)
		if err := db.AppendBatch(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	if d := time.Duration(batches[len(batches)-1].LastTS-batches[0].FirstTS) * time.Millisecond; d < 25*time.Minute {
		b.Fatalf("synthetic session lasts %v, want about 30 minutes", d)
	}
	s, err := replayer.New(replayer.Config{Store: db, UI: ui.FS(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)

	bctx := newBrowser(b, path)
	hash, _ := bcrypt.GenerateFromPassword([]byte("bench password"), bcrypt.MinCost)
	if err := db.AddUser(ctx, &store.User{Name: "bench", Role: store.RoleViewer, PasswordHash: string(hash)}); err != nil {
		b.Fatal(err)
	}
	browserLogin(b, bctx, srv.URL, "bench", "bench password")
	// The page's console, for the failure message.
	var mu sync.Mutex
	var console []string
	go func() {
		for msg, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, string(msg.Type)+": "+msg.Text)
			mu.Unlock()
		}
	}()
	page := fmt.Sprintf("%s/sessions/%s?t=0", srv.URL, id)
	// The first card of the recorded page's product grid, inside the
	// replay iframe.
	frame := `(() => {
		const f = document.querySelector('.replayer-wrapper iframe');
		const d = f && f.contentDocument;
		return !!(d && d.body && d.body.querySelector('*'));
	})()`
	load := func() time.Duration {
		start := time.Now()
		if err := chromedp.Do(bctx, chromedp.Navigate(page)); err != nil {
			b.Fatal(err)
		}
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](frame, chromedp.WithPollingInterval(5*time.Millisecond),
			chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			state, serr := chromedp.Run(bctx, chromedp.Evaluate[string](`(() => {
				const f = document.querySelector('iframe');
				return document.body.innerText.slice(0, 500) + '\n--- iframe: ' +
					(f ? f.outerHTML.slice(0, 300) + ' doc:' + (f.contentDocument && f.contentDocument.documentElement ? f.contentDocument.documentElement.outerHTML.slice(0, 500) : 'null') : 'none');
			})()`))
			mu.Lock()
			defer mu.Unlock()
			b.Fatalf("no first frame: %v\npage: %s %v\nconsole: %q", err, state, serr, console)
		}
		return time.Since(start)
	}
	load() // warm the browser's cache of the UI bundle, like a returning user
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		total += load()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "first-frame-ms")
	b.ReportMetric(float64(raw)/1e6, "raw-MB")
}
