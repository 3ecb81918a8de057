-- The order search (by patient, provider, date, status, priority, test) reads each filter
-- through an index, newest order first, so a search costs the same however many years of
-- orders lie behind it. The patient (`lab_order_patient`), the test status
-- (`ordered_test_status`) and an order's tests (`ordered_test_order`) already have theirs.
CREATE INDEX lab_order_ordered_at ON lab_order (ordered_at);
CREATE INDEX lab_order_provider ON lab_order (provider, ordered_at);
CREATE INDEX lab_order_priority ON lab_order (priority, ordered_at);
CREATE INDEX ordered_test_code ON ordered_test (test_code, order_id);
