-- Sign-in attempts of the replay server per client address
-- (store.Users.SignInAttempt): attempts counted since began_at (Unix ms);
-- the row is deleted once ends_at is past, when another attempt is
-- recorded, and the next attempt from key begins a new window.
CREATE TABLE sign_in_attempts (
    key      TEXT    NOT NULL PRIMARY KEY,
    began_at INTEGER NOT NULL,
    ends_at  INTEGER NOT NULL,
    attempts INTEGER NOT NULL
) STRICT;

CREATE INDEX sign_in_attempts_ends_at ON sign_in_attempts (ends_at);
