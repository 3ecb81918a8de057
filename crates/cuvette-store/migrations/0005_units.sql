-- A result converted from the unit its instrument sent keeps the value and unit as sent
-- (the unit as its UCUM code) beside the converted value; both are empty when the result
-- arrived in the catalog's unit or was entered by hand.
ALTER TABLE result ADD COLUMN sent_value TEXT;
ALTER TABLE result ADD COLUMN sent_unit TEXT;
