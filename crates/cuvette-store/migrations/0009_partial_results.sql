-- What becomes of an instrument's message when some of its results cannot be taken (a code
-- not mapped, a unit that differs from the mapping): `hold` (or empty) keeps the whole message
-- in the quarantine; `store_mappable` stores the results that can be taken and keeps the
-- others in the quarantine with their reasons.
ALTER TABLE instrument ADD COLUMN unmapped_results TEXT;

-- What an instrument's code is mapped as: `result` (a result of the catalog test),
-- `ignore` (skipped, never quarantined: a research parameter, an image reference) or `flag`
-- (an instrument flag such as a hematology analyzer's `Blasts?`, stored on the specimen's
-- results, which then go to a technologist).
ALTER TABLE instrument_test_code ADD COLUMN disposition TEXT NOT NULL DEFAULT 'result';

-- For a message whose mappable results were stored: the OBX segments or R records (their
-- sequence numbers, space separated) kept in the quarantine; a replay takes only those.
ALTER TABLE interface_message ADD COLUMN held TEXT;
