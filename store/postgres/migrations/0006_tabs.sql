-- The browser tab a page view ran in, as in SQLite's 0006_tabs.sql: a new
-- page view ends the session's earlier, unfinished ones only in its own
-- tab. '' when unknown.
ALTER TABLE page_views ADD COLUMN tab text COLLATE "C" NOT NULL DEFAULT '';
