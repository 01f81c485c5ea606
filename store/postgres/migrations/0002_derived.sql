-- Derived rows (clicks, inputs, script errors), visitor enrichment and
-- acquisition, and keyframe-dictionary chunks (see store/chunk): SQLite's
-- 0002_derived.sql in PostgreSQL types.
-- Times are Unix milliseconds, sizes CSS pixels; '' and 0 mean unknown.

ALTER TABLE sessions
    ADD COLUMN input_count     integer NOT NULL DEFAULT 0,
    ADD COLUMN error_count     integer NOT NULL DEFAULT 0,
    -- Client: from the first batch received that has any of it.
    ADD COLUMN browser         text    NOT NULL DEFAULT '',
    ADD COLUMN browser_version text    NOT NULL DEFAULT '',
    ADD COLUMN os              text    NOT NULL DEFAULT '',
    ADD COLUMN device          text    NOT NULL DEFAULT '',
    ADD COLUMN country         text    NOT NULL DEFAULT '',
    ADD COLUMN ip_hash         text    NOT NULL DEFAULT '',
    ADD COLUMN ip              text    NOT NULL DEFAULT '',
    -- Acquisition: from the earliest page view that reported its page info;
    -- viewport: from the earliest page view that has one.
    ADD COLUMN referrer        text    NOT NULL DEFAULT '',
    ADD COLUMN language        text    NOT NULL DEFAULT '',
    ADD COLUMN viewport_w      integer NOT NULL DEFAULT 0,
    ADD COLUMN viewport_h      integer NOT NULL DEFAULT 0,
    ADD COLUMN utm_source      text    NOT NULL DEFAULT '',
    ADD COLUMN utm_medium      text    NOT NULL DEFAULT '',
    ADD COLUMN utm_campaign    text    NOT NULL DEFAULT '',
    -- The chunk whose events are the dictionary of the session's later
    -- chunks: the first one of at least chunk.MinKeyframe raw bytes. Set once.
    ADD COLUMN keyframe_page_view_id text COLLATE "C",
    ADD COLUMN keyframe_seq          integer;

-- Filters of the session list, newest first within them.
CREATE INDEX sessions_by_browser ON sessions (browser, started_at DESC NULLS LAST);
CREATE INDEX sessions_by_device  ON sessions (device, started_at DESC NULLS LAST);
CREATE INDEX sessions_by_country ON sessions (country, started_at DESC NULLS LAST);

ALTER TABLE page_views
    ADD COLUMN input_count  integer NOT NULL DEFAULT 0,
    ADD COLUMN error_count  integer NOT NULL DEFAULT 0,
    ADD COLUMN scroll_depth integer NOT NULL DEFAULT 0, -- max over batches
    -- Viewport of the lowest-seq batch that has one (viewport_seq), like url.
    ADD COLUMN viewport_w   integer NOT NULL DEFAULT 0,
    ADD COLUMN viewport_h   integer NOT NULL DEFAULT 0,
    ADD COLUMN viewport_seq integer,
    -- Page info, from the first batch received with one (seq 0); has_page
    -- is true once it arrived, since every field of it may be ''.
    ADD COLUMN has_page     boolean NOT NULL DEFAULT false,
    ADD COLUMN referrer     text    NOT NULL DEFAULT '',
    ADD COLUMN language     text    NOT NULL DEFAULT '',
    ADD COLUMN utm_source   text    NOT NULL DEFAULT '',
    ADD COLUMN utm_medium   text    NOT NULL DEFAULT '',
    ADD COLUMN utm_campaign text    NOT NULL DEFAULT '',
    ADD COLUMN utm_term     text    NOT NULL DEFAULT '',
    ADD COLUMN utm_content  text    NOT NULL DEFAULT '';

-- codec 'zstd-dict': data was compressed with the events of chunk
-- (dict_page_view_id, dict_seq) as a raw dictionary; NULL otherwise.
ALTER TABLE chunks
    ADD COLUMN dict_page_view_id text COLLATE "C",
    ADD COLUMN dict_seq          integer;

-- Derived rows, in event order within a batch (id, in insertion order,
-- breaks ties of at, as SQLite's rowid does).
CREATE TABLE clicks (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id text COLLATE "C" NOT NULL,
    at           bigint  NOT NULL,
    x            integer NOT NULL,
    y            integer NOT NULL,
    node_id      integer NOT NULL
);
CREATE INDEX clicks_by_session ON clicks (session_id, at, id);

CREATE TABLE inputs (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id text COLLATE "C" NOT NULL,
    at           bigint  NOT NULL,
    node_id      integer NOT NULL
);
CREATE INDEX inputs_by_session ON inputs (session_id, at, id);

CREATE TABLE js_errors (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id text COLLATE "C" NOT NULL,
    at           bigint  NOT NULL,
    kind         text    NOT NULL,
    message      text    NOT NULL,
    stack        text    NOT NULL,
    source       text    NOT NULL,
    line         integer NOT NULL,
    col          integer NOT NULL
);
CREATE INDEX js_errors_by_session ON js_errors (session_id, at, id);
