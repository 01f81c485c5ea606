-- The proxy's network log (issue 6): one row per request of a recorded
-- session, as the proxy served it. Times are Unix milliseconds.
--
-- session_id has no reference to sessions: the proxy logs a page's
-- requests within about a second, usually before the page's recorder has
-- sent its first batch, and a visitor whose browser runs no script never
-- gets a session row at all. Rows are found by session id once the session
-- exists. Requests that raise a signal (server_error, failed_request,
-- slow_request; see store.Request.Signal) or name a user create the
-- session's row, since signals and user_id live there.
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
