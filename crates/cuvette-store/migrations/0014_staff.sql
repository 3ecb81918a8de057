-- People: each user's staff record (education, certifications, licences, hire date,
-- disciplines), the director's authorisations, competency assessments and the lab's
-- qualification settings (CLIA 42 CFR 493 Subpart M).

-- One record per user, JSON of the domain's StaffRecord, replaced whole on each edit (the
-- audit log keeps every earlier version).
CREATE TABLE staff_record (
    user_id BIGINT PRIMARY KEY REFERENCES app_user (id),
    record TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- A person authorised to test in a discipline, by whom and when (dates as YYYY-MM-DD).
CREATE TABLE staff_authorisation (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES app_user (id),
    discipline TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    authorised_on TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX staff_authorisation_user ON staff_authorisation (user_id);

-- A competency assessment of a person on a test system: the system and the six elements as
-- JSON of the domain's types, the outcome `pass` or `fail`, and the assessment's date.
CREATE TABLE competency_assessment (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES app_user (id),
    test_system TEXT NOT NULL,
    elements TEXT NOT NULL,
    outcome TEXT NOT NULL,
    assessed_on TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX competency_assessment_user ON competency_assessment (user_id);

-- The lab's qualification settings, one row (id 1). No row: qualifications are not
-- enforced, as in every lab before staff records existed.
CREATE TABLE qualification_policy (
    id BIGINT PRIMARY KEY,
    enforce BIGINT NOT NULL,
    licence_required_from TEXT,
    certification_required_from TEXT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
