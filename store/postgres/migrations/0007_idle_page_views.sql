-- Page views that still wait for verdicts, as in SQLite's
-- 0007_idle_page_views.sql.
CREATE INDEX page_views_with_state ON page_views (id) WHERE signal_state <> '';
