-- Times are fixed-width UTC text (see the SQLite migration 35). A PostgreSQL database has only
-- ever been written in that form; audit events get `at_utc` as on SQLite.
ALTER TABLE audit_events ADD COLUMN at_utc TEXT;
UPDATE audit_events SET at_utc = at;
CREATE INDEX audit_events_by_time ON audit_events (at_utc);
