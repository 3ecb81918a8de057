-- Interfaces: instruments and their test codes, every message in and out, the quarantine, and
-- the outbox of results to send. `{{blob}}` is the backend's byte-string type.

CREATE TABLE instrument (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    protocol TEXT NOT NULL,
    -- What the instrument calls itself: HL7 MSH-3 sending application, ASTM H-5 sender name.
    sender TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE instrument_test_code (
    instrument_id BIGINT NOT NULL REFERENCES instrument (id),
    instrument_code TEXT NOT NULL,
    test_code TEXT NOT NULL,
    -- The unit the instrument reports; a result in another unit is quarantined, not converted.
    unit TEXT NOT NULL,
    PRIMARY KEY (instrument_id, instrument_code)
);

-- Every message in and out, raw, with its outcome. Inbound messages that could not be
-- ingested stay here in quarantine until staff fix and replay them.
CREATE TABLE interface_message (
    id {{id}},
    direction TEXT NOT NULL,
    protocol TEXT NOT NULL,
    channel TEXT NOT NULL,
    peer TEXT NOT NULL,
    sender TEXT NOT NULL,
    control_id TEXT,
    message_type TEXT NOT NULL,
    raw {{blob}} NOT NULL,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    ack {{blob}},
    accession TEXT,
    results BIGINT NOT NULL DEFAULT 0,
    quarantine TEXT,
    replay_of BIGINT REFERENCES interface_message (id),
    processed_us BIGINT NOT NULL DEFAULT 0
);
-- A retransmission (same sender, same control id) is recognised and stored once.
CREATE UNIQUE INDEX interface_message_control ON interface_message (direction, sender, control_id);
CREATE INDEX interface_message_received ON interface_message (received_at);
CREATE INDEX interface_message_quarantine ON interface_message (quarantine);
CREATE INDEX interface_message_accession ON interface_message (accession);

-- Results to send to the EHR, written in the same transaction as the release.
CREATE TABLE outbox (
    id {{id}},
    destination TEXT NOT NULL,
    control_id TEXT NOT NULL,
    payload {{blob}} NOT NULL,
    accession TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT,
    ack {{blob}}
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- What the instrument flagged about a result (HL7 OBX-8, ASTM R-7), kept beside Cuvette's own flags.
ALTER TABLE result ADD COLUMN instrument_flags TEXT NOT NULL DEFAULT '';

-- An order's tests (the patient's worklist and cumulative report join through it).
CREATE INDEX ordered_test_order ON ordered_test (order_id);
