-- Logins of the replay server ended by signing out, as in SQLite's
-- 0009_revoked_logins.sql.
CREATE TABLE revoked_logins (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    expires_at bigint NOT NULL -- Unix ms
);

CREATE INDEX revoked_logins_expires_at ON revoked_logins (expires_at);
