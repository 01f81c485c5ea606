package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/loupe-dev/loupe/store"
	"github.com/loupe-dev/loupe/store/chunk"
)

// Listing bounds, as documented on store.SessionFilter.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// AppendBatch's statements, store/sqlite's in PostgreSQL. pgx prepares
// each once per connection and caches it. least() and greatest() ignore
// NULLs, which is what SQLite's coalesce pairs spell out.
const (
	// First, so that the session's row lock is held for the rest of the
	// transaction: appends to one session serialize here, and the statements
	// below (each with its own READ COMMITTED snapshot) see every page view
	// committed by the appends before. The client's fields are taken
	// together from the first batch that has any of them. The keyframe is
	// set once; RETURNING gives the session's keyframe after the update.
	upsertSessionSQL = `
	INSERT INTO sessions AS s (id, started_at, ended_at, click_count, input_count, error_count, event_count,
		user_agent, bytes, stored_bytes, created_at,
		browser, browser_version, os, device, country, ip_hash, ip,
		keyframe_page_view_id, keyframe_seq)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
	ON CONFLICT (id) DO UPDATE SET
		started_at   = least(s.started_at, excluded.started_at),
		ended_at     = greatest(s.ended_at, excluded.ended_at),
		click_count  = s.click_count + excluded.click_count,
		input_count  = s.input_count + excluded.input_count,
		error_count  = s.error_count + excluded.error_count,
		event_count  = s.event_count + excluded.event_count,
		user_agent   = CASE WHEN s.user_agent = '' THEN excluded.user_agent ELSE s.user_agent END,
		bytes        = s.bytes + excluded.bytes,
		stored_bytes = s.stored_bytes + excluded.stored_bytes,
		created_at   = coalesce(s.created_at, excluded.created_at),
		browser         = CASE WHEN ` + clientEmpty + ` THEN excluded.browser ELSE s.browser END,
		browser_version = CASE WHEN ` + clientEmpty + ` THEN excluded.browser_version ELSE s.browser_version END,
		os              = CASE WHEN ` + clientEmpty + ` THEN excluded.os ELSE s.os END,
		device          = CASE WHEN ` + clientEmpty + ` THEN excluded.device ELSE s.device END,
		country         = CASE WHEN ` + clientEmpty + ` THEN excluded.country ELSE s.country END,
		ip_hash         = CASE WHEN ` + clientEmpty + ` THEN excluded.ip_hash ELSE s.ip_hash END,
		ip              = CASE WHEN ` + clientEmpty + ` THEN excluded.ip ELSE s.ip END,
		keyframe_page_view_id = coalesce(s.keyframe_page_view_id, excluded.keyframe_page_view_id),
		keyframe_seq          = coalesce(s.keyframe_seq, excluded.keyframe_seq)
	RETURNING keyframe_page_view_id, keyframe_seq`

	// clientEmpty: the stored client fields are all empty.
	clientEmpty = `s.browser || s.browser_version || s.os || s.device || s.country || s.ip_hash || s.ip = ''`

	// A page view's URL and viewport are those of its lowest-seq batch that
	// has one, whatever order its batches arrive in; its page info that of
	// the first batch received with one (there is one: seq 0). RETURNING
	// gives the page view's session, which must be the batch's.
	upsertPageViewSQL = `
	INSERT INTO page_views AS p (id, session_id, url, url_seq, started_at, ended_at, click_count, input_count, error_count, event_count,
		scroll_depth, viewport_w, viewport_h, viewport_seq,
		has_page, referrer, language, utm_source, utm_medium, utm_campaign, utm_term, utm_content, tab)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
	ON CONFLICT (id) DO UPDATE SET
		url          = CASE WHEN excluded.url_seq < coalesce(p.url_seq, excluded.url_seq + 1) THEN excluded.url ELSE p.url END,
		url_seq      = CASE WHEN excluded.url_seq < coalesce(p.url_seq, excluded.url_seq + 1) THEN excluded.url_seq ELSE p.url_seq END,
		started_at   = least(p.started_at, excluded.started_at),
		ended_at     = greatest(p.ended_at, excluded.ended_at),
		click_count  = p.click_count + excluded.click_count,
		input_count  = p.input_count + excluded.input_count,
		error_count  = p.error_count + excluded.error_count,
		event_count  = p.event_count + excluded.event_count,
		scroll_depth = greatest(p.scroll_depth, excluded.scroll_depth),
		viewport_w   = CASE WHEN excluded.viewport_seq < coalesce(p.viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_w ELSE p.viewport_w END,
		viewport_h   = CASE WHEN excluded.viewport_seq < coalesce(p.viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_h ELSE p.viewport_h END,
		viewport_seq = CASE WHEN excluded.viewport_seq < coalesce(p.viewport_seq, excluded.viewport_seq + 1) THEN excluded.viewport_seq ELSE p.viewport_seq END,
		referrer     = CASE WHEN p.has_page THEN p.referrer ELSE excluded.referrer END,
		language     = CASE WHEN p.has_page THEN p.language ELSE excluded.language END,
		utm_source   = CASE WHEN p.has_page THEN p.utm_source ELSE excluded.utm_source END,
		utm_medium   = CASE WHEN p.has_page THEN p.utm_medium ELSE excluded.utm_medium END,
		utm_campaign = CASE WHEN p.has_page THEN p.utm_campaign ELSE excluded.utm_campaign END,
		utm_term     = CASE WHEN p.has_page THEN p.utm_term ELSE excluded.utm_term END,
		utm_content  = CASE WHEN p.has_page THEN p.utm_content ELSE excluded.utm_content END,
		tab          = CASE WHEN p.has_page THEN p.tab ELSE excluded.tab END,
		has_page     = p.has_page OR excluded.has_page
	RETURNING session_id, signal_state, (xmax = 0) AS inserted`

	// No row inserted means the batch is a duplicate. A concurrent insert of
	// the same key waits for the other transaction and then does nothing.
	insertChunkSQL = `
	INSERT INTO chunks (page_view_id, seq, session_id, first_ts, last_ts, event_count, raw_bytes, received_at, codec, data,
		dict_page_view_id, dict_seq)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (page_view_id, seq) DO NOTHING`

	// Derived rows: one statement per table whatever the row count, the
	// columns sent as arrays. WITH ORDINALITY keeps the batch's event order
	// in the identity column, which breaks ties of at.
	insertClicksSQL = `
	INSERT INTO clicks (session_id, page_view_id, at, x, y, node_id, target)
	SELECT $1, $2, at, x, y, node_id, target
	FROM unnest($3::bigint[], $4::integer[], $5::integer[], $6::integer[], $7::text[]) WITH ORDINALITY AS r (at, x, y, node_id, target, n)
	ORDER BY n`
	insertInputsSQL = `
	INSERT INTO inputs (session_id, page_view_id, at, node_id)
	SELECT $1, $2, at, node_id
	FROM unnest($3::bigint[], $4::integer[]) WITH ORDINALITY AS r (at, node_id, n)
	ORDER BY n`
	insertErrorsSQL = `
	INSERT INTO js_errors (session_id, page_view_id, at, kind, message, stack, source, line, col)
	SELECT $1, $2, at, kind, message, stack, source, line, col
	FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::integer[])
		WITH ORDINALITY AS r (at, kind, message, stack, source, line, col, n)
	ORDER BY n`

	// $2 is the batch's AssetURLs.
	insertSessionAssetsSQL = `
		INSERT INTO session_assets (session_id, url)
		SELECT $1, u FROM unnest($2::text[]) AS u WHERE u <> ''
		ON CONFLICT DO NOTHING`
	// Derived from page_views rather than incremented, so that the entry
	// URL, acquisition and viewport are right even when a later page's
	// batch arrives first. It runs only when the batch can have changed
	// them (the session row is written again otherwise, with every one of
	// its indexes): $2 says the batch set a URL, page info or viewport;
	// else the batch must have given its page view its first events
	// ($4 > 0 and all of the page view's events are the batch's) or its
	// earliest timestamp ($5), which is what orders page views.
	updateSessionSQL = `
	UPDATE sessions SET
		page_count = (SELECT count(*) FROM page_views WHERE session_id = $1 AND event_count > 0),
		entry_url = coalesce((
			SELECT url FROM page_views
			WHERE session_id = $1 AND url <> ''
			ORDER BY started_at NULLS LAST, id
			LIMIT 1), ''),
		exit_url = coalesce((
			SELECT url FROM page_views
			WHERE session_id = $1 AND url <> ''
			ORDER BY started_at DESC NULLS LAST, id DESC
			LIMIT 1), ''),
		referrer     = coalesce(a.referrer, ''),
		language     = coalesce(a.language, ''),
		utm_source   = coalesce(a.utm_source, ''),
		utm_medium   = coalesce(a.utm_medium, ''),
		utm_campaign = coalesce(a.utm_campaign, ''),
		viewport_w   = coalesce(v.viewport_w, 0),
		viewport_h   = coalesce(v.viewport_h, 0)
	FROM (SELECT 1) AS one
	LEFT JOIN (
		SELECT referrer, language, utm_source, utm_medium, utm_campaign FROM page_views
		WHERE session_id = $1 AND has_page
		ORDER BY started_at NULLS LAST, id
		LIMIT 1) AS a ON true
	LEFT JOIN (
		SELECT viewport_w, viewport_h FROM page_views
		WHERE session_id = $1 AND viewport_w > 0
		ORDER BY started_at NULLS LAST, id
		LIMIT 1) AS v ON true
	WHERE sessions.id = $1 AND ($2 OR EXISTS (
		SELECT 1 FROM page_views p
		WHERE p.id = $3 AND ((p.event_count = $4 AND $4 > 0) OR p.started_at = $5)))`
)

// errKeyframeMoved reports that the keyframe a chunk was compressed against
// is not the session's (the session was deleted and its id reused).
var errKeyframeMoved = errors.New("keyframe is not the session's")

// AppendBatch stores b as one compressed chunk, its clicks, inputs and
// errors, and folds its summary into the page view and session rows, all
// in one transaction. It returns store.ErrDuplicate, storing nothing, if
// b's page view and sequence number are already stored.
//
// A batch with EventCount 0 is stored (so that a retry of it is still a
// duplicate) but its FirstTS and LastTS are ignored, and its page view does
// not count towards PageCount until it sends events.
func (db *DB) AppendBatch(ctx context.Context, b *store.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	// Compress before taking a connection for the transaction.
	kf, err := db.keyframe(ctx, b.SessionID)
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	c := chunk.EncodeBatch(b.Events, kf)
	err = db.tryAppend(ctx, b, &c)
	if errors.Is(err, errKeyframeMoved) {
		db.keyframes.Forget(b.SessionID)
		c = chunk.EncodeBatch(b.Events, nil)
		err = db.tryAppend(ctx, b, &c)
	}
	if err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	if c.IsKeyframe {
		// Copied: the caller may reuse b.Events.
		db.keyframes.Add(b.SessionID, chunk.NewKeyframe(b.PageViewID, b.Seq, b.Events))
	}
	return nil
}

// dbtx is what the append path uses of a transaction: a pgx.Tx, or the
// connection tryAppend began one on.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// tryAppend runs appendBatch in a transaction. Its BEGIN goes out in
// appendBatch's pipeline rather than in a round trip of its own (pgx.Tx
// would send it alone): on this path a round trip costs about as much CPU,
// here and in the server, as a statement's work.
func (db *DB) tryAppend(ctx context.Context, b *store.Batch, c *chunk.Encoded) (err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left in a transaction (ROLLBACK failed too) is closed
	// by Release rather than reused.
	defer conn.Release()
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := appendBatch(ctx, conn, b, c); err != nil {
		return err
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() == "ROLLBACK" { // the transaction had failed
		return fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// appendBatch begins a transaction on conn and sends all of the batch's
// statements in the same round trip (a pgx pipeline), then checks the
// results. When the batch turns out to be a duplicate, to name another
// session's page view, or to have been compressed against a keyframe that
// is not the session's, the caller's rollback undoes what the later
// statements did.
func appendBatch(ctx context.Context, conn dbtx, b *store.Batch, c *chunk.Encoded) error {
	// Timestamps only count for batches that hold events.
	var first, last, received *int64
	if b.EventCount > 0 {
		first, last = &b.FirstTS, &b.LastTS
	}
	if !b.ReceivedAt.IsZero() {
		ms := b.ReceivedAt.UnixMilli()
		received = &ms
	}
	var urlSeq, viewportSeq *int
	if b.URL != "" {
		urlSeq = &b.Seq
	}
	if b.ViewportW > 0 || b.ViewportH > 0 {
		viewportSeq = &b.Seq
	}
	// A chunk large enough proposes itself as the session's keyframe; the
	// session row keeps the first proposed.
	var newKF, dictPageView *string
	var newKFSeq, dictSeq *int
	if c.IsKeyframe {
		newKF, newKFSeq = &b.PageViewID, &b.Seq
	}
	if c.Dict != nil {
		dictPageView, dictSeq = &c.Dict.PageViewID, &c.Dict.Seq
	}
	var page store.PageInfo
	if b.Page != nil {
		page = *b.Page
	}
	cl := b.Client

	var q pgx.Batch
	q.Queue("BEGIN")
	q.Queue(upsertSessionSQL,
		b.SessionID, first, last, len(b.Clicks), len(b.Inputs), len(b.Errors), b.EventCount,
		b.UserAgent, len(b.Events), len(c.Data), received,
		cl.Browser, cl.BrowserVersion, cl.OS, cl.Device, cl.Country, cl.IPHash, cl.IP,
		newKF, newKFSeq)
	q.Queue(upsertPageViewSQL,
		b.PageViewID, b.SessionID, b.URL, urlSeq, first, last, len(b.Clicks), len(b.Inputs), len(b.Errors), b.EventCount,
		b.ScrollDepth, b.ViewportW, b.ViewportH, viewportSeq,
		b.Page != nil, page.Referrer, page.Language, page.UTMSource, page.UTMMedium, page.UTMCampaign, page.UTMTerm, page.UTMContent,
		page.Tab)
	q.Queue(insertChunkSQL,
		b.PageViewID, b.Seq, b.SessionID, first, last, b.EventCount, len(b.Events), received, c.Codec, c.Data,
		dictPageView, dictSeq)
	derived := queueDerived(&q, b)
	if len(b.AssetURLs) > 0 {
		q.Queue(insertSessionAssetsSQL, b.SessionID, b.AssetURLs)
		derived = append(derived, "session assets")
	}
	q.Queue(updateSessionSQL, b.SessionID,
		b.URL != "" || b.Page != nil || b.ViewportW > 0 || b.ViewportH > 0,
		b.PageViewID, b.EventCount, first)
	q.Queue(takePendingSQL, b.SessionID)

	br := conn.SendBatch(ctx, &q)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var kfPageView *string
	var kfSeq *int
	if err := br.QueryRow().Scan(&kfPageView, &kfSeq); err != nil {
		return fmt.Errorf("upsert session: %w", err)
	}
	var owner, state string
	var isNew bool
	if err := br.QueryRow().Scan(&owner, &state, &isNew); err != nil {
		return fmt.Errorf("upsert page view: %w", err)
	}
	if owner != b.SessionID {
		return fmt.Errorf("page view %q belongs to another session", b.PageViewID)
	}
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("insert chunk: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrDuplicate
	}
	// The keyframe after the upsert is the stored one if there was one, else
	// the one this chunk proposed, else none.
	switch {
	case c.Dict != nil && (kfPageView == nil || *kfPageView != c.Dict.PageViewID || *kfSeq != c.Dict.Seq):
		return errKeyframeMoved
	case c.IsKeyframe && (kfPageView == nil || *kfPageView != b.PageViewID || *kfSeq != b.Seq):
		c.IsKeyframe = false // another append set one first
	}
	for _, name := range derived {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("insert %s: %w", name, err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	// Requests the proxy logged before the session had a row (requests.go).
	pending, err := readPending(br, b.SessionID)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	if err := deriveSignals(ctx, conn, b, state, isNew); err != nil {
		return fmt.Errorf("signals: %w", err)
	}
	if err := applyEffect(ctx, conn, pending); err != nil {
		return fmt.Errorf("pending request effects: %w", err)
	}
	return nil
}

// queueDerived queues the inserts of the batch's clicks, inputs and errors
// and returns the names of the tables it queued inserts into, in order.
func queueDerived(q *pgx.Batch, b *store.Batch) []string {
	var names []string
	if n := len(b.Clicks); n > 0 {
		at, x, y, node, target := make([]int64, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]string, n)
		for i, c := range b.Clicks {
			at[i], x[i], y[i], node[i], target[i] = c.At, int32(c.X), int32(c.Y), int32(c.NodeID), c.Target
		}
		q.Queue(insertClicksSQL, b.SessionID, b.PageViewID, at, x, y, node, target)
		names = append(names, "clicks")
	}
	if n := len(b.Inputs); n > 0 {
		at, node := make([]int64, n), make([]int32, n)
		for i, in := range b.Inputs {
			at[i], node[i] = in.At, int32(in.NodeID)
		}
		q.Queue(insertInputsSQL, b.SessionID, b.PageViewID, at, node)
		names = append(names, "inputs")
	}
	if n := len(b.Errors); n > 0 {
		at := make([]int64, n)
		kind, msg, stack, src := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		line, col := make([]int32, n), make([]int32, n)
		for i, e := range b.Errors {
			at[i], kind[i], msg[i], stack[i], src[i] = e.At, e.Kind, e.Message, e.Stack, e.Source
			line[i], col[i] = int32(e.Line), int32(e.Column)
		}
		q.Queue(insertErrorsSQL, b.SessionID, b.PageViewID, at, kind, msg, stack, src, line, col)
		names = append(names, "errors")
	}
	return names
}

const sessionColumns = `id, started_at, ended_at, page_count, click_count, input_count, error_count, event_count,
	entry_url, user_agent, bytes, stored_bytes,
	browser, browser_version, os, device, country, ip_hash, ip,
	referrer, language, viewport_w, viewport_h, utm_source, utm_medium, utm_campaign,
	rage_click_count, dead_click_count, error_click_count, js_error_count, server_error_count, form_abandon_count,
	friction, converted, exit_url, user_id`

// Session returns the session with the given id, or store.ErrNotFound.
func (db *DB) Session(ctx context.Context, id string) (*store.Session, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id)
	s, err := scanSession(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get session %q: %w", id, err)
	}
	return s, nil
}

func scanSession(row pgx.Row) (*store.Session, error) {
	var s store.Session
	var started, ended *int64
	c := &s.Client
	if err := row.Scan(&s.ID, &started, &ended, &s.PageCount, &s.ClickCount, &s.InputCount, &s.ErrorCount, &s.EventCount,
		&s.EntryURL, &s.UserAgent, &s.Bytes, &s.StoredBytes,
		&c.Browser, &c.BrowserVersion, &c.OS, &c.Device, &c.Country, &c.IPHash, &c.IP,
		&s.Referrer, &s.Language, &s.ViewportW, &s.ViewportH, &s.UTMSource, &s.UTMMedium, &s.UTMCampaign,
		&s.Signals.RageClick, &s.Signals.DeadClick, &s.Signals.ErrorClick, &s.Signals.JSError, &s.Signals.ServerError, &s.Signals.FormAbandon,
		&s.Friction, &s.Converted, &s.ExitURL, &s.UserID); err != nil {
		return nil, err
	}
	s.StartedAt = msTime(started)
	s.EndedAt = msTime(ended)
	return &s, nil
}

// msTime converts Unix ms to a UTC time; NULL becomes the zero time.
func msTime(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return time.UnixMilli(*ms).UTC()
}

// Activity returns the session's page views, clicks, inputs and errors,
// each in time order (then in the order stored), from one snapshot. Each
// list is empty, not nil, when there is nothing in it.
func (db *DB) Activity(ctx context.Context, id string) (*store.Activity, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("activity %q: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("activity %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("activity %q: %w", id, err)
	}

	a := &store.Activity{PageViews: []*store.PageView{}, Clicks: []store.Click{}, Inputs: []store.Input{}, Errors: []store.JSError{}}
	// Page views without events yet have no start; they come last.
	err = query(ctx, tx, `
		SELECT id, session_id, url, started_at, ended_at, referrer, viewport_w, viewport_h, scroll_depth,
			click_count, input_count, error_count, event_count
		FROM page_views WHERE session_id = $1 ORDER BY started_at NULLS LAST, id`, id,
		func(rows pgx.Rows) error {
			pv := &store.PageView{}
			var start, end *int64
			if err := rows.Scan(&pv.ID, &pv.SessionID, &pv.URL, &start, &end, &pv.Referrer, &pv.ViewportW, &pv.ViewportH, &pv.ScrollDepth,
				&pv.ClickCount, &pv.InputCount, &pv.ErrorCount, &pv.EventCount); err != nil {
				return err
			}
			pv.StartedAt, pv.EndedAt = msTime(start), msTime(end)
			a.PageViews = append(a.PageViews, pv)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: page views: %w", id, err)
	}
	err = query(ctx, tx, `SELECT page_view_id, at, x, y, node_id, target FROM clicks WHERE session_id = $1 ORDER BY at, id`, id,
		func(rows pgx.Rows) error {
			var c store.Click
			if err := rows.Scan(&c.PageViewID, &c.At, &c.X, &c.Y, &c.NodeID, &c.Target); err != nil {
				return err
			}
			a.Clicks = append(a.Clicks, c)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: clicks: %w", id, err)
	}
	err = query(ctx, tx, `SELECT page_view_id, at, node_id FROM inputs WHERE session_id = $1 ORDER BY at, id`, id,
		func(rows pgx.Rows) error {
			var in store.Input
			if err := rows.Scan(&in.PageViewID, &in.At, &in.NodeID); err != nil {
				return err
			}
			a.Inputs = append(a.Inputs, in)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: inputs: %w", id, err)
	}
	err = query(ctx, tx, `
		SELECT page_view_id, at, kind, message, stack, source, line, col
		FROM js_errors WHERE session_id = $1 ORDER BY at, id`, id,
		func(rows pgx.Rows) error {
			var e store.JSError
			if err := rows.Scan(&e.PageViewID, &e.At, &e.Kind, &e.Message, &e.Stack, &e.Source, &e.Line, &e.Column); err != nil {
				return err
			}
			a.Errors = append(a.Errors, e)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("activity %q: errors: %w", id, err)
	}
	return a, nil
}

// query runs q and calls scan for each row.
func query(ctx context.Context, tx pgx.Tx, q string, arg any, scan func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, q, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
