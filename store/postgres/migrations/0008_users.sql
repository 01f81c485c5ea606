-- The replay server's logins, as in SQLite's 0008_users.sql. COLLATE "C"
-- orders names bytewise, as SQLite does.
CREATE TABLE users (
    name          text COLLATE "C" NOT NULL PRIMARY KEY,
    role          text COLLATE "C" NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    password_hash text   NOT NULL,
    created_at    bigint NOT NULL -- Unix ms
);

-- The name of the user who wrote a note; '' for notes written before the
-- replay server had logins. Not a reference: a note outlives its author's
-- account.
ALTER TABLE session_notes ADD COLUMN author text COLLATE "C" NOT NULL DEFAULT '';
