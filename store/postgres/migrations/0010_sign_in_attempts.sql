-- Sign-in attempts of the replay server per client address, shared by
-- every replay server of the store, as in SQLite's 0010_sign_in_attempts.sql.
CREATE TABLE sign_in_attempts (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    began_at   bigint NOT NULL, -- Unix ms
    ends_at    bigint NOT NULL, -- Unix ms
    attempts   integer NOT NULL
);

CREATE INDEX sign_in_attempts_ends_at ON sign_in_attempts (ends_at);
