// Package injector rewrites HTML as it streams from the origin to the
// visitor: it inserts the tag that loads Loupe's recorder as early as
// possible in the document and marks form fields so that rrweb masks
// (rr-mask) or blocks (rr-block) them before anything leaves the browser.
//
// Everything the injector does not change is copied byte for byte: it works
// token by token with golang.org/x/net/html's Tokenizer and writes each
// token's Raw bytes, never a parse-and-render round trip, which would change
// the page. Once the recorder tag is written, text and ordinary tags bypass
// the tokenizer (skip.go), with the same result, byte for byte.
package injector

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"strings"

	"github.com/andybalholm/cascadia"
	xhtml "golang.org/x/net/html"

	"github.com/loupe-dev/loupe/injector/csp"
)

// DefaultPrefix is the path under which Loupe's routes live on a site.
const DefaultPrefix = "/__loupe/"

// DefaultBlockSelectors match fields whose values must never leave the
// browser: passwords, payment card fields (autocomplete="cc-*", wherever the
// token sits in the autocomplete list) and inputs whose name or id looks like
// a card number, card security code, IBAN or social security number.
//
// They are matched here with cascadia and, in the recorder, by the browser's
// Element.matches, so each must be plain CSS both understand. The " i" flag
// (CSS Selectors 4, in every current browser) makes the value comparison
// ASCII case-insensitive; cascadia supports it too.
var DefaultBlockSelectors = []string{
	"input[type=password i]",
	"[autocomplete^=cc- i]",
	`[autocomplete*=" cc-" i]`,
	"input[name*=cardnumber i]", "input[id*=cardnumber i]",
	"input[name*=card-number i]", "input[id*=card-number i]",
	"input[name*=card_number i]", "input[id*=card_number i]",
	"input[name*=ccnum i]", "input[id*=ccnum i]",
	"input[name*=cvc i]", "input[id*=cvc i]",
	"input[name*=cvv i]", "input[id*=cvv i]",
	"input[name*=csc i]", "input[id*=csc i]",
	"input[name*=securitycode i]", "input[id*=securitycode i]",
	"input[name*=security-code i]", "input[id*=security-code i]",
	"input[name*=security_code i]", "input[id*=security_code i]",
	"input[name*=iban i]", "input[id*=iban i]",
	"input[name*=ssn i]", "input[id*=ssn i]",
}

// Config says what the injector inserts and which fields it marks.
type Config struct {
	// Prefix is the path where Loupe's routes live on the site; the
	// recorder is loaded from Prefix+"recorder.js" and posts to
	// Prefix+"ingest". If empty, DefaultPrefix is used. A missing trailing
	// slash is added.
	Prefix string

	// BlockSelectors are CSS selectors for fields that get the rr-block
	// class (and that the recorder blocks when scripts create them later).
	// If nil, DefaultBlockSelectors is used; callers append site rules to
	// DefaultBlockSelectors rather than replace it.
	BlockSelectors []string

	// MaskTextSelectors are CSS selectors whose text the recorder masks
	// (rrweb's maskTextSelector). If nil, no text is masked by selector.
	MaskTextSelectors []string

	// UserSelector is a CSS selector list of the element whose text names
	// the visitor (collector.UserRules.DOMSelector): the recorder reads it
	// once the element appears and sends it as a "loupe/user" event. If
	// empty, the recorder looks for none.
	UserSelector string

	// RecorderVersion, if set, is added to the recorder's URL as ?v=, so a
	// browser that cached an older bundle fetches the new one.
	RecorderVersion string
}

// Injector rewrites HTML documents. It is safe for concurrent use.
type Injector struct {
	prefix    string
	block     []cascadia.SelectorGroup
	fast      []*fastSel               // per block selector, its fast form or nil
	raw       *rawKeys                 // the fast ones, filed for marking fields (rawmark.go)
	slow      []cascadia.SelectorGroup // the others, matched by cascadia
	rawMarks  bool                     // no slow ones: the skip feed marks fields from raw tags
	blockList string                   // BlockSelectors joined by ", ", for the recorder
	maskList  string                   // MaskTextSelectors joined by ", "
	userSel   string                   // UserSelector
	tagStart  []byte                   // `<script src="…" defer data-loupe="`
	// cfgTail is the escaped JSON of recorderConfig after its token, the
	// same on every page (see ScriptTag).
	cfgTail []byte
	maxBuf  int // largest token held in memory; tests lower it

	// ancestorAttrs: some block selector may look at an ancestor's
	// attributes, so the stack keeps them. Reading attributes is the
	// costliest part of a rewrite; the default selectors need none.
	ancestorAttrs bool
	// skip: tokens that need no rewriting may bypass the tokenizer once
	// the tag is written (see skip.go); tests turn it off to compare.
	skip bool

	// trace, if set, sees every token as Rewrite read it. Tests use it to
	// tokenize exactly as Rewrite does (foreign content included).
	trace func(tt xhtml.TokenType, z *xhtml.Tokenizer)
}

// defaultMaxBuf bounds the bytes the tokenizer holds for one token. Larger
// tokens (a multi-megabyte inline script, say) make Rewrite copy the rest of
// the document verbatim.
const defaultMaxBuf = 1 << 20

// New compiles cfg's selectors. A selector that cascadia cannot parse, or
// that uses one of cascadia's extensions a browser would reject, is an error
// naming it.
func New(cfg Config) (*Injector, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("prefix %q: must start with /", prefix)
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	blockSel := cfg.BlockSelectors
	if blockSel == nil {
		blockSel = DefaultBlockSelectors
	}
	in := &Injector{prefix: prefix, maxBuf: defaultMaxBuf}
	for _, s := range blockSel {
		g, err := compile(s)
		if err != nil {
			return nil, fmt.Errorf("block selector %q: %w", s, err)
		}
		in.block = append(in.block, g)
		in.fast = append(in.fast, compileFast(g.String()))
		in.ancestorAttrs = in.ancestorAttrs || mayNeedAncestors(g.String())
	}
	for _, s := range cfg.MaskTextSelectors {
		if _, err := compile(s); err != nil {
			return nil, fmt.Errorf("mask text selector %q: %w", s, err)
		}
	}
	in.skip = !in.ancestorAttrs
	in.raw, in.slow = in.compileRawKeys()
	in.rawMarks = len(in.slow) == 0
	in.blockList = strings.Join(blockSel, ", ")
	in.maskList = strings.Join(cfg.MaskTextSelectors, ", ")
	if cfg.UserSelector != "" {
		if _, err := compile(cfg.UserSelector); err != nil {
			return nil, fmt.Errorf("user selector %q: %w", cfg.UserSelector, err)
		}
		in.userSel = cfg.UserSelector
	}
	src := prefix + "recorder.js"
	if cfg.RecorderVersion != "" {
		src += "?v=" + url.QueryEscape(cfg.RecorderVersion)
	}
	in.tagStart = []byte(`<script src="` + html.EscapeString(src) + `" defer data-loupe="`)
	js := string(in.configJSON(Page{}))
	tail, ok := strings.CutPrefix(js, cfgHead+`""`+cfgToken+`""`)
	if !ok {
		return nil, fmt.Errorf("recorder config %s: unexpected field order", js)
	}
	in.cfgTail = []byte(html.EscapeString(tail))
	return in, nil
}

// cascadiaOnly lists, as cascadia serialises them, the selector features
// cascadia accepts but browsers do not. The recorder hands the joined list to
// Element.matches, which throws a SyntaxError on any of them, and rrweb does
// not catch it.
var cascadiaOnly = []string{"!=", "#=", ":contains", ":matches", ":haschild", ":input"}

func compile(s string) (cascadia.SelectorGroup, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty selector")
	}
	g, err := cascadia.ParseGroup(s)
	if err != nil {
		return nil, err
	}
	str := g.String()
	for _, ext := range cascadiaOnly {
		if strings.Contains(str, ext) {
			return nil, fmt.Errorf("%s is a cascadia extension browsers reject", ext)
		}
	}
	return g, nil
}

// mayNeedAncestors reports whether a serialised selector may match on
// something besides the element's own name and attributes: outside quotes
// and attribute brackets, it has a combinator or a pseudo-class. It errs
// towards true.
func mayNeedAncestors(sel string) bool {
	depth := 0 // inside [...]
	for i := 0; i < len(sel); i++ {
		switch c := sel[i]; c {
		case '"', '\'':
			j := strings.IndexByte(sel[i+1:], c)
			if j < 0 {
				return true
			}
			i += j + 1
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			depth--
		case ' ', '>', '+', '~', ':', '(', ',':
			if depth == 0 {
				return true
			}
		}
	}
	return false
}

// Page is what varies per response.
type Page struct {
	PageViewID string
	Token      string // opaque, signed by the proxy

	// CSP fits the recorder into the page's Content-Security-Policy: the
	// tag carries nonce="CSP.Nonce" when set, and <meta> policies in the
	// page are adjusted with csp.Meta. If zero, meta policies are left as
	// they are.
	CSP csp.Recorder
}

// recorderConfig is the JSON in the tag's data-loupe attribute, read by the
// recorder (injector/recorder). Field order is the wire order.
type recorderConfig struct {
	// V is the format version, 1.
	V int `json:"v"`
	// PV is the page-view id the proxy chose for this response.
	PV string `json:"pv"`
	// Token is the proxy's signed session token, passed back on ingest.
	Token string `json:"token"`
	// Ingest is the same-origin path events are posted to.
	Ingest string `json:"ingest"`
	// Block is rrweb's blockSelector: the block selectors joined by ", ".
	Block string `json:"block"`
	// MaskText is rrweb's maskTextSelector, joined the same way; "" for none.
	MaskText string `json:"maskText"`
	// User is the selector of the element naming the visitor; omitted if
	// none (added 2026-11, still version 1: the recorder treats it as
	// optional).
	User string `json:"user,omitempty"`
}

// ScriptTag returns the tag Rewrite inserts:
//
//	<script src="/__loupe/recorder.js" defer data-loupe="{JSON}" nonce="…"></script>
//
// with the JSON of recorderConfig, escaped for an HTML attribute, and the
// nonce only when p.CSP.Nonce is set.
func (in *Injector) ScriptTag(p Page) []byte {
	b := make([]byte, 0, len(in.tagStart)+len(in.cfgTail)+len(p.PageViewID)+len(p.Token)+96)
	b = append(b, in.tagStart...)
	if jsonSafe(p.PageViewID) && jsonSafe(p.Token) {
		// What html.EscapeString(configJSON(p)) gives, without encoding
		// the static part again: these strings need no escaping.
		b = append(b, cfgHeadEsc...)
		b = append(b, p.PageViewID...)
		b = append(b, cfgTokenEsc...)
		b = append(b, p.Token...)
		b = append(b, "&#34;"...)
		b = append(b, in.cfgTail...)
	} else {
		b = append(b, html.EscapeString(string(in.configJSON(p)))...)
	}
	b = append(b, '"')
	if p.CSP.Nonce != "" {
		b = append(b, ` nonce="`...)
		b = append(b, html.EscapeString(p.CSP.Nonce)...)
		b = append(b, '"')
	}
	b = append(b, `></script>`...)
	return b
}

// The JSON of recorderConfig up to the page view id and between it and the
// token, and the same escaped for an HTML attribute.
const (
	cfgHead     = `{"v":1,"pv":`
	cfgToken    = `,"token":`
	cfgHeadEsc  = `{&#34;v&#34;:1,&#34;pv&#34;:&#34;`
	cfgTokenEsc = `&#34;,&#34;token&#34;:&#34;`
)

// jsonSafe reports whether s is the same inside a JSON string as
// json.Marshal writes it and in an HTML attribute as html.EscapeString
// writes it: letters, digits and "-_.:~+/=".
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '~', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// configJSON is the JSON of p's recorderConfig.
func (in *Injector) configJSON(p Page) []byte {
	js, err := json.Marshal(recorderConfig{
		V:        1,
		PV:       p.PageViewID,
		Token:    p.Token,
		Ingest:   in.prefix + "ingest",
		Block:    in.blockList,
		MaskText: in.maskList,
		User:     in.userSel,
	})
	if err != nil {
		// Only strings and an int: Marshal cannot fail.
		panic(fmt.Sprintf("marshal recorder config: %v", err))
	}
	return js
}
