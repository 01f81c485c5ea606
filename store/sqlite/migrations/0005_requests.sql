-- The proxy's network log (issue 6): one row per request of a recorded
-- session, as the proxy served it. Times are Unix milliseconds.
--
-- session_id has no reference to sessions: the proxy logs a page's
-- requests within about a second, usually before the page's recorder has
-- sent its first batch, and a visitor whose browser runs no script (a bot)
-- or whose session is not recorded never gets a session row at all. Rows
-- are found by session id once the session exists.
CREATE TABLE requests (
    session_id   TEXT    NOT NULL,
    page_view_id TEXT    NOT NULL DEFAULT '', -- page view the proxy minted for an HTML response; '' otherwise
    at           INTEGER NOT NULL,            -- arrival
    method       TEXT    NOT NULL,
    url          TEXT    NOT NULL,            -- path and query as the visitor asked
    status       INTEGER NOT NULL,            -- 0: no response sent; 101: protocol switch
    duration_ms  INTEGER NOT NULL,            -- arrival to last body byte written
    bytes        INTEGER NOT NULL             -- response body bytes sent
) STRICT;
CREATE INDEX requests_by_session ON requests (session_id, at);

-- What requests of a session without a row yet do to it, kept until the
-- session's first batch creates the row (AppendBatch applies and deletes
-- them): a signal (kind server_error, failed_request or slow_request, with
-- its page view, url and detail), or a user id (kind '').
CREATE TABLE request_effects (
    session_id   TEXT    NOT NULL,
    page_view_id TEXT    NOT NULL DEFAULT '',
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL DEFAULT '',
    url          TEXT    NOT NULL DEFAULT '',
    detail       TEXT    NOT NULL DEFAULT '',
    user_id      TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX request_effects_by_session ON request_effects (session_id, at);
