-- The asset archive (package archive), as in SQLite's 0003_assets.sql:
-- bodies of stylesheets, fonts and images, content-addressed, and when each
-- URL had which body. Times are Unix milliseconds; URLs compare bytewise.

-- One row per distinct body. data is the body (decoded, identity) encoded
-- by store/chunk's EncodeAsset: codec 'zstd' for textual bodies, 'identity'
-- for the rest.
CREATE TABLE asset_bodies (
    hash       text COLLATE "C" NOT NULL PRIMARY KEY, -- hex SHA-256 of the body
    codec      text   NOT NULL,
    size       bigint NOT NULL,                       -- body length, before encoding
    data       bytea  NOT NULL,
    created_at bigint NOT NULL
);
-- Compressed by us or compressed formats (PNG, WOFF2): store as is.
ALTER TABLE asset_bodies ALTER COLUMN data SET STORAGE EXTERNAL;

-- One row each time a URL was seen with a body other than its latest one.
CREATE TABLE asset_captures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- breaks ties of captured_at
    url          text COLLATE "C" NOT NULL,                        -- normalized absolute URL
    hash         text COLLATE "C" NOT NULL REFERENCES asset_bodies (hash),
    content_type text   NOT NULL,
    size         bigint NOT NULL,
    captured_at  bigint NOT NULL
);
-- Capture lookups by URL and time (id: their order, as SQLite's rowid).
CREATE INDEX asset_captures_by_url ON asset_captures (url, captured_at, id);
-- Body's content type, and pruning bodies no capture uses.
CREATE INDEX asset_captures_by_hash ON asset_captures (hash, captured_at, id);

-- Asset URLs each session's events reference (store.Batch.AssetURLs): what
-- replaying it needs, and so what retention keeps.
CREATE TABLE session_assets (
    session_id text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    url        text COLLATE "C" NOT NULL,
    PRIMARY KEY (session_id, url)
);
-- Pruning: which sessions reference a URL.
CREATE INDEX session_assets_by_url ON session_assets (url);
