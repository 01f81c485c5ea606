-- Loupe's first SQLite schema. Times are Unix milliseconds (INTEGER).
-- Migrations are append-only: never edit this file once released; add 0002_….sql.

-- One row per visitor session, kept current by every AppendBatch so that
-- listings and search never read event chunks.
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    started_at   INTEGER,           -- first event; NULL until a batch with events arrives
    ended_at     INTEGER,           -- last event; NULL likewise
    page_count   INTEGER NOT NULL DEFAULT 0, -- page views with at least one event
    click_count  INTEGER NOT NULL DEFAULT 0,
    event_count  INTEGER NOT NULL DEFAULT 0,
    entry_url    TEXT    NOT NULL DEFAULT '', -- url of the earliest page view that has one
    user_agent   TEXT    NOT NULL DEFAULT '', -- from the first batch received
    bytes        INTEGER NOT NULL DEFAULT 0,  -- events as received (JSON)
    stored_bytes INTEGER NOT NULL DEFAULT 0,  -- compressed chunk data
    created_at   INTEGER            -- when the first batch was received; NULL if unknown
) STRICT;

-- Listing is newest first; id breaks ties so that paging is stable.
CREATE INDEX sessions_by_start ON sessions (started_at DESC, id DESC);

CREATE TABLE page_views (
    id          TEXT    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL DEFAULT '', -- from the lowest-seq batch that carried a URL
    url_seq     INTEGER,                     -- that batch's seq; NULL while url is ''
    started_at  INTEGER,
    ended_at    INTEGER,
    click_count INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX page_views_by_session ON page_views (session_id, started_at);

-- One row per batch. data is the batch's JSON array compressed with codec.
CREATE TABLE chunks (
    page_view_id TEXT    NOT NULL REFERENCES page_views (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    session_id   TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    first_ts     INTEGER,           -- NULL for a batch without events
    last_ts      INTEGER,
    event_count  INTEGER NOT NULL,
    raw_bytes    INTEGER NOT NULL,  -- len of the JSON as received
    received_at  INTEGER,
    codec        TEXT    NOT NULL,  -- 'zstd': one zstd frame
    data         BLOB    NOT NULL,
    PRIMARY KEY (page_view_id, seq)
) STRICT;

-- Covers WriteEvents' WHERE and ORDER BY, so chunks stream without a sort.
CREATE INDEX chunks_by_session ON chunks (session_id, first_ts, page_view_id, seq);
