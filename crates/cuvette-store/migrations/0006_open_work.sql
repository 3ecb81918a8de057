-- What waits for verification is marked on the ordered test itself, so the review queue reads
-- only what is open (through a partial index) however much released history there is.
-- Set when a result version is stored unreleased (an entry, a correction); cleared by its
-- release, and never set for a result autoverification releases as it is stored.
ALTER TABLE ordered_test ADD COLUMN awaiting_verification BIGINT NOT NULL DEFAULT 0;

UPDATE ordered_test SET awaiting_verification = 1
WHERE status IN ('in_process', 'preliminary', 'final')
  AND EXISTS (
    SELECT 1 FROM result r
    WHERE r.ordered_test_id = ordered_test.id AND r.released_at IS NULL
      AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = ordered_test.id)
  );

CREATE INDEX ordered_test_awaiting_verification ON ordered_test (id) WHERE awaiting_verification = 1;

-- A test's result versions are read by the latest version (`MAX(version)` per test) on every
-- list; the unique (ordered_test_id, version) constraint already indexes that.

-- Critical results waiting for their call (the list, the banner every page polls, the
-- escalation job) are found among the critical results only, by time. The condition is the
-- one the queries write, so both engines use the index.
CREATE INDEX result_critical ON result (entered_at) WHERE (flags LIKE '%LL%' OR flags LIKE '%HH%');
