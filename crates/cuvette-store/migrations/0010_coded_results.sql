-- Synonyms of coded results, per test: the text an instrument or the bench writes ("NEG",
-- "not detected", "1+") and the catalog's coded value it stands for ("Negative", "Small").
-- `synonym` is the text as compared (trimmed, lower case, single spaces), `written` as the
-- lab typed it. A removed synonym keeps its row with `removed_at` set, so the defaults seeded
-- into an empty table are never seeded again over the lab's removals.
CREATE TABLE coded_synonym (
    id {{id}},
    test_code TEXT NOT NULL,
    synonym TEXT NOT NULL,
    written TEXT NOT NULL,
    coded_value TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    removed_at BIGINT,
    UNIQUE (test_code, synonym)
);
