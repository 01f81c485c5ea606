package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestClickTargetsInChromium: the recorder describes each clicked element
// (its "loupe/click" event) as the timeline shows it: the interactive
// ancestor's tag, id, classes and text, masked text as stars, form fields
// without their value; and inputs left unsubmitted when the page is left
// are a form_abandon.
func TestClickTargetsInChromium(t *testing.T) {
	chromium := requireBrowser(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Targets</title>
<style>button,a,input{display:block;margin:20px;padding:10px}</style></head><body>
<button id="buy" class="btn primary rr-ignore"><span id="label">Add   to cart</span></button>
<a href="#who" id="who" class="rr-mask">Jane Secret</a>
<form action="/next"><input id="pw" type="password" value="hunter2"><input id="email" type="email" value="jane@example.com"><button id="send">Send</button></form>
</body></html>`)
	}))
	defer origin.Close()
	m := startLoupe(t, origin.URL)
	ctx := newBrowser(t, chromium)

	do(t, ctx, "open", chromedp.Navigate(m.ProxyURL+"/"), chromedp.WaitVisible(chromedp.CSS("#buy")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!(window.__loupe && window.__loupe.pv)", chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("recorder did not start: %v", err)
	}
	do(t, ctx, "clicks",
		chromedp.Click(chromedp.CSS("#label")), chromedp.Sleep(300*time.Millisecond),
		chromedp.Click(chromedp.CSS("#who")), chromedp.Sleep(300*time.Millisecond),
		chromedp.Click(chromedp.CSS("#pw")), chromedp.Sleep(300*time.Millisecond),
		chromedp.SendKeys(chromedp.CSS("#email"), "x"), chromedp.Sleep(300*time.Millisecond),
		// rrweb records the input once the field loses focus.
		chromedp.Click(chromedp.CSS("#who")), chromedp.Sleep(300*time.Millisecond),
		// Leaving with the form filled in and not sent.
		chromedp.Navigate("about:blank"))

	type entry struct {
		Kind   string `json:"kind"`
		Target string `json:"target"`
	}
	var clicks []string
	var tl []entry
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list struct{ Sessions []uiSession }
		getJSON(t, m.AdminURL+"/api/sessions", &list)
		clicks = nil
		if len(list.Sessions) == 1 {
			tl = nil
			getJSON(t, m.AdminURL+"/api/sessions/"+list.Sessions[0].ID+"/timeline", &tl)
			abandoned := false
			for _, e := range tl {
				switch e.Kind {
				case "click":
					clicks = append(clicks, e.Target)
				case "form_abandon":
					abandoned = true
				}
			}
			if len(clicks) == 4 && abandoned {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: clicks %q, timeline %+v; want 4 clicks and a form_abandon", clicks, tl)
		}
		time.Sleep(250 * time.Millisecond)
	}
	want := []string{
		`button#buy.btn.primary "Add to cart"`, // rr- classes left out, spaces collapsed
		`a#who "**** ******"`,
		`input#pw[type=password]`, // rrweb records no click there: the recorder's event stands for it
		`a#who "**** ******"`,     // typing (SendKeys focuses without a click) is no click
	}
	if strings.Join(clicks, "\n") != strings.Join(want, "\n") {
		t.Errorf("click targets:\n%s\nwant\n%s", strings.Join(clicks, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range tl {
		if strings.Contains(e.Target, "hunter2") || strings.Contains(e.Target, "jane") || strings.Contains(e.Target, "Secret") {
			t.Errorf("timeline entry %+v leaks a value or masked text", e)
		}
	}
}
