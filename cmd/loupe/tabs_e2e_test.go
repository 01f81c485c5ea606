package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// tabsOrigin has a form, a help page and the form's answer.
func tabsOrigin() http.Handler {
	mux := http.NewServeMux()
	page := func(title, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1>%s</body></html>`, title, title, body)
		}
	}
	mux.Handle("GET /form", page("Form", `<form method="post" action="/done"><input id="city" name="city"><button id="send" type="submit">Send</button></form>`))
	mux.Handle("GET /help", page("Help", `<p>Opening hours.</p>`))
	mux.Handle("POST /done", page("Thanks", `<p>Received.</p>`))
	return mux
}

// TestFormInOtherTab: a visitor types into a form, opens another page of
// the site in a second tab, comes back and submits. The second tab's page
// view must not end the form's (each tab's pages carry the recorder's tab
// id), so no form_abandon is counted; before tab ids, it was.
func TestFormInOtherTab(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(tabsOrigin())
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	tabA := newBrowser(t, chromium)

	flush := chromedp.Evaluate[chromedp.Void](`window.__loupe.flush()`)
	// Polled on a timer, not on animation frames: a tab in the background
	// draws none.
	recording := chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)",
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))
	do(t, tabA, "type into the form", chromedp.Navigate(m.ProxyURL+"/form"), chromedp.WaitVisible(chromedp.CSS("#city")))
	if ok, err := chromedp.Run(tabA, recording); err != nil || !ok {
		t.Fatalf("recorder did not start: %v", err)
	}
	// The recorder notes a field's value when it changes (on blur).
	do(t, tabA, "type and upload", chromedp.SendKeys(chromedp.CSS("#city"), "Lyon"),
		chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.Sleep(200*time.Millisecond), flush)
	sess := waitSession(t, m.AdminURL, func(s uiSession) bool { return s.PageCount == 1 && s.InputCount > 0 })

	tabB, cancelB := chromedp.NewContext(tabA) // a second tab of the same browser: same cookies
	defer cancelB()
	if err := chromedp.Do(tabB); err != nil { // open the tab in tabB itself, not in a step's context
		t.Fatalf("open a second tab: %v", err)
	}
	do(t, tabB, "open another page in a second tab", chromedp.Navigate(m.ProxyURL+"/help"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if ok, err := chromedp.Run(tabB, recording); err != nil || !ok {
		t.Fatalf("recorder did not start in the second tab: %v", err)
	}
	do(t, tabB, "upload", flush)
	if s := waitSession(t, m.AdminURL, func(s uiSession) bool { return s.PageCount == 2 }); s.ID != sess.ID {
		t.Fatalf("the second tab started session %s, want the first tab's %s", s.ID, sess.ID)
	}

	do(t, tabA, "submit the form", chromedp.Click(chromedp.CSS("#send")), chromedp.WaitVisible(chromedp.CSS("p")))
	if ok, err := chromedp.Run(tabA, recording); err != nil || !ok {
		t.Fatalf("recorder did not start on the answer: %v", err)
	}
	do(t, tabA, "upload", flush)
	// The answer's page view ends the form's, in its tab, in the
	// transaction that counts it.
	s := waitSession(t, m.AdminURL, func(s uiSession) bool { return s.PageCount == 3 })
	t.Logf("session %s: %d pages, signals %v", s.ID, s.PageCount, s.Signals)
	if n := s.Signals["form_abandon"]; n != 0 {
		t.Errorf("form_abandon = %d for a form submitted after a page was opened in another tab; want 0", n)
	}
}

// waitSession waits up to 20 s for the only session to satisfy ok.
func waitSession(t *testing.T, admin string, ok func(uiSession) bool) uiSession {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []uiSession }
		getJSON(t, admin+"/api/sessions", &list)
		if len(list.Sessions) == 1 && ok(list.Sessions[0]) {
			return list.Sessions[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s, sessions: %+v", list.Sessions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
