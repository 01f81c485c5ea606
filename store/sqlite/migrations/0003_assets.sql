-- The asset archive (package archive): bodies of stylesheets, fonts and
-- images, content-addressed, and when each URL had which body.
-- Times are Unix milliseconds.

-- One row per distinct body. data is the body (decoded, identity) encoded
-- by store/chunk's EncodeAsset: codec 'zstd' for textual bodies, 'identity'
-- for the rest.
CREATE TABLE asset_bodies (
    hash       TEXT    NOT NULL PRIMARY KEY, -- hex SHA-256 of the body
    codec      TEXT    NOT NULL,
    size       INTEGER NOT NULL,             -- body length, before encoding
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- One row each time a URL was seen with a body other than its latest one.
CREATE TABLE asset_captures (
    id           INTEGER NOT NULL PRIMARY KEY, -- breaks ties of captured_at
    url          TEXT    NOT NULL,             -- normalized absolute URL
    hash         TEXT    NOT NULL REFERENCES asset_bodies (hash),
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    captured_at  INTEGER NOT NULL
) STRICT;
-- Capture lookups by URL and time.
CREATE INDEX asset_captures_by_url ON asset_captures (url, captured_at);
-- Body's content type, and pruning bodies no capture uses.
CREATE INDEX asset_captures_by_hash ON asset_captures (hash, captured_at);

-- Asset URLs each session's events reference (store.Batch.AssetURLs): what
-- replaying it needs, and so what retention keeps.
CREATE TABLE session_assets (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    PRIMARY KEY (session_id, url)
) STRICT, WITHOUT ROWID;
-- Pruning: which sessions reference a URL.
CREATE INDEX session_assets_by_url ON session_assets (url);
