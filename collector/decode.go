package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/loupe-dev/loupe/store"
)

// rrweb event types, incremental sources and mouse interactions the
// collector reads (rrweb's EventType, IncrementalSource and
// MouseInteractions enums).
const (
	eventFullSnapshot = 2
	eventIncremental  = 3
	eventMeta         = 4
	eventCustom       = 5
	eventPlugin       = 6
	maxEventType      = 6

	sourceMutation         = 0
	sourceMouseInteraction = 2
	sourceScroll           = 3
	sourceViewportResize   = 4
	sourceInput            = 5

	mouseInteractionClick = 2
)

// Recorder conventions for errors.
const (
	errorTag      = "loupe.error"     // Custom event tag of window errors and rejections
	clickTag      = "loupe/click"     // Custom event tag of a click's target description
	requestTag    = "loupe/request"   // Custom event tag of a fetch/XHR start
	pageHideTag   = "loupe/pagehide"  // Custom event tag of the page being left
	consolePlugin = "rrweb/console@1" // rrweb console plugin's event name
)

// Lengths kept of strings from events; longer ones are cut at a UTF-8
// boundary.
const (
	maxMessage  = 1 << 10
	maxStack    = 8 << 10
	maxURL      = 2 << 10 // error source, referrer
	maxLanguage = 35      // longest sensible BCP 47 tag
	maxToken    = 256
	maxTarget   = 160 // a click target's description
)

// Default document node id: rrweb numbers nodes from 1 and serializes the
// document first. A batch holding a full snapshot uses that snapshot's id.
const defaultDocumentID = 1

// decoded is a parsed and validated batch before its token is checked.
type decoded struct {
	v         int
	token, pv string
	seq       int
	hasSeq    bool
	page      *store.PageInfo // from the wire "page" field; nil if absent
	batch     store.Batch     // Events and the event-derived fields only
	user      string          // first user id of a "loupe/user" event; "" if none
}

// wireError is a rejection found while decoding.
func badRequest(format string, args ...any) *httpError {
	return errorf(http.StatusBadRequest, format, args...)
}

var decoderPool = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// decodeOptions: duplicate names are allowed (checking them costs a hash
// per object member and rrweb never emits any) and so is invalid UTF-8,
// because JSON.stringify writes lone surrogates of broken page text as
// escapes that a strict decoder refuses, and a batch must not be lost for
// a page's bad text.
var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// decode parses and validates a batch body in one pass over its bytes and
// derives the summary and rows from its events. batch.Events aliases body.
func decode(body []byte, lim *Limits, now time.Time) (*decoded, error) {
	d := decoderPool.Get().(*jsontext.Decoder)
	defer decoderPool.Put(d)
	d.Reset(bytes.NewBuffer(body), decodeOptions...)
	defer d.Reset(bytes.NewBuffer(nil)) // drop the reference to body

	p := &parser{d: d, body: body, lim: lim, now: now, docID: defaultDocumentID}
	out, err := p.batch()
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, &httpError{status: http.StatusBadRequest, msg: "body is not a JSON batch", err: err}
	}
	return out, nil
}

type parser struct {
	d    *jsontext.Decoder
	body []byte
	lim  *Limits
	now  time.Time

	out   decoded
	docID int   // node id of the document, for scroll depth
	vh    int   // current viewport height, 0 until known
	maxTS int64 // latest timestamp so far
	meta  bool  // a Meta event was seen
	ev    event // the current event, reused
	sig   signalPass
}

func (p *parser) batch() (*decoded, error) {
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	sawEvents := false
	for p.d.PeekKind() == '"' {
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "v":
			n, ok, err := p.number()
			if err != nil {
				return nil, err
			}
			if !ok || n != math.Trunc(n) || n < 0 || n > 1<<20 {
				return nil, badRequest("v must be an integer")
			}
			p.out.v = int(n)
		case "token":
			s, ok, err := p.str(maxToken + 1)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, badRequest("token must be a string")
			}
			p.out.token = s
		case "pv":
			s, ok, err := p.str(64)
			if err != nil {
				return nil, err
			}
			if !ok || !validID(s) {
				return nil, badRequest("pv must be 32 hex digits")
			}
			p.out.pv = s
		case "seq":
			n, ok, err := p.number()
			if err != nil {
				return nil, err
			}
			if !ok || n != math.Trunc(n) || n < 0 || n > math.MaxInt32 {
				return nil, badRequest("seq must be a non-negative integer")
			}
			p.out.seq, p.out.hasSeq = int(n), true
		case "events":
			if sawEvents {
				return nil, badRequest("events given twice")
			}
			sawEvents = true
			if err := p.events(); err != nil {
				return nil, err
			}
		case "page":
			if err := p.page(); err != nil {
				return nil, err
			}
		default: // unknown fields are ignored, for forward compatibility
			if err := p.d.SkipValue(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expect('}'); err != nil {
		return nil, err
	}
	if _, err := p.d.ReadToken(); err != io.EOF {
		return nil, badRequest("body is not a JSON batch: data after the object")
	}
	if p.out.v != 1 {
		return nil, badRequest("unsupported protocol version %d; want 1", p.out.v)
	}
	if !sawEvents || p.out.batch.EventCount == 0 {
		return nil, badRequest("events must be a non-empty array")
	}
	return &p.out, nil
}

// expect reads a delimiter token of kind k.
func (p *parser) expect(k jsontext.Kind) error {
	if got := p.d.PeekKind(); got != k {
		if got == 0 { // syntax error or EOF; let ReadToken report it
			_, err := p.d.ReadToken()
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		return badRequest("body is not a JSON batch: malformed at byte %d", p.d.InputOffset())
	}
	_, err := p.d.ReadToken()
	return err
}

// name reads an object member name. The result is valid until the next
// read; callers compare it with switch string(name), which does not
// allocate. An escaped name (never written by browsers) is unescaped.
func (p *parser) name() ([]byte, error) {
	v, err := p.d.ReadValue()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	return jsontext.AppendUnquote(nil, v)
}

// number reads a value; ok is false (the value consumed) if it is not a
// number.
func (p *parser) number() (float64, bool, error) {
	v, err := p.d.ReadValue()
	if err != nil {
		return 0, false, err
	}
	if v.Kind() != '0' {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil { // out of range
		return 0, false, nil
	}
	return f, true, nil
}

// integer is number for fields that are ints by rrweb's types; other
// values read as 0.
func (p *parser) integer() (int, error) {
	f, ok, err := p.number()
	if !ok || math.IsNaN(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, err
	}
	return int(f), err
}

// str reads a value; ok is false (the value consumed) if it is not a
// string. The result is cut to max bytes.
func (p *parser) str(max int) (string, bool, error) {
	v, err := p.d.ReadValue()
	if err != nil {
		return "", false, err
	}
	if v.Kind() != '"' {
		return "", false, nil
	}
	var u []byte
	if bytes.IndexByte(v, '\\') < 0 {
		u = v[1 : len(v)-1]
	} else if u, err = jsontext.AppendUnquote(nil, v); err != nil {
		return "", false, err
	}
	return truncate(u, max), true, nil
}

// truncate returns b as a string of at most max bytes, cut at a UTF-8
// boundary.
func truncate(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	i := max
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return string(b[:i])
}

// offset returns the position of the next value's first byte.
func (p *parser) offset() int {
	i := int(p.d.InputOffset())
	for i < len(p.body) {
		switch p.body[i] {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
			continue
		}
		break
	}
	return i
}

func (p *parser) page() error {
	switch p.d.PeekKind() {
	case 'n':
		return p.d.SkipValue()
	case '{':
	default:
		if _, err := p.d.ReadValue(); err != nil {
			return err
		}
		return badRequest("page must be an object")
	}
	p.d.ReadToken()
	pi := &store.PageInfo{}
	for p.d.PeekKind() == '"' {
		name, err := p.name()
		if err != nil {
			return err
		}
		var ok bool
		field := string(name)
		switch field {
		case "referrer":
			pi.Referrer, ok, err = p.str(maxURL)
		case "language":
			pi.Language, ok, err = p.str(maxLanguage)
		case "tab":
			pi.Tab, ok, err = p.str(64)
			if err == nil && ok && !validID(pi.Tab) {
				return badRequest("page.tab must be 32 hex digits")
			}
		default:
			ok, err = true, p.d.SkipValue()
		}
		if err != nil {
			return err
		}
		if !ok {
			return badRequest("page.%s must be a string", field)
		}
	}
	p.out.page = pi
	return p.expect('}')
}

func (p *parser) events() error {
	if p.d.PeekKind() != '[' {
		if _, err := p.d.ReadValue(); err != nil {
			return err
		}
		return badRequest("events must be a non-empty array")
	}
	start := p.offset()
	p.d.ReadToken()
	b := &p.out.batch
	for i := 0; p.d.PeekKind() != ']'; i++ {
		if p.d.PeekKind() != '{' {
			if _, err := p.d.ReadValue(); err != nil {
				return err
			}
			return badRequest("event %d is not an object", i)
		}
		evStart := p.offset()
		ev, err := p.event(i)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				he = &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("event %d is not valid JSON", i), err: err}
			}
			return he
		}
		if size := int64(p.d.InputOffset()) - int64(evStart); size > p.lim.maxEventBytes() {
			return errorf(http.StatusRequestEntityTooLarge, "event %d is %d bytes, over the limit of %d bytes per event; split it", i, size, p.lim.maxEventBytes())
		}
		if err := p.derive(i, ev); err != nil {
			return err
		}
		b.EventCount++
	}
	p.d.ReadToken() // ']'
	b.Events = p.body[start:p.d.InputOffset()]
	return nil
}

// event is what the collector reads of one rrweb event.
type event struct {
	typ     int
	ts      float64
	hasType bool
	hasTS   bool
	hasData bool

	// From data, whichever the event's type has.
	href            string
	width, height   int
	source, subtype int
	hasSource       bool
	id, x, y        int
	nodeID          int // data.node.id of a full snapshot
	top             int // data.initialOffset.top of a full snapshot
	tag, plugin     string
	payload         payload
	hasPayload      bool
}

// payload is data.payload of a Custom or Plugin event.
type payload struct {
	message, stack, source, kind, level string
	line, column                        int
	args, trace                         []string // console plugin
	// loupe/click and loupe/request
	target        string
	node, x, y    int
	field, submit bool
	start         float64
	user          string // loupe/user
}

func (p *parser) event(i int) (*event, error) {
	p.d.ReadToken() // '{'
	ev := &p.ev
	*ev = event{}
	for p.d.PeekKind() == '"' {
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "type":
			f, ok, err := p.number()
			if err != nil {
				return nil, err
			}
			if !ok || f != math.Trunc(f) || f < 0 || f > maxEventType {
				return nil, badRequest("event %d has no valid type (want an integer 0 to %d)", i, maxEventType)
			}
			ev.typ, ev.hasType = int(f), true
		case "timestamp":
			f, ok, err := p.number()
			if err != nil {
				return nil, err
			}
			if !ok || !(f > 0) || f > 1e15 {
				return nil, badRequest("event %d has no valid timestamp (want Unix milliseconds)", i)
			}
			ev.ts, ev.hasTS = f, true
		case "data":
			if p.d.PeekKind() != '{' {
				if _, err := p.d.ReadValue(); err != nil {
					return nil, err
				}
				return nil, badRequest("event %d has no data object", i)
			}
			if err := p.data(ev); err != nil {
				return nil, err
			}
			ev.hasData = true
		default:
			if err := p.d.SkipValue(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expect('}'); err != nil {
		return nil, err
	}
	switch {
	case !ev.hasType:
		return nil, badRequest("event %d has no valid type (want an integer 0 to %d)", i, maxEventType)
	case !ev.hasTS:
		return nil, badRequest("event %d has no valid timestamp (want Unix milliseconds)", i)
	case !ev.hasData:
		return nil, badRequest("event %d has no data object", i)
	}
	return ev, nil
}

// data reads the members of an event's data object that the collector
// derives rows from and skips the rest without decoding it. rrweb writes
// "type" before "data", so the type usually tells which members matter.
func (p *parser) data(ev *event) error {
	p.d.ReadToken() // '{'
	for p.d.PeekKind() == '"' {
		name, err := p.name()
		if err != nil {
			return err
		}
		unknown := !ev.hasType // type unknown yet: read whatever may matter
		t := ev.typ
		incr := unknown || t == eventIncremental
		switch string(name) {
		case "href":
			if unknown || t == eventMeta {
				ev.href, _, err = p.str(maxURL * 4)
			} else {
				err = p.d.SkipValue()
			}
		case "width":
			ev.width, err = p.integer()
		case "height":
			ev.height, err = p.integer()
		case "source":
			if incr {
				ev.source, err = p.integer()
				ev.hasSource = true
			} else {
				err = p.d.SkipValue()
			}
		case "type":
			ev.subtype, err = p.integer()
		case "id":
			ev.id, err = p.integer()
		case "x":
			ev.x, err = p.integer()
		case "y":
			ev.y, err = p.integer()
		case "node":
			if (unknown || t == eventFullSnapshot) && p.d.PeekKind() == '{' {
				err = p.members(func(name []byte) (bool, error) {
					if string(name) != "id" {
						return false, nil
					}
					var err error
					ev.nodeID, err = p.integer()
					return true, err
				})
			} else {
				err = p.d.SkipValue()
			}
		case "initialOffset":
			if (unknown || t == eventFullSnapshot) && p.d.PeekKind() == '{' {
				err = p.members(func(name []byte) (bool, error) {
					if string(name) != "top" {
						return false, nil
					}
					var err error
					ev.top, err = p.integer()
					return true, err
				})
			} else {
				err = p.d.SkipValue()
			}
		case "tag":
			ev.tag, _, err = p.str(64)
		case "plugin":
			ev.plugin, _, err = p.str(64)
		case "payload":
			if p.d.PeekKind() == '{' && (unknown ||
				(t == eventCustom && (ev.tag == "" || ev.tag == errorTag || ev.tag == clickTag || ev.tag == requestTag || ev.tag == UserTag)) ||
				(t == eventPlugin && (ev.plugin == "" || ev.plugin == consolePlugin))) {
				ev.hasPayload = true
				err = p.payload(&ev.payload)
			} else {
				err = p.d.SkipValue()
			}
		default:
			err = p.d.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	return p.expect('}')
}

// members reads an object, calling f for each member name; f reads the
// value and returns true, or returns false to have it skipped.
func (p *parser) members(f func(name []byte) (bool, error)) error {
	p.d.ReadToken() // '{'
	for p.d.PeekKind() == '"' {
		name, err := p.name()
		if err != nil {
			return err
		}
		done, err := f(name)
		if err != nil {
			return err
		}
		if !done {
			if err := p.d.SkipValue(); err != nil {
				return err
			}
		}
	}
	return p.expect('}')
}

func (p *parser) payload(pl *payload) error {
	return p.members(func(name []byte) (bool, error) {
		var err error
		switch string(name) {
		case "message":
			pl.message, _, err = p.str(maxMessage)
		case "stack":
			pl.stack, _, err = p.str(maxStack)
		case "source":
			pl.source, _, err = p.str(maxURL)
		case "kind":
			pl.kind, _, err = p.str(16)
		case "level":
			pl.level, _, err = p.str(16)
		case "target":
			pl.target, _, err = p.str(maxTarget)
		case "node":
			pl.node, err = p.integer()
		case "x":
			pl.x, err = p.integer()
		case "y":
			pl.y, err = p.integer()
		case "field":
			pl.field, err = p.boolean()
		case "submit":
			pl.submit, err = p.boolean()
		case "start":
			pl.start, _, err = p.number()
		case "user":
			pl.user, _, err = p.str(MaxUserID * 4)
		case "line":
			pl.line, err = p.integer()
		case "column":
			pl.column, err = p.integer()
		case "payload", "trace":
			if p.d.PeekKind() != '[' {
				return false, nil
			}
			var list []string
			isArgs := string(name) == "payload"
			list, err = p.strings(maxStack)
			if isArgs {
				pl.args = list
			} else {
				pl.trace = list
			}
		default:
			return false, nil
		}
		return true, err
	})
}

// strings reads an array, keeping its string elements up to total bytes.
func (p *parser) strings(total int) ([]string, error) {
	p.d.ReadToken() // '['
	var out []string
	for p.d.PeekKind() != ']' {
		if p.d.PeekKind() != '"' || total <= 0 {
			if err := p.d.SkipValue(); err != nil {
				return nil, err
			}
			continue
		}
		s, _, err := p.str(total)
		if err != nil {
			return nil, err
		}
		total -= len(s)
		out = append(out, s)
	}
	_, err := p.d.ReadToken()
	return out, err
}

// derive validates event i's timestamp and adds what it contributes to the
// batch summary and rows.
func (p *parser) derive(i int, ev *event) error {
	b := &p.out.batch
	ts := int64(ev.ts)
	if ts > p.now.Add(p.lim.maxFutureSkew()).UnixMilli() {
		return badRequest("event %d has a timestamp more than %v ahead of the server's clock", i, p.lim.maxFutureSkew())
	}
	if i > 0 && ts < p.maxTS-p.lim.maxBackstep().Milliseconds() {
		return badRequest("event %d has a timestamp %d ms before an earlier event's (tolerance %v)", i, p.maxTS-ts, p.lim.maxBackstep())
	}
	if i == 0 || ts < b.FirstTS {
		b.FirstTS = ts
	}
	if ts > p.maxTS {
		p.maxTS = ts
	}
	b.LastTS = p.maxTS

	switch ev.typ {
	case eventMeta:
		if !p.meta {
			p.meta = true
			b.URL = ev.href
			b.ViewportW, b.ViewportH = ev.width, ev.height
		}
		if ev.height > 0 {
			p.vh = ev.height
		}
		p.depth(p.vh)
	case eventFullSnapshot:
		if ev.nodeID > 0 {
			p.docID = ev.nodeID
		}
		if ev.top > 0 || p.vh > 0 {
			p.depth(ev.top + p.vh)
		}
	case eventIncremental:
		if !ev.hasSource {
			return nil
		}
		switch ev.source {
		case sourceMutation:
			p.changed(ts)
		case sourceMouseInteraction:
			if ev.subtype == mouseInteractionClick {
				b.Clicks = append(b.Clicks, store.Click{At: ts, X: ev.x, Y: ev.y, NodeID: ev.id})
			}
		case sourceScroll:
			p.changed(ts)
			if ev.id == p.docID {
				p.depth(ev.y + p.vh)
			}
		case sourceViewportResize:
			if ev.height > 0 {
				p.vh = ev.height
			}
		case sourceInput:
			p.changed(ts)
			b.Inputs = append(b.Inputs, store.Input{At: ts, NodeID: ev.id})
		}
	case eventCustom:
		switch ev.tag {
		case clickTag, requestTag, pageHideTag:
			p.custom(ts, ev)
			return nil
		case UserTag:
			if u := CleanUserID(ev.payload.user); u != "" && p.out.user == "" {
				p.out.user = u
			}
			return nil
		}
		if ev.tag != errorTag || !ev.hasPayload {
			return nil
		}
		pl := &ev.payload
		kind := "error"
		if pl.kind == "rejection" {
			kind = "rejection"
		}
		b.Errors = append(b.Errors, store.JSError{At: ts, Kind: kind, Message: pl.message,
			Stack: pl.stack, Source: pl.source, Line: max(pl.line, 0), Column: max(pl.column, 0)})
	case eventPlugin:
		if ev.plugin != consolePlugin || !ev.hasPayload || ev.payload.level != "error" {
			return nil
		}
		pl := &ev.payload
		for j, a := range pl.args {
			pl.args[j] = consoleArg(a)
		}
		b.Errors = append(b.Errors, store.JSError{At: ts, Kind: "console",
			Message: cut(strings.Join(pl.args, " "), maxMessage),
			Stack:   cut(strings.Join(pl.trace, "\n"), maxStack)})
	}
	return nil
}

// boolean reads a value; anything but true reads as false.
func (p *parser) boolean() (bool, error) {
	v, err := p.d.ReadValue()
	if err != nil {
		return false, err
	}
	return v.Kind() == 't', nil
}

func (p *parser) depth(d int) {
	if d > p.out.batch.ScrollDepth {
		p.out.batch.ScrollDepth = d
	}
}

// consoleArg undoes the console plugin's JSON.stringify of a string
// argument, so that console.error("x") reads x rather than "x".
func consoleArg(a string) string {
	if len(a) >= 2 && a[0] == '"' && a[len(a)-1] == '"' {
		if u, err := jsontext.AppendUnquote(nil, a); err == nil {
			return string(u)
		}
	}
	return a
}

// cut is truncate for strings.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return truncate([]byte(s), max)
}

// utm returns the page info's UTM parameters from the page URL.
func utm(pi *store.PageInfo, pageURL string) {
	u, err := url.Parse(pageURL)
	if err != nil {
		return
	}
	q := u.Query()
	pi.UTMSource = cut(q.Get("utm_source"), 256)
	pi.UTMMedium = cut(q.Get("utm_medium"), 256)
	pi.UTMCampaign = cut(q.Get("utm_campaign"), 256)
	pi.UTMTerm = cut(q.Get("utm_term"), 256)
	pi.UTMContent = cut(q.Get("utm_content"), 256)
}
