-- The addresses an instrument's messages may come from, separated by one space; empty when
-- the lab has not restricted it. Listed addresses also have connection slots of their own on
-- the listeners.
ALTER TABLE instrument ADD COLUMN allowed_peers TEXT NOT NULL DEFAULT '';
