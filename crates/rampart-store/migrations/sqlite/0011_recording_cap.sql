-- The cap on each direction of a command's recording when the session started (recording.exec_cap);
-- NULL: recorded in full.
ALTER TABLE sessions ADD COLUMN recording_cap INTEGER;
