-- The browser tab a page view ran in (the recorder's per-tab id, kept in
-- sessionStorage; page info, so from the first batch received with one):
-- a new page view ends the session's earlier, unfinished ones only in its
-- own tab, so a form left open in another tab is not called abandoned.
-- '' when unknown (a recorder older than this, or no sessionStorage).
ALTER TABLE page_views ADD COLUMN tab TEXT NOT NULL DEFAULT '';
