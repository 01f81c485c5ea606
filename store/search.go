package store

import (
	"fmt"
	"slices"
	"strings"
)

// Listing bounds, as documented on SessionFilter.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// Limits of tags and notes, checked by the stores.
const (
	MaxTagLen    = 64
	MaxTags      = 32
	MaxNoteLen   = 4096
	MaxNotes     = 200 // per session
	MaxFilterLen = 2048
)

// Note is a note on a session.
type Note struct {
	ID        int64
	SessionID string
	// AtMS is the moment of the recording it is about, ms since the
	// session's start; nil for the whole session.
	AtMS *int64
	Text string
	// Author is the name of the user who wrote it; "" for notes written
	// before the replay server had logins.
	Author    string
	CreatedAt int64 // Unix ms
}

// CheckTags validates and normalizes a session's tags: trimmed, none
// empty, each at most MaxTagLen bytes, at most MaxTags, sorted and without
// duplicates.
func CheckTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			return nil, fmt.Errorf("empty tag")
		case len(t) > MaxTagLen:
			return nil, fmt.Errorf("tag %.20q… is over %d bytes", t, MaxTagLen)
		case strings.ContainsFunc(t, func(r rune) bool { return r < ' ' || r == 0x7f }):
			return nil, fmt.Errorf("tag %q has control characters", t)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxTags {
		return nil, fmt.Errorf("%d tags; at most %d", len(out), MaxTags)
	}
	return out, nil
}

// CheckNote validates a note's text and moment.
func CheckNote(n *Note) error {
	switch {
	case strings.TrimSpace(n.Text) == "":
		return fmt.Errorf("empty note")
	case len(n.Text) > MaxNoteLen:
		return fmt.Errorf("note of %d bytes is over %d", len(n.Text), MaxNoteLen)
	case n.AtMS != nil && *n.AtMS < 0:
		return fmt.Errorf("negative at_ms")
	}
	return nil
}

// Check validates a filter: known signal kinds and sort, non-negative
// bounds, bounded string lengths.
func (f *SessionFilter) Check() error {
	for _, k := range f.Signals {
		if !slices.Contains(SignalKinds, k) {
			return fmt.Errorf("unknown signal %q", k)
		}
	}
	switch f.Sort {
	case "", SortRecent, SortFriction, SortDuration, SortPages:
	default:
		return fmt.Errorf("unknown sort %q", f.Sort)
	}
	if f.MinDuration < 0 || f.MaxDuration < 0 || f.MinPages < 0 || f.MaxPages < 0 {
		return fmt.Errorf("negative bound")
	}
	for _, s := range []string{f.URL, f.Entry, f.Exit, f.UserID, f.Browser, f.OS, f.Device, f.Country, f.Tag, f.Referrer, f.UTMSource} {
		if len(s) > MaxFilterLen {
			return fmt.Errorf("filter value over %d bytes", MaxFilterLen)
		}
	}
	return nil
}

// SessionQuery is a session filter as SQL for a backend: the WHERE
// condition over table sessions ("" for none), the ORDER BY list, and the
// arguments, numbered from 1 ($n) for PostgreSQL or positional (?) for
// SQLite.
type SessionQuery struct {
	Where   string
	OrderBy string
	Args    []any
}

// BuildSessionQuery translates f (which Check accepted) into SQL for
// SQLite (postgres false) or PostgreSQL.
func BuildSessionQuery(f *SessionFilter, postgres bool) SessionQuery {
	var q SessionQuery
	var conds []string
	arg := func(v any) string {
		q.Args = append(q.Args, v)
		if postgres {
			return fmt.Sprintf("$%d", len(q.Args))
		}
		return "?"
	}
	// match is col containing s, or matching it as a glob.
	match := func(col, s string) string {
		if strings.ContainsAny(s, "*?") {
			if postgres {
				return col + " LIKE " + arg(globToLike(s)) + ` ESCAPE '\'`
			}
			return col + " GLOB " + arg(globToGlob(s))
		}
		if postgres {
			return "strpos(" + col + ", " + arg(s) + ") > 0"
		}
		return "instr(" + col + ", " + arg(s) + ") > 0"
	}
	// SQLite's planner picks an index by the WHERE terms it can use, not
	// by how many rows they keep, and reading ten thousand rows through an
	// index costs it about 200 ms. When the list is sorted by another
	// column than the start, terms are written so that only the sort's
	// index applies (x >= 1 rather than the partial indexes' x > 0, +col
	// for low-cardinality columns, duration + 0): the scan in sort order
	// stops after a page of matches. PostgreSQL's planner weighs rows and
	// gets the plain terms.
	bySort := !postgres && f.Sort != "" && f.Sort != SortRecent
	for _, k := range f.Signals {
		if slices.Contains(CountedSignals, k) {
			if bySort {
				conds = append(conds, k+"_count >= 1") // k is a known kind
			} else {
				conds = append(conds, k+"_count > 0") // sessions_with_<k>
			}
			continue
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM signals g WHERE g.kind = "+arg(k)+" AND g.session_id = sessions.id)")
	}
	if f.URL != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM page_views v WHERE v.session_id = sessions.id AND "+match("v.url", f.URL)+")")
	}
	if f.Entry != "" {
		conds = append(conds, match("entry_url", f.Entry))
	}
	if f.Exit != "" {
		conds = append(conds, match("exit_url", f.Exit))
	}
	for _, eq := range []struct {
		col, v  string
		fewKeys bool // few distinct values: an index on it keeps many rows
	}{
		{"user_id", f.UserID, false}, {"browser", f.Browser, true}, {"os", f.OS, true}, {"device", f.Device, true},
		{"country", f.Country, true}, {"utm_source", f.UTMSource, true},
	} {
		if eq.v == "" {
			continue
		}
		col := eq.col
		if bySort && eq.fewKeys {
			col = "+" + col
		}
		conds = append(conds, col+" = "+arg(eq.v))
	}
	if f.Referrer != "" {
		conds = append(conds, match("referrer", f.Referrer))
	}
	if f.Tag != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM session_tags t WHERE t.session_id = sessions.id AND t.tag = "+arg(f.Tag)+")")
	}
	// The duration index serves duration bounds when sorting by duration;
	// otherwise its range would be read whole, then sorted.
	dur := "(ended_at - started_at)"
	if f.Sort != SortDuration {
		dur = "(ended_at - started_at) + 0"
	}
	if f.MinDuration > 0 {
		conds = append(conds, dur+" >= "+arg(f.MinDuration.Milliseconds()))
	}
	if f.MaxDuration > 0 {
		conds = append(conds, dur+" <= "+arg(f.MaxDuration.Milliseconds()))
	}
	if f.MinPages > 0 {
		conds = append(conds, "page_count >= "+arg(f.MinPages))
	}
	if f.MaxPages > 0 {
		conds = append(conds, "page_count <= "+arg(f.MaxPages))
	}
	if !f.From.IsZero() {
		conds = append(conds, "started_at >= "+arg(f.From.UnixMilli()))
	}
	if !f.To.IsZero() {
		conds = append(conds, "started_at < "+arg(f.To.UnixMilli()))
	}
	q.Where = strings.Join(conds, " AND ")

	start := "started_at DESC"
	if postgres {
		start += " NULLS LAST"
	}
	switch f.Sort {
	case SortFriction:
		q.OrderBy = "friction DESC, " + start + ", id DESC"
	case SortDuration:
		d := "(ended_at - started_at) DESC"
		if postgres {
			d += " NULLS LAST"
		}
		q.OrderBy = d + ", id DESC"
	case SortPages:
		q.OrderBy = "page_count DESC, " + start + ", id DESC"
	default:
		q.OrderBy = start + ", id DESC"
	}
	return q
}

// globToLike turns a glob (* and ?) into a LIKE pattern with \ escapes.
func globToLike(g string) string {
	var b strings.Builder
	for _, r := range g {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// globToGlob keeps * and ? of a glob and makes SQLite's [ literal.
func globToGlob(g string) string {
	return strings.ReplaceAll(g, "[", "[[]")
}

// GlobMatch reports whether s matches glob g (* any run of characters,
// including none and "/", ? one character), as the list's filters do.
func GlobMatch(g, s string) bool {
	// Iterative wildcard match with backtracking to the last *.
	gi, si := 0, 0
	star, mark := -1, 0
	gr, sr := []rune(g), []rune(s)
	for si < len(sr) {
		switch {
		case gi < len(gr) && (gr[gi] == '?' || gr[gi] == sr[si]):
			gi++
			si++
		case gi < len(gr) && gr[gi] == '*':
			star, mark = gi, si
			gi++
		case star >= 0:
			gi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for gi < len(gr) && gr[gi] == '*' {
		gi++
	}
	return gi == len(gr)
}
