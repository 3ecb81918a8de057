-- How the instrument or EHR reported a result version (HL7 OBX-11, ASTM R-9), as a release
-- status: `preliminary` is released only as preliminary; `corrected` replaced a result
-- already reported. Empty for manual entry and for results reported final.
ALTER TABLE result ADD COLUMN reported_as TEXT;

-- Which component of an ASTM order's specimen id (O-3) holds the accession number: analyzers
-- put rack and position beside it (`^^ACC123`). Empty: the first component that is not empty.
ALTER TABLE instrument ADD COLUMN specimen_id_component BIGINT;

-- The character set an ASTM instrument writes: `utf-8`, `windows-1252` (Latin-1's superset,
-- the cobas c 311 writes µ as 0xB5) or `ascii`. Empty: UTF-8, and a byte that is not UTF-8 is
-- refused rather than guessed.
ALTER TABLE instrument ADD COLUMN charset TEXT;
