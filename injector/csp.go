package injector

import (
	"html"
	"strings"

	"github.com/loupe-dev/loupe/injector/csp"
)

// tagWithNonce returns tag, as ScriptTag wrote it without a nonce, with
// nonce="nonce" added.
func tagWithNonce(tag []byte, nonce string) []byte {
	const end = "></script>"
	out := make([]byte, 0, len(tag)+len(nonce)+10)
	out = append(out, tag[:len(tag)-len(end)]...)
	out = append(out, ` nonce="`...)
	out = append(out, html.EscapeString(nonce)...)
	out = append(out, '"')
	return append(out, end...)
}

// adjustMetaCSP returns raw, a <meta> start tag whose attributes are in
// r.cur.Attr, with its policy adjusted for the recorder when it is a
// <meta http-equiv="Content-Security-Policy"> (WHATWG 4.2.5.3; a meta cannot
// deliver a Report-Only policy, so that is left alone).
//
// The recorder tag comes before such a meta (it goes after <head> and a
// charset <meta> only), and a meta policy governs only what is fetched after
// it is parsed (CSP3 §3.3), so it rarely matters to the script itself; it
// does to the recorder's uploads (connect-src), and to a tag placed after a
// meta that declares both charset and policy: that one gets a nonce here if
// it has none.
//
// A changed tag is written anew from its attributes as the tokenizer read
// them, the first of repeated names kept as browsers do; the result is
// built in r.out and valid until the next call.
func (r *rewriter) adjustMetaCSP(raw []byte) []byte {
	equiv, _ := attrVal(r.cur.Attr, "http-equiv")
	if !strings.EqualFold(strings.TrimSpace(equiv), "content-security-policy") {
		return raw
	}
	content, ok := attrVal(r.cur.Attr, "content")
	if !ok {
		return raw
	}
	adjusted := csp.Meta(content, r.csp)
	if r.state != tagDone && r.csp.Nonce == "" {
		// The tag is still to come: this meta also declares the charset,
		// which the tag follows, so its policy governs the tag. Where it
		// needs a nonce and the caller gave none, the tag gets one.
		withNonce := r.csp
		withNonce.Nonce = csp.NewNonce()
		if a := csp.Meta(content, withNonce); strings.Contains(a, "'nonce-"+withNonce.Nonce+"'") {
			adjusted, r.csp = a, withNonce
			r.tag = tagWithNonce(r.tag, withNonce.Nonce)
		}
	}
	if adjusted == content {
		return raw
	}
	out := append(r.out[:0], "<meta"...)
	for _, a := range r.cur.Attr {
		v := a.Val
		if a.Key == "content" {
			v = adjusted
		}
		out = append(out, ' ')
		out = append(out, a.Key...)
		out = append(out, `="`...)
		out = append(out, html.EscapeString(v)...)
		out = append(out, '"')
	}
	out = append(out, '>')
	r.out = out
	return out
}
