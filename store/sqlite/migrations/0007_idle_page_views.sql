-- Page views that still wait for verdicts (signal_state set), for the
-- periodic ending of those left without a pagehide (EndIdlePageViews):
-- few at any time, so the index stays small.
CREATE INDEX page_views_with_state ON page_views (id) WHERE signal_state <> '';
