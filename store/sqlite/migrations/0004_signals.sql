-- Behaviour signals (issue 6): rage, dead and error clicks, script and
-- console errors, server errors, failed and slow requests, form abandonment;
-- their counters and the friction score on the session; exit page, user id
-- and conversion; tags and notes. Times are Unix milliseconds.
-- See store/signals.go for the rules that raise each signal and the
-- friction formula.

-- One row per signal, in the order raised (rowid breaks ties of at).
-- kind: rage_click, dead_click, error_click, js_error, console_error,
-- server_error, failed_request, slow_request, form_abandon.
CREATE TABLE signals (
    session_id   TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    page_view_id TEXT    NOT NULL DEFAULT '',
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    x            INTEGER NOT NULL DEFAULT 0, -- CSS pixels, clicks only
    y            INTEGER NOT NULL DEFAULT 0,
    node_id      INTEGER NOT NULL DEFAULT 0, -- rrweb node id of the target, 0 if none
    target       TEXT    NOT NULL DEFAULT '', -- readable element, e.g. button "Add to cart"
    url          TEXT    NOT NULL DEFAULT '', -- page URL
    detail       TEXT    NOT NULL DEFAULT ''  -- message, status, click count…
) STRICT;
CREATE INDEX signals_by_session ON signals (session_id, at);
CREATE INDEX signals_by_kind    ON signals (kind, session_id);

ALTER TABLE sessions ADD COLUMN rage_click_count   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN dead_click_count   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN error_click_count  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN js_error_count     INTEGER NOT NULL DEFAULT 0; -- kinds error and rejection
ALTER TABLE sessions ADD COLUMN server_error_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN form_abandon_count INTEGER NOT NULL DEFAULT 0;
-- store.Friction of the counters and converted; recomputed with them.
ALTER TABLE sessions ADD COLUMN friction           REAL    NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN exit_url           TEXT    NOT NULL DEFAULT ''; -- url of the latest page view that has one
ALTER TABLE sessions ADD COLUMN user_id            TEXT    NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN converted          INTEGER NOT NULL DEFAULT 0; -- 1 once a page view matched the conversion pattern

-- Sorts and filters of the session list.
CREATE INDEX sessions_by_friction ON sessions (friction DESC, started_at DESC, id DESC);
CREATE INDEX sessions_by_duration ON sessions ((ended_at - started_at) DESC, id DESC);
CREATE INDEX sessions_by_pages    ON sessions (page_count DESC, started_at DESC, id DESC);
CREATE INDEX sessions_by_user     ON sessions (user_id, started_at DESC);
CREATE INDEX sessions_by_os       ON sessions (os, started_at DESC);
CREATE INDEX sessions_by_entry    ON sessions (entry_url, started_at DESC);
CREATE INDEX sessions_by_exit     ON sessions (exit_url, started_at DESC);
-- signal= filters, newest first: few sessions have each signal.
CREATE INDEX sessions_with_rage_click   ON sessions (started_at DESC, id DESC) WHERE rage_click_count > 0;
CREATE INDEX sessions_with_dead_click   ON sessions (started_at DESC, id DESC) WHERE dead_click_count > 0;
CREATE INDEX sessions_with_error_click  ON sessions (started_at DESC, id DESC) WHERE error_click_count > 0;
CREATE INDEX sessions_with_js_error     ON sessions (started_at DESC, id DESC) WHERE js_error_count > 0;
CREATE INDEX sessions_with_server_error ON sessions (started_at DESC, id DESC) WHERE server_error_count > 0;
CREATE INDEX sessions_with_form_abandon ON sessions (started_at DESC, id DESC) WHERE form_abandon_count > 0;

-- Signal derivation's state of a page view between its batches (clicks
-- whose verdict waits for later events, a rage burst in progress, inputs
-- not yet submitted), JSON of store.SignalState; '' when there is none.
ALTER TABLE page_views ADD COLUMN signal_state TEXT NOT NULL DEFAULT '';

-- The recorder's readable description of the clicked element ('' if the
-- recorder sent none).
ALTER TABLE clicks ADD COLUMN target TEXT NOT NULL DEFAULT '';

CREATE TABLE session_tags (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (session_id, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX session_tags_by_tag ON session_tags (tag, session_id);

CREATE TABLE session_notes (
    id         INTEGER NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    at_ms      INTEGER,           -- moment of the replay it is about (ms since session start); NULL for the whole session
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX session_notes_by_session ON session_notes (session_id, id);
