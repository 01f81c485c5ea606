-- The proxy's network log (issue 6), as in SQLite's 0005_requests.sql: one
-- row per request of a recorded session, as the proxy served it. Times are
-- Unix milliseconds.
--
-- session_id has no reference to sessions: the proxy logs a page's
-- requests within about a second, usually before the page's recorder has
-- sent its first batch, and a visitor whose browser runs no script (a bot)
-- or whose session is not recorded never gets a session row at all. Rows
-- are found by session id once the session exists.
CREATE TABLE requests (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- insertion order, breaks ties of at
    session_id   text COLLATE "C" NOT NULL,
    page_view_id text COLLATE "C" NOT NULL DEFAULT '', -- page view the proxy minted for an HTML response; '' otherwise
    at           bigint  NOT NULL,            -- arrival
    method       text    NOT NULL,
    url          text    NOT NULL,            -- path and query as the visitor asked
    status       integer NOT NULL,            -- 0: no response sent; 101: protocol switch
    duration_ms  bigint  NOT NULL,            -- arrival to last body byte written
    bytes        bigint  NOT NULL             -- response body bytes sent
);
CREATE INDEX requests_by_session ON requests (session_id, at, id);

-- What requests of a session without a row yet do to it, kept until the
-- session's first batch creates the row (AppendBatch applies and deletes
-- them): a signal (kind server_error, failed_request or slow_request, with
-- its page view, url and detail), or a user id (kind '').
CREATE TABLE request_effects (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   text COLLATE "C" NOT NULL,
    page_view_id text COLLATE "C" NOT NULL DEFAULT '',
    at           bigint  NOT NULL,
    kind         text COLLATE "C" NOT NULL DEFAULT '',
    url          text    NOT NULL DEFAULT '',
    detail       text    NOT NULL DEFAULT '',
    user_id      text COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX request_effects_by_session ON request_effects (session_id, at, id);
