-- The replay server's logins (store.Users). Names are compared as stored
-- (store.CheckUserName allows one spelling); password_hash is a bcrypt
-- hash, kept as given. created_at is Unix ms.
CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- The name of the user who wrote a note; '' for notes written before the
-- replay server had logins. Not a reference: a note outlives its author's
-- account.
ALTER TABLE session_notes ADD COLUMN author TEXT NOT NULL DEFAULT '';
