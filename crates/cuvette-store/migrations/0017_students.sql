-- Students on clinical rotation: each block of a student's schedule (programme, discipline,
-- dates as YYYY-MM-DD, the supervising technologist's username) and its sign-off.
CREATE TABLE student_rotation (
    id {{id}},
    user_id BIGINT NOT NULL REFERENCES app_user (id),
    program TEXT NOT NULL,
    discipline TEXT NOT NULL,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    supervisor TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    signed_off_by TEXT,
    signed_off_on TEXT,
    signed_off_at BIGINT
);
CREATE INDEX student_rotation_user ON student_rotation (user_id);

-- The logbook reads the results a student entered, by username.
CREATE INDEX result_entered_by ON result (entered_by);
