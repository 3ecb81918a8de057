-- The specimen id the EHR gave a specimen it sent (HL7 OML^O21 SPM-2, the placer's part): the
-- barcode on a tube the ward labelled, which an analyzer's query may name instead of the
-- accession. Empty for specimens the lab labelled.
ALTER TABLE specimen ADD COLUMN placer_specimen_id TEXT;
CREATE INDEX specimen_placer ON specimen (placer_specimen_id);
