// Package demo is the origin site behind `loupe demo`: a small coffee shop,
// "Loupe Coffee Supply", that a newcomer can browse with Loupe in front of it
// and that the end-to-end tests drive in headless Chromium.
//
// The shop is built to exercise what a session recorder has to capture:
// script-driven DOM changes (a rotating promo banner, a "recently viewed"
// list, a cart counter and a cart rendered from localStorage), a checkout
// form full of sensitive inputs (name, email, password, card number, expiry,
// CVC) plus a textarea and a select, a web font, SVG images and a PNG made
// at start-up. Nothing a visitor submits is stored or echoed back.
//
// Every page carries a distinct <h1>; the exported Heading constants and
// [Products] let tests find them without copying strings.
package demo

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

// Headings of the fixed pages, each shown once in the page's <h1>. A product
// page's heading is its [Product.Name].
const (
	HomeHeading     = "Fresh roasts, delivered"
	CartHeading     = "Your cart"
	CheckoutHeading = "Checkout"
	ThankYouHeading = "Thank you for your order"
	NotFoundHeading = "Page not found"
)

// ShopName is the shop's name, shown in every page's header and title.
const ShopName = "Loupe Coffee Supply"

//go:embed static templates
var files embed.FS

// Product is one item of the demo catalogue, shown at /product/{ID}.
type Product struct {
	ID          string // URL slug, e.g. "house-blend"
	Name        string // also the product page's heading
	PriceCents  int    // price in US cents
	Image       string // URL path of the product's SVG under /static/img/
	Summary     string // one line, shown on the home page's card
	Description string // a paragraph, shown on the product page
}

// Price formats PriceCents as dollars, e.g. "$14.50".
func (p Product) Price() string {
	return "$" + strconv.Itoa(p.PriceCents/100) + "." + twoDigits(p.PriceCents%100)
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// Products returns the catalogue in the order the home page lists it. Each
// call returns a new slice, so callers may change it freely.
func Products() []Product {
	return []Product{
		{
			ID: "house-blend", Name: "House Blend", PriceCents: 1450,
			Image:       "/static/img/house-blend.svg",
			Summary:     "Chocolate, hazelnut and a clean finish. 340 g.",
			Description: "Our everyday coffee: a medium roast of Brazilian and Colombian beans that tastes of milk chocolate and toasted hazelnut. Forgiving in a French press, sweet as espresso and happy with a splash of milk. Roasted on Mondays and Thursdays, shipped the same day.",
		},
		{
			ID: "ethiopia-guji", Name: "Ethiopia Guji", PriceCents: 1890,
			Image:       "/static/img/ethiopia-guji.svg",
			Summary:     "Bergamot, peach and black tea. 250 g.",
			Description: "A washed single origin from smallholders in the Guji zone, roasted light to keep its floral lift. Brew it as a pour-over and expect bergamot, ripe peach and a tea-like body that lingers. Limited lot, while it lasts.",
		},
		{
			ID: "stoneware-mug", Name: "Stoneware Mug", PriceCents: 2200,
			Image:       "/static/img/stoneware-mug.svg",
			Summary:     "Hand-glazed, 350 ml, keeps its heat.",
			Description: "Thrown by a small studio and dipped in a speckled oat glaze, so no two are quite alike. Thick walls keep your coffee warm; the wide handle fits three fingers. Dishwasher safe, though it will thank you for hand washing.",
		},
		{
			ID: "burr-grinder", Name: "Hand Burr Grinder", PriceCents: 6900,
			Image:       "/static/img/burr-grinder.svg",
			Summary:     "Steel conical burrs, 40 click settings.",
			Description: "Conical steel burrs give an even grind from espresso-fine to cold-brew coarse, with 40 distinct clicks in between. Grinds a 20 g dose in under a minute and packs flat for travel. Comes with a cleaning brush.",
		},
		{
			ID: "gooseneck-kettle", Name: "Gooseneck Kettle", PriceCents: 5400,
			Image:       "/static/img/gooseneck-kettle.svg",
			Summary:     "A slow, steady pour for better brews.",
			Description: "A narrow spout lets you pour as slowly as a pour-over asks, and the built-in thermometer tells you when the water has settled at 93 °C. Brushed steel, 900 ml, suitable for gas, electric and induction hobs.",
		},
		{
			ID: "pour-over-dripper", Name: "Pour-over Dripper", PriceCents: 2800,
			Image:       "/static/img/pour-over-dripper.svg",
			Summary:     "Porcelain cone for one or two cups.",
			Description: "A ribbed porcelain cone with a single wide hole, so the flow depends on your pour rather than on the filter. Makes one or two cups at a time and takes standard size 02 paper filters. Includes 40 filters to get you started.",
		},
	}
}

// shop holds what the handlers share; everything is built once by Handler
// and only read afterwards.
type shop struct {
	products []Product
	byID     map[string]Product
	pages    map[string]*template.Template // by page file name, e.g. "home.html"
	assets   map[string]asset              // by URL path, e.g. "/static/shop.css"
}

// Handler returns the demo shop. Each call builds an independent handler
// (templates parsed, static files hashed, logo drawn), so it is safe to call
// from parallel tests.
func Handler() http.Handler {
	s := &shop{
		products: Products(),
		byID:     make(map[string]Product),
		pages:    parsePages(),
		assets:   loadAssets(time.Now()),
	}
	for _, p := range s.products {
		s.byID[p.ID] = p
	}
	return s.routes()
}

// routes lists every route of the shop.
func (s *shop) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /product/{id}", s.product)
	mux.HandleFunc("GET /cart", s.cart)
	mux.HandleFunc("GET /checkout", s.checkout)
	mux.HandleFunc("POST /checkout", s.placeOrder)
	mux.HandleFunc("GET /static/{path...}", s.static)
	mux.HandleFunc("/", s.notFound)
	return mux
}

// pageData is what every page template receives.
type pageData struct {
	Title   string // the <title>, before " · Loupe Coffee Supply"
	Heading string // the <h1>
	Shop    string
	Page    string // names the page for CSS and tests: <body data-page=…>

	Products []Product // home
	Product  Product   // product page
}

func (s *shop) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "home.html", pageData{
		Title: "Shop", Heading: HomeHeading, Page: "home", Products: s.products,
	})
}

func (s *shop) product(w http.ResponseWriter, r *http.Request) {
	p, ok := s.byID[r.PathValue("id")]
	if !ok {
		s.notFound(w, r)
		return
	}
	s.render(w, http.StatusOK, "product.html", pageData{
		Title: p.Name, Heading: p.Name, Page: "product", Product: p,
	})
}

func (s *shop) cart(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "cart.html", pageData{
		Title: "Cart", Heading: CartHeading, Page: "cart",
	})
}

func (s *shop) checkout(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "checkout.html", pageData{
		Title: "Checkout", Heading: CheckoutHeading, Page: "checkout",
	})
}

// placeOrder answers a submitted checkout form. It deliberately neither
// reads nor echoes the form: the demo must never show a card number or a
// password back, so that any such value found in a recording came from the
// visitor's typing and not from the page.
func (s *shop) placeOrder(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, http.StatusOK, "thanks.html", pageData{
		Title: "Order placed", Heading: ThankYouHeading, Page: "thanks",
	})
}

func (s *shop) notFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusNotFound, "notfound.html", pageData{
		Title: "Not found", Heading: NotFoundHeading, Page: "notfound",
	})
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (s *shop) render(w http.ResponseWriter, status int, page string, data pageData) {
	data.Shop = ShopName
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// parsePages parses each page template together with the shared layout.
// The templates are embedded, so a parse error is a bug in this package.
func parsePages() map[string]*template.Template {
	layout := template.Must(template.ParseFS(files, "templates/layout.html"))
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := make(map[string]*template.Template)
	for _, name := range names {
		base := name[len("templates/"):]
		if base == "layout.html" {
			continue
		}
		pages[base] = template.Must(template.Must(layout.Clone()).ParseFS(files, name))
	}
	return pages
}
