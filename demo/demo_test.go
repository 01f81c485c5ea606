package demo

import (
	"bytes"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// serve runs one request through a fresh Handler.
func serve(tb testing.TB, h http.Handler, method, target string, body string, header http.Header) *httptest.ResponseRecorder {
	tb.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// mustParse parses an HTML response body.
func mustParse(tb testing.TB, body []byte) *html.Node {
	tb.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("parse HTML: %v", err)
	}
	return doc
}

// findAll returns the elements under n for which match is true, in document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// headings returns the text of every <h1> in the page.
func headings(tb testing.TB, body []byte) []string {
	tb.Helper()
	var out []string
	for _, h := range findAll(mustParse(tb, body), func(n *html.Node) bool { return n.Data == "h1" }) {
		out = append(out, text(h))
	}
	return out
}

func TestPages(t *testing.T) {
	type page struct {
		name        string
		method      string
		path        string
		wantStatus  int
		wantHeading string
	}
	tests := []page{
		{"home", "GET", "/", http.StatusOK, HomeHeading},
		{"cart", "GET", "/cart", http.StatusOK, CartHeading},
		{"checkout", "GET", "/checkout", http.StatusOK, CheckoutHeading},
		{"place order", "POST", "/checkout", http.StatusOK, ThankYouHeading},
		{"unknown path", "GET", "/no/such/page", http.StatusNotFound, NotFoundHeading},
		{"unknown product", "GET", "/product/tea", http.StatusNotFound, NotFoundHeading},
		{"post to home", "POST", "/", http.StatusNotFound, NotFoundHeading},
		{"missing static file", "GET", "/static/nope.css", http.StatusNotFound, NotFoundHeading},
	}
	for _, p := range Products() {
		tests = append(tests, page{"product " + p.ID, "GET", "/product/" + p.ID, http.StatusOK, p.Name})
	}
	h := Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, tt.method, tt.path, "", nil)
			if got := w.Code; got != tt.wantStatus {
				t.Errorf("status: got %d, want %d", got, tt.wantStatus)
			}
			if got, want := w.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
				t.Errorf("Content-Type: got %q, want %q", got, want)
			}
			got := headings(t, w.Body.Bytes())
			if len(got) != 1 || got[0] != tt.wantHeading {
				t.Errorf("<h1> texts: got %q, want [%q]", got, tt.wantHeading)
			}
			if !strings.Contains(w.Body.String(), ShopName) {
				t.Errorf("body does not name the shop %q", ShopName)
			}
		})
	}
}

func TestHeadingsDistinct(t *testing.T) {
	seen := make(map[string]string)
	all := map[string]string{
		"HomeHeading": HomeHeading, "CartHeading": CartHeading,
		"CheckoutHeading": CheckoutHeading, "ThankYouHeading": ThankYouHeading,
		"NotFoundHeading": NotFoundHeading,
	}
	for _, p := range Products() {
		all["product "+p.ID] = p.Name
	}
	for name, h := range all {
		if other, ok := seen[h]; ok {
			t.Errorf("heading %q: got it for both %s and %s, want distinct", h, name, other)
		}
		seen[h] = name
	}
}

func TestHomeListsProducts(t *testing.T) {
	w := serve(t, Handler(), "GET", "/", "", nil)
	doc := mustParse(t, w.Body.Bytes())
	for _, p := range Products() {
		links := findAll(doc, func(n *html.Node) bool {
			href, _ := attr(n, "href")
			return n.Data == "a" && href == "/product/"+p.ID
		})
		if len(links) == 0 {
			t.Errorf("home page: got no link to /product/%s, want one", p.ID)
		}
		imgs := findAll(doc, func(n *html.Node) bool {
			src, _ := attr(n, "src")
			return n.Data == "img" && src == p.Image
		})
		if len(imgs) == 0 {
			t.Errorf("home page: got no <img src=%q>, want one", p.Image)
		}
	}
	if got := len(Products()); got < 4 {
		t.Errorf("catalogue size: got %d, want at least 4", got)
	}
	for _, id := range []string{"promo", "recently-viewed", "cart-count"} {
		if got := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id }); len(got) != 1 {
			t.Errorf("home page: got %d elements with id %q, want 1", len(got), id)
		}
	}
}

func TestProductPageHasCartControls(t *testing.T) {
	p := Products()[0]
	w := serve(t, Handler(), "GET", "/product/"+p.ID, "", nil)
	doc := mustParse(t, w.Body.Bytes())
	for _, id := range []string{"quantity", "add-to-cart", "cart-count", "cart-status"} {
		if got := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id }); len(got) != 1 {
			t.Errorf("product page: got %d elements with id %q, want 1", len(got), id)
		}
	}
	if !strings.Contains(w.Body.String(), p.Price()) {
		t.Errorf("product page: got no price %q", p.Price())
	}
}

func TestCartLinksToCheckout(t *testing.T) {
	w := serve(t, Handler(), "GET", "/cart", "", nil)
	links := findAll(mustParse(t, w.Body.Bytes()), func(n *html.Node) bool {
		href, _ := attr(n, "href")
		return n.Data == "a" && href == "/checkout"
	})
	if len(links) == 0 {
		t.Error("cart page: got no link to /checkout, want one")
	}
}

func TestCheckoutForm(t *testing.T) {
	w := serve(t, Handler(), "GET", "/checkout", "", nil)
	doc := mustParse(t, w.Body.Bytes())

	forms := findAll(doc, func(n *html.Node) bool { return n.Data == "form" })
	if len(forms) != 1 {
		t.Fatalf("forms: got %d, want 1", len(forms))
	}
	form := forms[0]
	for key, want := range map[string]string{"action": "/checkout", "method": "post"} {
		if got, _ := attr(form, key); got != want {
			t.Errorf("form %s: got %q, want %q", key, got, want)
		}
	}

	tests := []struct {
		name  string
		tag   string
		attrs map[string]string // besides name and id, which must equal name
	}{
		{"fullname", "input", map[string]string{"autocomplete": "name"}},
		{"email", "input", map[string]string{"type": "email"}},
		{"password", "input", map[string]string{"type": "password"}},
		{"cardnumber", "input", map[string]string{"autocomplete": "cc-number", "inputmode": "numeric"}},
		{"cc-exp", "input", map[string]string{"autocomplete": "cc-exp"}},
		{"cvc", "input", map[string]string{"autocomplete": "cc-csc"}},
		{"notes", "textarea", nil},
		{"shipping", "select", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := findAll(form, func(n *html.Node) bool {
				v, _ := attr(n, "name")
				return v == tt.name
			})
			if len(fields) != 1 {
				t.Fatalf("fields named %q in the form: got %d, want 1", tt.name, len(fields))
			}
			f := fields[0]
			if got := f.Data; got != tt.tag {
				t.Errorf("tag: got <%s>, want <%s>", got, tt.tag)
			}
			if got, _ := attr(f, "id"); got != tt.name {
				t.Errorf("id: got %q, want %q", got, tt.name)
			}
			for key, want := range tt.attrs {
				if got, _ := attr(f, key); got != want {
					t.Errorf("%s: got %q, want %q", key, got, want)
				}
			}
			labels := findAll(doc, func(n *html.Node) bool {
				v, _ := attr(n, "for")
				return n.Data == "label" && v == tt.name
			})
			if len(labels) != 1 {
				t.Errorf("labels for %q: got %d, want 1", tt.name, len(labels))
			}
		})
	}
	if !strings.Contains(w.Body.String(), "create an account") {
		t.Error(`checkout page: got no "create an account" next to the password, want it`)
	}
}

func TestPlaceOrderDoesNotEcho(t *testing.T) {
	const marker = "ZQX-marker-7731"
	form := url.Values{}
	for _, name := range []string{"fullname", "email", "password", "cardnumber", "cc-exp", "cvc", "notes", "shipping"} {
		form.Set(name, marker+"-"+name)
	}
	w := serve(t, Handler(), "POST", "/checkout", form.Encode(), nil)
	if got, want := w.Code, http.StatusOK; got != want {
		t.Errorf("status: got %d, want %d", got, want)
	}
	if got := headings(t, w.Body.Bytes()); len(got) != 1 || got[0] != ThankYouHeading {
		t.Errorf("<h1> texts: got %q, want [%q]", got, ThankYouHeading)
	}
	if strings.Contains(w.Body.String(), marker) {
		t.Errorf("body: got the submitted marker %q echoed, want it absent", marker)
	}
	for k, vs := range w.Header() {
		for _, v := range vs {
			if strings.Contains(v, marker) {
				t.Errorf("header %s: got the submitted marker echoed, want it absent", k)
			}
		}
	}
}

func TestStatic(t *testing.T) {
	tests := []struct {
		name         string
		path         string
		wantType     string
		wantContains []string
	}{
		{"stylesheet", "/static/shop.css", "text/css; charset=utf-8",
			[]string{"@font-face", `font-family: "Shop Display"`, `url("/static/fonts/shop.woff2")`, `"Shop Display", `}},
		{"script", "/static/shop.js", "text/javascript; charset=utf-8",
			[]string{"localStorage", "setInterval"}},
		{"logo", "/static/img/logo.png", "image/png", []string{"\x89PNG"}},
	}
	for _, p := range Products() {
		tests = append(tests, struct {
			name         string
			path         string
			wantType     string
			wantContains []string
		}{"image " + p.ID, p.Image, "image/svg+xml", []string{"<svg"}})
	}
	h := Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, "GET", tt.path, "", nil)
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if got := w.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type: got %q, want %q", got, tt.wantType)
			}
			if got, want := w.Header().Get("Cache-Control"), "public, max-age=300"; got != want {
				t.Errorf("Cache-Control: got %q, want %q", got, want)
			}
			if w.Header().Get("Last-Modified") == "" {
				t.Error("Last-Modified: got none, want one")
			}
			for _, s := range tt.wantContains {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("body: got no %q, want it", s)
				}
			}

			etag := w.Header().Get("ETag")
			if etag == "" {
				t.Fatal("ETag: got none, want one")
			}
			cond := serve(t, h, "GET", tt.path, "", http.Header{"If-None-Match": {etag}})
			if got, want := cond.Code, http.StatusNotModified; got != want {
				t.Errorf("If-None-Match %s: got status %d, want %d", etag, got, want)
			}
			since := serve(t, h, "GET", tt.path, "", http.Header{"If-Modified-Since": {w.Header().Get("Last-Modified")}})
			if got, want := since.Code, http.StatusNotModified; got != want {
				t.Errorf("If-Modified-Since: got status %d, want %d", got, want)
			}
		})
	}
}

func TestLogoDecodes(t *testing.T) {
	w := serve(t, Handler(), "GET", "/static/img/logo.png", "", nil)
	img, err := png.Decode(w.Body)
	if err != nil {
		t.Fatalf("decode logo: %v", err)
	}
	if got, want := img.Bounds().Dx(), logoSize; got != want {
		t.Errorf("logo width: got %d, want %d", got, want)
	}
	// The centre of the lens is the bean, the corner is transparent: a
	// blank or uniform image would fail one of these.
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Errorf("logo corner alpha: got %d, want 0", a)
	}
	if _, _, _, a := img.At(logoSize/2, logoSize/2).RGBA(); a != 0xffff {
		t.Errorf("logo centre alpha: got %d, want opaque", a)
	}
}

// TestFont checks that the font is served when the build copied it in and
// 404s when it did not; both are valid builds.
func TestFont(t *testing.T) {
	const path = "/static/fonts/shop.woff2"
	_, err := fs.Stat(files, strings.TrimPrefix(path, "/"))
	present := err == nil
	w := serve(t, Handler(), "GET", path, "", nil)
	if present {
		if got, want := w.Code, http.StatusOK; got != want {
			t.Errorf("status with the font embedded: got %d, want %d", got, want)
		}
		if got, want := w.Header().Get("Content-Type"), "font/woff2"; got != want {
			t.Errorf("Content-Type: got %q, want %q", got, want)
		}
		return
	}
	if got, want := w.Code, http.StatusNotFound; got != want {
		t.Errorf("status without the font: got %d, want %d", got, want)
	}
}

func TestPagesReferenceExistingAssets(t *testing.T) {
	h := Handler()
	pages := []string{"/", "/cart", "/checkout", "/no/such/page"}
	for _, p := range Products() {
		pages = append(pages, "/product/"+p.ID)
	}
	for _, page := range pages {
		w := serve(t, h, "GET", page, "", nil)
		refs := findAll(mustParse(t, w.Body.Bytes()), func(n *html.Node) bool {
			return n.Data == "img" || n.Data == "script" || n.Data == "link"
		})
		for _, n := range refs {
			ref, ok := attr(n, "src")
			if !ok {
				ref, _ = attr(n, "href")
			}
			if !strings.HasPrefix(ref, "/static/") {
				continue
			}
			if got := serve(t, h, "GET", ref, "", nil).Code; got != http.StatusOK {
				t.Errorf("%s references %s: got status %d, want %d", page, ref, got, http.StatusOK)
			}
		}
	}
}

func TestPrice(t *testing.T) {
	tests := []struct {
		cents int
		want  string
	}{
		{1450, "$14.50"}, {1805, "$18.05"}, {6900, "$69.00"}, {99, "$0.99"},
	}
	for _, tt := range tests {
		if got := (Product{PriceCents: tt.cents}).Price(); got != tt.want {
			t.Errorf("Price(%d): got %q, want %q", tt.cents, got, tt.want)
		}
	}
}
