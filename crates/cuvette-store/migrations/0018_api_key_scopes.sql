-- The SMART scopes an API key holds for the FHIR API (`system/Observation.read`, …), space
-- separated as OAuth writes them. Keys made before scopes existed hold none: they keep their
-- JSON API access and read nothing through FHIR until a key with scopes is made.
ALTER TABLE api_key ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
