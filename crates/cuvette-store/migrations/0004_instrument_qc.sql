-- Which sample ids an instrument sends for its control runs (a pattern with * and ?): results
-- for those go to quality control, not to a patient.
ALTER TABLE instrument ADD COLUMN qc_pattern TEXT NOT NULL DEFAULT '';
