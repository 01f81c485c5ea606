package collector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Users are identified without code in the site: per-site rules say where a
// visitor's user id or email can be read. Each rule is written as a string,
// the form the --user-id flag (LOUPE_USER_ID) and site configuration take:
//
//	cookie:NAME          the value of the request cookie NAME (URL-decoded)
//	header:NAME          the value of the request header NAME
//	jwt:COOKIE:CLAIM     claim CLAIM of the JSON Web Token in cookie COOKIE;
//	                     CLAIM may name a nested member with dots (user.email)
//	dom:SELECTOR         the trimmed text of the first element matching the
//	                     CSS selector, read by the recorder in the browser
//
// The proxy applies the cookie, header and jwt rules to every request of a
// recorded session it logs (the first rule giving a non-empty value wins) and
// hands the value over with the request's network log entry. The dom rules
// are joined into one selector list sent to the recorder, which reads the
// element's textContent once it appears and sends it as a Custom event
// tagged "loupe/user" with the payload {"user": "…"}; the collector stores
// it. Whichever arrives first becomes the session's user id: the store sets
// it only while the session has none.
//
// A JWT is decoded, never verified: the proxy does not hold the site's key.
// The claim is an identifier for finding sessions, not a proof of who the
// visitor is — a visitor can forge it for their own session.

// MaxUserID bounds a stored user id, in bytes; longer values are cut at a
// UTF-8 boundary. The recorder cuts DOM text to 200 characters.
const MaxUserID = 200

// UserTag is the Custom event tag the recorder sends a DOM rule's text with.
const UserTag = "loupe/user"

// UserRule is one rule naming where a user id is read.
type UserRule struct {
	// Kind is "cookie", "header", "jwt" or "dom".
	Kind string
	// Name is the cookie or header name (cookie, header, jwt), or the CSS
	// selector (dom).
	Name string
	// Claim is the JWT claim, dot-separated for a nested member (jwt only).
	Claim string
}

// String returns the rule in the form ParseUserRule reads.
func (r UserRule) String() string {
	if r.Kind == "jwt" {
		return "jwt:" + r.Name + ":" + r.Claim
	}
	return r.Kind + ":" + r.Name
}

// ParseUserRule parses one rule, e.g. "cookie:uid", "header:X-User-Email",
// "jwt:session_token:email" or "dom:#account .email".
func ParseUserRule(s string) (UserRule, error) {
	kind, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return UserRule{}, fmt.Errorf("user rule %q: want kind:name, e.g. cookie:uid", s)
	}
	r := UserRule{Kind: strings.ToLower(strings.TrimSpace(kind)), Name: strings.TrimSpace(rest)}
	switch r.Kind {
	case "cookie", "header":
		if r.Name == "" || strings.ContainsAny(r.Name, " \t;=:,") {
			return UserRule{}, fmt.Errorf("user rule %q: bad %s name %q", s, r.Kind, r.Name)
		}
		if r.Kind == "header" {
			r.Name = http.CanonicalHeaderKey(r.Name)
		}
	case "jwt":
		name, claim, ok := strings.Cut(r.Name, ":")
		name, claim = strings.TrimSpace(name), strings.TrimSpace(claim)
		if !ok || name == "" || claim == "" || strings.ContainsAny(name, " \t;=,") {
			return UserRule{}, fmt.Errorf("user rule %q: want jwt:COOKIE:CLAIM, e.g. jwt:session_token:email", s)
		}
		r.Name, r.Claim = name, claim
	case "dom":
		if r.Name == "" {
			return UserRule{}, fmt.Errorf("user rule %q: want dom:SELECTOR, e.g. dom:#account .email", s)
		}
	default:
		return UserRule{}, fmt.Errorf("user rule %q: kind %q is not cookie, header, jwt or dom", s, kind)
	}
	return r, nil
}

// UserRules is an ordered list of rules.
type UserRules []UserRule

// ParseUserRules parses each of specs; each may hold several rules
// separated by commas, except a dom rule, whose selector list keeps its
// commas and so must come last in its string or be given on its own.
func ParseUserRules(specs ...string) (UserRules, error) {
	var rules UserRules
	for _, spec := range specs {
		for spec = strings.TrimSpace(spec); spec != ""; {
			part := spec
			spec = ""
			if !strings.HasPrefix(strings.ToLower(part), "dom:") {
				if i := strings.IndexByte(part, ','); i >= 0 {
					part, spec = part[:i], strings.TrimSpace(part[i+1:])
				}
			}
			if strings.TrimSpace(part) == "" {
				continue
			}
			r, err := ParseUserRule(part)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// Strings returns the rules in the form ParseUserRules reads, one each.
func (rs UserRules) Strings() []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// DOMSelector returns the selectors of the dom rules as one selector list
// for the recorder, "" if there are none.
func (rs UserRules) DOMSelector() string {
	var sel []string
	for _, r := range rs {
		if r.Kind == "dom" {
			sel = append(sel, r.Name)
		}
	}
	return strings.Join(sel, ", ")
}

// FromRequest returns the first non-empty user id the cookie, header and
// jwt rules find in r, cut to MaxUserID bytes, or "". A malformed cookie or
// token yields nothing.
func (rs UserRules) FromRequest(r *http.Request) string {
	for _, rule := range rs {
		var v string
		switch rule.Kind {
		case "cookie":
			v = cookieValue(r, rule.Name)
		case "header":
			v = r.Header.Get(rule.Name)
		case "jwt":
			v = jwtClaim(cookieValue(r, rule.Name), rule.Claim)
		}
		if v = CleanUserID(v); v != "" {
			return v
		}
	}
	return ""
}

// CleanUserID trims v, drops control characters and cuts it to MaxUserID
// bytes at a UTF-8 boundary.
func CleanUserID(v string) string {
	v = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, v))
	if len(v) > MaxUserID {
		v = cut(v, MaxUserID)
		v = strings.TrimSpace(v)
	}
	return v
}

// cookieValue returns the value of r's cookie name, URL-decoded when it
// decodes, or "".
func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	v := c.Value
	if strings.Contains(v, "%") {
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
	}
	return v
}

// maxJWT bounds a token the proxy decodes.
const maxJWT = 8 << 10

// jwtClaim returns the claim (dot-separated path) of the JWT tok's payload
// as a string, or "" for anything malformed. The signature is not checked.
func jwtClaim(tok, claim string) string {
	if tok == "" || len(tok) > maxJWT {
		return ""
	}
	tok = strings.TrimPrefix(tok, "Bearer ")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return ""
	}
	for _, key := range strings.Split(claim, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if v, ok = m[key]; !ok {
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// UserSetter is the optional ability of a Collector's store to record the
// user id a "loupe/user" event names (store/sqlite and store/postgres).
type UserSetter interface {
	// SetSessionUser sets the session's user id unless it has one.
	SetSessionUser(ctx context.Context, sessionID, userID string) error
}

// setUser records the user id a batch's "loupe/user" event named, when the
// store can. The batch is stored already: a failure costs the session its
// user id, never the visitor the batch.
func (c *Collector) setUser(ctx context.Context, sessionID, user string) {
	if user == "" {
		return
	}
	us, ok := c.Store.(UserSetter)
	if !ok {
		return
	}
	if err := us.SetSessionUser(ctx, sessionID, user); err != nil {
		c.logger().Warn("set session user", "session", sessionID, "err", err)
	}
}
