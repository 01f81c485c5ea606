-- Loupe's first PostgreSQL schema, the same as SQLite's 0001_init.sql.
-- Times are Unix milliseconds (bigint), as in SQLite, so that both backends
-- compute identical summaries. Identifiers compare bytewise (COLLATE "C"),
-- as SQLite's TEXT does, whatever the database's locale.
-- Migrations are append-only: never edit this file once released; add 0002_….sql.

-- One row per visitor session, kept current by every AppendBatch so that
-- listings and search never read event chunks.
CREATE TABLE sessions (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    started_at   bigint,            -- first event; NULL until a batch with events arrives
    ended_at     bigint,            -- last event; NULL likewise
    page_count   integer NOT NULL DEFAULT 0, -- page views with at least one event
    click_count  integer NOT NULL DEFAULT 0,
    event_count  integer NOT NULL DEFAULT 0,
    entry_url    text    NOT NULL DEFAULT '', -- url of the earliest page view that has one
    user_agent   text    NOT NULL DEFAULT '', -- from the first batch received
    bytes        bigint  NOT NULL DEFAULT 0,  -- events as received (JSON)
    stored_bytes bigint  NOT NULL DEFAULT 0,  -- compressed chunk data
    created_at   bigint             -- when the first batch was received; NULL if unknown
);

-- Listing is newest first, sessions without events last; id breaks ties so
-- that paging is stable.
CREATE INDEX sessions_by_start ON sessions (started_at DESC NULLS LAST, id DESC);

CREATE TABLE page_views (
    id          text COLLATE "C" NOT NULL PRIMARY KEY,
    session_id  text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    url         text    NOT NULL DEFAULT '', -- from the lowest-seq batch that carried a URL
    url_seq     integer,                     -- that batch's seq; NULL while url is ''
    started_at  bigint,
    ended_at    bigint,
    click_count integer NOT NULL DEFAULT 0,
    event_count integer NOT NULL DEFAULT 0
);

CREATE INDEX page_views_by_session ON page_views (session_id, started_at);

-- One row per batch. data is the batch's JSON array compressed with codec.
CREATE TABLE chunks (
    page_view_id text COLLATE "C" NOT NULL REFERENCES page_views (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    session_id   text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    first_ts     bigint,            -- NULL for a batch without events
    last_ts      bigint,
    event_count  integer NOT NULL,
    raw_bytes    integer NOT NULL,  -- len of the JSON as received
    received_at  bigint,
    codec        text    NOT NULL,  -- 'zstd': one zstd frame
    data         bytea   NOT NULL,
    PRIMARY KEY (page_view_id, seq)
);
-- Chunk data is already compressed: store it inline-or-out-of-line as is.
ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Covers WriteEvents' WHERE and ORDER BY (SQLite sorts NULL first), so
-- chunks stream without a sort.
CREATE INDEX chunks_by_session ON chunks (session_id, first_ts NULLS FIRST, page_view_id, seq);
