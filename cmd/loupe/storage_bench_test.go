package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/loupe-dev/loupe/demo"
	"github.com/loupe-dev/loupe/injector/recorder"
	"github.com/loupe-dev/loupe/store"
)

// BenchmarkSessionStorage records a scripted one-minute visit to the demo
// shop in real Chromium (pages, mouse movement, scrolling, typing) and
// reports what a minute of session costs the store: raw event bytes as the
// recorder sent them and bytes stored after compression. Run it with
//
//	go test ./cmd/loupe -run '^$' -bench SessionStorage -benchtime 1x
func BenchmarkSessionStorage(b *testing.B) {
	path, err := exec.LookPath("chromium")
	if err != nil || recorder.JS() == nil {
		b.Skip("needs chromium and built bundles (make build)")
	}
	for i := 0; i < b.N; i++ {
		origin := httptest.NewServer(demo.Handler())
		m := &Main{
			Config: Config{Upstream: origin.URL, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Data: b.TempDir()},
			Logger: slog.New(slog.DiscardHandler),
		}
		if err := m.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		ctx := newBrowser(b, path)
		visit := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(m.ProxyURL + "/"),
			chromedp.WaitVisible(chromedp.CSS("h1")),
		}
		// Wander over the home page for 20 s: mouse moves and scrolls.
		for s := 0; s < 40; s++ {
			x, y := float64(100+(s*37)%1000), float64(100+(s*53)%600)
			visit = append(visit,
				chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y),
				chromedp.Evaluate[chromedp.Void](fmt.Sprintf("window.scrollTo(0, %d)", (s%10)*120)),
				chromedp.Sleep(500*time.Millisecond))
		}
		visit = append(visit,
			chromedp.Click(chromedp.CSS(`a[href^="/product/"]`)),
			chromedp.WaitVisible(chromedp.CSS("#add-to-cart")),
			chromedp.Sleep(5*time.Second),
			chromedp.Click(chromedp.CSS("#add-to-cart")),
			chromedp.Sleep(5*time.Second),
			chromedp.Navigate(m.ProxyURL+"/cart"),
			chromedp.Sleep(5*time.Second),
			chromedp.Navigate(m.ProxyURL+"/checkout"),
			chromedp.WaitVisible(chromedp.CSS("#fullname")),
			chromedp.SendKeys(chromedp.CSS("#fullname"), "Ada Lovelace"),
			chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.test"),
			chromedp.SendKeys(chromedp.CSS("#notes"), "Please ring twice, the bell is quiet."),
			chromedp.Sleep(10*time.Second),
			chromedp.Click(chromedp.CSS("#place-order")),
			chromedp.Sleep(5*time.Second),
			chromedp.Navigate("about:blank"),
			chromedp.Sleep(2*time.Second),
		)
		if err := chromedp.Do(ctx, visit...); err != nil {
			b.Fatal(err)
		}
		list, err := m.db.Sessions(context.Background(), store.SessionFilter{})
		if err != nil || len(list) != 1 {
			b.Fatalf("got %d sessions (%v), want 1", len(list), err)
		}
		s := list[0]
		minutes := s.Duration().Minutes()
		b.ReportMetric(float64(s.Bytes)/minutes, "raw-B/min")
		b.ReportMetric(float64(s.StoredBytes)/minutes, "stored-B/min")
		b.ReportMetric(float64(s.Bytes)/float64(s.StoredBytes), "ratio")
		b.ReportMetric(s.Duration().Seconds(), "session-s")
		m.Close()
		origin.Close()
	}
}
