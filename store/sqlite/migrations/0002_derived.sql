-- Derived rows (clicks, inputs, script errors), visitor enrichment and
-- acquisition, and keyframe-dictionary chunks (see store/chunk).
-- Times are Unix milliseconds, sizes CSS pixels; '' and 0 mean unknown.

ALTER TABLE sessions ADD COLUMN input_count     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN error_count     INTEGER NOT NULL DEFAULT 0;
-- Client: from the first batch received that has any of it.
ALTER TABLE sessions ADD COLUMN browser         TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN browser_version TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN os              TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN device          TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN country         TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN ip_hash         TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN ip              TEXT    NOT NULL DEFAULT '';
-- Acquisition: from the earliest page view that reported its page info;
-- viewport: from the earliest page view that has one.
ALTER TABLE sessions ADD COLUMN referrer        TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN language        TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN viewport_w      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN viewport_h      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN utm_source      TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN utm_medium      TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN utm_campaign    TEXT    NOT NULL DEFAULT '';
-- The chunk whose events are the dictionary of the session's later chunks:
-- the first one of at least chunk.MinKeyframe raw bytes. Set once.
ALTER TABLE sessions ADD COLUMN keyframe_page_view_id TEXT;
ALTER TABLE sessions ADD COLUMN keyframe_seq          INTEGER;

-- Filters of the session list, newest first within them.
CREATE INDEX sessions_by_browser ON sessions (browser, started_at DESC);
CREATE INDEX sessions_by_device  ON sessions (device, started_at DESC);
CREATE INDEX sessions_by_country ON sessions (country, started_at DESC);

ALTER TABLE page_views ADD COLUMN input_count  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_views ADD COLUMN error_count  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_views ADD COLUMN scroll_depth INTEGER NOT NULL DEFAULT 0; -- max over batches
-- Viewport of the lowest-seq batch that has one (viewport_seq), like url.
ALTER TABLE page_views ADD COLUMN viewport_w   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_views ADD COLUMN viewport_h   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_views ADD COLUMN viewport_seq INTEGER;
-- Page info, from the first batch received with one (seq 0); has_page is 1
-- once it arrived, since every field of it may be ''.
ALTER TABLE page_views ADD COLUMN has_page     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE page_views ADD COLUMN referrer     TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN language     TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN utm_source   TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN utm_medium   TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN utm_campaign TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN utm_term     TEXT    NOT NULL DEFAULT '';
ALTER TABLE page_views ADD COLUMN utm_content  TEXT    NOT NULL DEFAULT '';

-- codec 'zstd-dict': data was compressed with the events of chunk
-- (dict_page_view_id, dict_seq) as a raw dictionary; NULL otherwise.
ALTER TABLE chunks ADD COLUMN dict_page_view_id TEXT;
ALTER TABLE chunks ADD COLUMN dict_seq          INTEGER;

-- Derived rows, in event order within a batch (rowid breaks ties of at).
CREATE TABLE clicks (
    session_id   TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    x            INTEGER NOT NULL,
    y            INTEGER NOT NULL,
    node_id      INTEGER NOT NULL
) STRICT;
CREATE INDEX clicks_by_session ON clicks (session_id, at);

CREATE TABLE inputs (
    session_id   TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    node_id      INTEGER NOT NULL
) STRICT;
CREATE INDEX inputs_by_session ON inputs (session_id, at);

CREATE TABLE js_errors (
    session_id   TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    stack        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    col          INTEGER NOT NULL
) STRICT;
CREATE INDEX js_errors_by_session ON js_errors (session_id, at);
