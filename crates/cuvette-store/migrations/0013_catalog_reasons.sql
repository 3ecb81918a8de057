-- Why each version of a test definition was saved (the verification or source a change
-- follows), kept with the version it explains. Versions saved before reasons were asked for
-- read as empty.
ALTER TABLE test_definition ADD COLUMN reason TEXT NOT NULL DEFAULT '';
