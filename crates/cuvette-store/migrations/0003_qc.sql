-- Quality control and autoverification: control materials and their lots, targets per
-- test x instrument x level, every QC run with its Westgard verdict, corrective actions,
-- autoverification rule sets and the decision stored with each result, patient moving
-- averages, serum indices, and critical-call escalations.

-- A control product's lot at one level, as the vial's barcode names it.
CREATE TABLE qc_material (
    id {{id}},
    product TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    lot TEXT NOT NULL,
    level BIGINT NOT NULL,
    -- ISO date; a QC result on an expired lot is refused.
    expires_on TEXT NOT NULL,
    -- What the vial's barcode says and an instrument sends as the sample id.
    sample_id TEXT NOT NULL UNIQUE,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

-- The target a material is judged against for one test on one instrument.
CREATE TABLE qc_target (
    id {{id}},
    material_id BIGINT NOT NULL REFERENCES qc_material (id),
    instrument_id BIGINT NOT NULL REFERENCES instrument (id),
    test_code TEXT NOT NULL,
    mean DOUBLE PRECISION NOT NULL,
    sd DOUBLE PRECISION NOT NULL,
    -- `manufacturer` (the insert's values) or `lab` (established from the lab's own runs).
    source TEXT NOT NULL,
    manufacturer_mean DOUBLE PRECISION NOT NULL,
    manufacturer_sd DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    UNIQUE (material_id, instrument_id, test_code)
);

-- The Westgard rules a test's QC is judged by (absent: the classic multirule).
CREATE TABLE qc_rules (
    test_code TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- One analytical run's QC for a test on an instrument, with its verdict. Patient moving
-- averages out of control are recorded here too (source `patient_average`), so they raise
-- the same lockout.
CREATE TABLE qc_run (
    id {{id}},
    instrument_id BIGINT NOT NULL REFERENCES instrument (id),
    test_code TEXT NOT NULL,
    at BIGINT NOT NULL,
    -- accepted | warning | rejected
    status TEXT NOT NULL,
    -- JSON list of {rule, scope, results, detail}.
    violations TEXT NOT NULL,
    entered_by TEXT NOT NULL,
    -- manual | instrument | patient_average
    source TEXT NOT NULL
);
CREATE INDEX qc_run_series ON qc_run (instrument_id, test_code, at);

CREATE TABLE qc_result (
    id {{id}},
    run_id BIGINT NOT NULL REFERENCES qc_run (id),
    target_id BIGINT NOT NULL REFERENCES qc_target (id),
    value DOUBLE PRECISION NOT NULL,
    -- The target in force when it was judged, so the chart shows what was applied.
    mean DOUBLE PRECISION NOT NULL,
    sd DOUBLE PRECISION NOT NULL,
    z DOUBLE PRECISION NOT NULL,
    -- Rule codes this result violated, space-separated.
    rules TEXT NOT NULL
);
CREATE INDEX qc_result_target ON qc_result (target_id, run_id);
CREATE INDEX qc_result_run ON qc_result (run_id);

-- What a technologist did about a QC failure. Westgard history restarts after it, so a
-- result used once to reject is not re-used.
CREATE TABLE qc_corrective_action (
    id {{id}},
    instrument_id BIGINT NOT NULL REFERENCES instrument (id),
    test_code TEXT NOT NULL,
    at BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX qc_corrective_action_series ON qc_corrective_action (instrument_id, test_code, at);

-- Patient-based real-time QC for a test on an instrument.
CREATE TABLE moving_average_rule (
    instrument_id BIGINT NOT NULL REFERENCES instrument (id),
    test_code TEXT NOT NULL,
    window_size BIGINT NOT NULL,
    truncate_low DOUBLE PRECISION,
    truncate_high DOUBLE PRECISION,
    target DOUBLE PRECISION NOT NULL,
    lower_limit DOUBLE PRECISION NOT NULL,
    upper_limit DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (instrument_id, test_code)
);

-- A test's autoverification rule set (JSON), and whether it is switched on.
CREATE TABLE autoverify_rule_set (
    test_code TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- Which instrument measured a result, and the autoverification decision with its trace.
ALTER TABLE result ADD COLUMN instrument_id BIGINT;
ALTER TABLE result ADD COLUMN autoverify TEXT;
CREATE INDEX result_instrument ON result (instrument_id, entered_at);

-- Serum indices the analyzer measured on the specimen.
ALTER TABLE specimen ADD COLUMN hemolysis_index BIGINT;
ALTER TABLE specimen ADD COLUMN icterus_index BIGINT;
ALTER TABLE specimen ADD COLUMN lipemia_index BIGINT;
-- Condition codes noted on the specimen (HEM, LIP, ICT, CLOT, QNS …), space-separated.
ALTER TABLE specimen ADD COLUMN conditions TEXT NOT NULL DEFAULT '';

-- A critical result left without a documented call past the lab's limit.
CREATE TABLE critical_escalation (
    id {{id}},
    ordered_test_id BIGINT NOT NULL REFERENCES ordered_test (id),
    result_version BIGINT NOT NULL,
    escalated_at BIGINT NOT NULL,
    minutes_waiting BIGINT NOT NULL,
    UNIQUE (ordered_test_id, result_version)
);

-- The new privileges, granted as a new lab's table grants them, to a lab that already has a
-- table (a new lab's table is seeded whole at first start; a lab that edited its table keeps
-- its edits: these rows only add).
INSERT INTO role_privilege (role, action) SELECT 'technician', 'run_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'technologist', 'run_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'technologist', 'correct_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'technologist', 'manage_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'supervisor', 'run_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'supervisor', 'correct_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'supervisor', 'manage_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'supervisor', 'approve_autoverification' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'pathologist', 'run_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'pathologist', 'correct_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'pathologist', 'manage_qc' WHERE EXISTS (SELECT 1 FROM role_privilege);
INSERT INTO role_privilege (role, action) SELECT 'pathologist', 'approve_autoverification' WHERE EXISTS (SELECT 1 FROM role_privilege);
