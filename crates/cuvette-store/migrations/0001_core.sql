-- Cuvette schema, version 1. One text for SQLite and PostgreSQL: `{{id}}` becomes the
-- backend's auto-increment primary key. Times are UTC microseconds since the Unix epoch;
-- lab values are TEXT exactly as reported (with a DOUBLE shadow for range queries).

CREATE TABLE app_user (
    id {{id}},
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE session (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES app_user (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at BIGINT
);

-- The lab's privilege table (seeded from the defaults, edited by supervisors).
CREATE TABLE role_privilege (
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (role, action)
);

CREATE TABLE api_key (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT
);

-- Every saved version of a test definition; the current one is the highest version.
CREATE TABLE test_definition (
    code TEXT NOT NULL,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (code, version)
);

CREATE TABLE panel (
    code TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);

CREATE TABLE patient (
    id {{id}},
    mrn TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    -- Names folded to lower case by Cuvette (Unicode-aware, which SQLite's LOWER is not),
    -- so a search finds "Øvergård" on both backends.
    family_key TEXT NOT NULL,
    given_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX patient_family_key ON patient (family_key);
CREATE INDEX patient_birth_date ON patient (birth_date);

CREATE TABLE lab_order (
    id {{id}},
    patient_id BIGINT NOT NULL REFERENCES patient (id),
    provider TEXT NOT NULL,
    priority TEXT NOT NULL,
    clinical_note TEXT NOT NULL,
    placer_number TEXT,
    ordered_at BIGINT NOT NULL,
    ordered_by TEXT NOT NULL
);
CREATE INDEX lab_order_patient ON lab_order (patient_id);

CREATE TABLE accession_sequence (
    year BIGINT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);

CREATE TABLE specimen (
    id {{id}},
    accession TEXT NOT NULL UNIQUE,
    order_id BIGINT NOT NULL REFERENCES lab_order (id),
    container TEXT NOT NULL,
    specimen_type TEXT NOT NULL,
    status TEXT NOT NULL,
    collected_at BIGINT,
    collected_by TEXT,
    received_at BIGINT,
    received_by TEXT,
    rejected_at BIGINT,
    rejected_by TEXT,
    reject_reason TEXT,
    reject_note TEXT,
    recollection_of BIGINT REFERENCES specimen (id),
    row_version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX specimen_order ON specimen (order_id);
CREATE INDEX specimen_status ON specimen (status);

CREATE TABLE ordered_test (
    id {{id}},
    order_id BIGINT NOT NULL REFERENCES lab_order (id),
    specimen_id BIGINT NOT NULL REFERENCES specimen (id),
    test_code TEXT NOT NULL,
    panel_code TEXT,
    discipline TEXT NOT NULL,
    status TEXT NOT NULL,
    row_version BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ordered_test_specimen ON ordered_test (specimen_id);
CREATE INDEX ordered_test_status ON ordered_test (status, discipline);

-- Result versions: a correction or re-entry appends a version, nothing is overwritten.
CREATE TABLE result (
    id {{id}},
    ordered_test_id BIGINT NOT NULL REFERENCES ordered_test (id),
    version BIGINT NOT NULL,
    value_text TEXT NOT NULL,
    value_number DOUBLE PRECISION,
    report_text TEXT NOT NULL,
    unit TEXT NOT NULL,
    flags TEXT NOT NULL,
    reference_interval TEXT NOT NULL,
    review TEXT NOT NULL,
    reasons TEXT NOT NULL,
    definition_version BIGINT NOT NULL,
    entered_at BIGINT NOT NULL,
    entered_by TEXT NOT NULL,
    entered_by_role TEXT NOT NULL,
    correction_reason TEXT,
    released_at BIGINT,
    released_by TEXT,
    release_status TEXT,
    UNIQUE (ordered_test_id, version)
);

CREATE TABLE critical_call (
    id {{id}},
    ordered_test_id BIGINT NOT NULL REFERENCES ordered_test (id),
    result_version BIGINT NOT NULL,
    called_person TEXT NOT NULL,
    called_by TEXT NOT NULL,
    called_at BIGINT NOT NULL,
    read_back BIGINT NOT NULL,
    notes TEXT NOT NULL,
    documented_at BIGINT NOT NULL
);
CREATE INDEX critical_call_test ON critical_call (ordered_test_id);

-- The hash-chained audit log; append-only (enforced by triggers per backend).
CREATE TABLE audit_event (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    patient_id BIGINT,
    before_state TEXT,
    after_state TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_event_entity ON audit_event (entity, entity_id);
CREATE INDEX audit_event_patient ON audit_event (patient_id);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
