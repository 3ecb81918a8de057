-- Files an instrument sends as a result (HL7 OBX-2 ED: an analyzer's PDF report, a
-- histogram image), decoded. The bytes are kept once per content, named by their SHA-256
-- (lower-case hex): the same file sent again, or replayed, is not stored twice, and a file
-- whose bytes no longer match their name is read as corrupt, never served.
CREATE TABLE attachment_content (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    content {{blob}} NOT NULL
);

-- The file of one result version: what the instrument calls it, its media type and size.
CREATE TABLE result_attachment (
    id {{id}},
    ordered_test_id BIGINT NOT NULL REFERENCES ordered_test (id),
    result_version BIGINT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES attachment_content (sha256),
    UNIQUE (ordered_test_id, result_version)
);
