-- Logins of the replay server ended by signing out (store.Users.RevokeLogin).
-- id is the random id a login cookie carries; expires_at (Unix ms) is the
-- cookie's expiry, after which the row is no longer needed and is deleted
-- when another login is revoked.
CREATE TABLE revoked_logins (
    id         TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_logins_expires_at ON revoked_logins (expires_at);
