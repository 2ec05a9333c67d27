-- The command of an exec session (bounded, control characters escaped), for the session lists.
ALTER TABLE sessions ADD COLUMN command TEXT;
