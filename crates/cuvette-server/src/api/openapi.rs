//! The OpenAPI 3.1 document of the JSON API. Operations come from the route table the router
//! is built from (`api::ROUTES`) and their response schemas from the response structs
//! (`api::responses`), so neither can drift from what the server does; request bodies are
//! described here, beside the handlers' request types.

use serde_json::{Map, Value, json};

use super::responses::{Definition, ErrorBody, Schema};
use super::{In, ROUTES, TEST_CODE};

/// The form of a medical record number (`Mrn::parse`).
const MRN: &str = "^[A-Za-z0-9-]{1,20}$";

fn reason(status: u16) -> &'static str {
    match status {
        400 => "The request does not parse (JSON, path or query string)",
        401 => "No API key or session, or not a valid one",
        403 => "The caller's role may not do this (or a session sent no CSRF token)",
        404 => "No such thing",
        409 => "Someone else changed it first, or it is in a state that does not allow this",
        415 => "The body is not sent as JSON",
        422 => "A value is not acceptable; `fields` names each and says why",
        _ => "Refused",
    }
}

fn operation(op: &super::Operation) -> Value {
    let mut responses = Map::new();
    responses.insert(
        op.status.to_string(),
        json!({ "description": "Success", "content": { "application/json": { "schema": (op.response)() } } }),
    );
    for status in op.errors {
        responses.insert(
            status.to_string(),
            json!({ "description": reason(*status), "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let parameters: Vec<Value> = op
        .params
        .iter()
        .map(|p| {
            let location = if p.location == In::Path { "path" } else { "query" };
            let mut schema = json!({ "type": p.kind });
            if let Some(pattern) = p.pattern {
                schema["pattern"] = json!(pattern);
            }
            json!({ "name": p.name, "in": location, "required": p.location == In::Path,
                    "schema": schema, "description": p.description })
        })
        .collect();
    let mut o = json!({
        "operationId": format!("{} {}", op.method, op.path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    });
    if !parameters.is_empty() {
        o["parameters"] = Value::Array(parameters);
    }
    if let Some(schema) = op.body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    }
    if op.path == "/openapi.json" {
        // The description itself needs no key.
        o["security"] = json!([]);
    }
    o
}

/// How one operation's answer feeds another's parameter (OpenAPI links): what a client does
/// next, and what lets a generated sequence of calls reach a real specimen or test.
/// (from method, from path, link name, to method, to path, parameter, runtime expression)
const LINKS: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    ("POST", "/v1/patients", "patient", "GET", "/v1/patients/{id}", "id", "$response.body#/id"),
    (
        "POST",
        "/v1/patients",
        "report",
        "GET",
        "/v1/patients/{id}/report",
        "id",
        "$response.body#/id",
    ),
    (
        "POST",
        "/v1/orders",
        "specimen",
        "GET",
        "/v1/specimens/{accession}",
        "accession",
        "$response.body#/accessions/0",
    ),
    (
        "POST",
        "/v1/orders",
        "collect",
        "POST",
        "/v1/specimens/{accession}/collect",
        "accession",
        "$response.body#/accessions/0",
    ),
    (
        "POST",
        "/v1/orders",
        "patient",
        "GET",
        "/v1/patients/{id}",
        "id",
        "$response.body#/patient_id",
    ),
    (
        "POST",
        "/v1/specimens/{accession}/collect",
        "receive",
        "POST",
        "/v1/specimens/{accession}/receive",
        "accession",
        "$response.body#/accession",
    ),
    (
        "POST",
        "/v1/specimens/{accession}/collect",
        "reject",
        "POST",
        "/v1/specimens/{accession}/reject",
        "accession",
        "$response.body#/accession",
    ),
    (
        "POST",
        "/v1/specimens/{accession}/receive",
        "results",
        "POST",
        "/v1/specimens/{accession}/results",
        "accession",
        "$response.body#/accession",
    ),
    (
        "POST",
        "/v1/specimens/{accession}/reject",
        "recollection",
        "GET",
        "/v1/specimens/{accession}",
        "accession",
        "$response.body#/recollection_accession",
    ),
    (
        "POST",
        "/v1/specimens/{accession}/results",
        "critical_call",
        "POST",
        "/v1/tests/{id}/critical-calls",
        "id",
        "$response.body#/saved/0/ordered_test_id",
    ),
    (
        "GET",
        "/v1/catalog/tests",
        "test",
        "GET",
        "/v1/catalog/tests/{code}",
        "code",
        "$response.body#/tests/0/definition/code",
    ),
];

/// The document served at `/api/openapi.json`: `orderable` are the codes an order may name
/// (tests and panels), `tests` the codes a result may be entered for.
pub fn document(orderable: &[&str], tests: &[&str]) -> Value {
    let mut paths = Map::new();
    for op in ROUTES {
        let item = paths.entry(format!("/api{}", op.path)).or_insert_with(|| json!({}));
        item[op.method.to_ascii_lowercase()] = operation(op);
    }
    for (method, path, name, to_method, to_path, param, expression) in LINKS {
        let from = &mut paths[&format!("/api{path}")][method.to_ascii_lowercase()];
        let status = ROUTES
            .iter()
            .find(|op| op.method == *method && op.path == *path)
            .map_or(200, |op| op.status)
            .to_string();
        from["responses"][&status]["links"][*name] = json!({
            "operationId": format!("{to_method} {to_path}"),
            "parameters": { *param: expression },
        });
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cuvette laboratory information system API",
            "version": "1",
            "description": "Every call is authenticated: `Authorization: Bearer <key>` (create one with `cuvette apikey create --name NAME --role ROLE`) or a signed-in browser session, which must send its CSRF token in `X-CSRF-Token` for anything but GET. The key's role decides what it may do, exactly as for a person in that role. Times are RFC 3339 in UTC. Every refusal is `{\"error\": {\"status\", \"message\", \"fields\"}}` with the status code: 400 unparseable, 401 no or bad key, 403 role, 404 not found, 409 changed meanwhile or wrong state, 415 not JSON, 422 invalid values."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "session": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key from `cuvette apikey create`" },
                "session": { "type": "apiKey", "in": "cookie", "name": "cuvette_session" }
            },
            "schemas": {
                "Error": ErrorBody::schema(),
                "RegisterPatient": { "type": "object", "required": ["mrn", "family_name", "birth_date", "sex"], "properties": {
                    "mrn": { "type": "string", "pattern": MRN }, "family_name": { "type": "string", "minLength": 1, "maxLength": 100 }, "given_name": { "type": "string", "maxLength": 100 },
                    "birth_date": { "type": "string", "format": "date" }, "sex": { "type": "string", "enum": ["F", "M", "U"] } } },
                "OrderRequest": { "type": "object", "required": ["provider", "tests"], "description": "The patient by patient_id, or by patient (found by MRN, registered when new)", "properties": {
                    "patient_id": { "type": "integer" }, "patient": { "$ref": "#/components/schemas/RegisterPatient" },
                    "provider": { "type": "string" }, "priority": { "type": "string", "enum": ["routine", "stat"] },
                    "tests": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": TEST_CODE, "enum": orderable }, "description": "Test and panel codes, e.g. [\"BMP\", \"CBC\"]" },
                    "clinical_note": { "type": "string" }, "placer_number": { "type": "string" } } },
                "ReceiveRequest": { "type": "object", "description": "At least two identifiers as printed on the label", "properties": {
                    "mrn": { "type": "string", "pattern": MRN }, "birth_date": { "type": "string", "format": "date" }, "family_name": { "type": "string" } } },
                "RejectRequest": { "type": "object", "required": ["reason"], "properties": {
                    "reason": { "type": "string", "enum": ["hemolyzed", "clotted", "qns", "mislabeled", "wrong_container", "stability_exceeded"] },
                    "note": { "type": "string" } } },
                "ResultsRequest": { "type": "object", "required": ["results"], "properties": {
                    "results": { "type": "array", "items": { "type": "object", "required": ["test_code", "value"], "properties": {
                        "test_code": { "type": "string", "pattern": TEST_CODE, "enum": tests }, "value": { "type": "string", "minLength": 1, "maxLength": 200 },
                        "row_version": { "type": "integer", "description": "The test's row_version as last read; required when the test already has a result" } } } },
                    "correction": { "type": "object", "required": ["reason", "signature"], "description": "To correct a released result", "properties": {
                        "reason": { "type": "string" },
                        "signature": { "type": "string", "description": "The caller's password, re-entered as a signature" } } } } },
                "ReleaseRequest": { "type": "object", "required": ["tests"], "properties": {
                    "status": { "type": "string", "enum": ["final", "preliminary"] },
                    "tests": { "type": "array", "items": { "type": "object", "required": ["ordered_test_id", "row_version"], "properties": {
                        "ordered_test_id": { "type": "integer" }, "row_version": { "type": "integer" } } } } } },
                "CriticalCall": { "type": "object", "required": ["called_person", "read_back"], "properties": {
                    "called_person": { "type": "string" }, "read_back": { "type": "boolean" }, "notes": { "type": "string" } } },
                "SynonymRequest": { "type": "object", "required": ["synonym", "coded_value"], "properties": {
                    "synonym": { "type": "string", "minLength": 1, "maxLength": 100, "description": "The text an instrument or the bench writes (\"NEG\", \"1+\"); compared trimmed, in any case" },
                    "coded_value": { "type": "string", "description": "One of the test's allowed values, which it stands for" } } },
                "SynonymRemoval": { "type": "object", "required": ["synonym"], "properties": {
                    "synonym": { "type": "string", "description": "The synonym's text, in any case" } } },
                "NewInstrument": { "type": "object", "required": ["name", "protocol", "sender"], "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                    "protocol": { "type": "string", "enum": ["hl7", "astm"] },
                    "sender": { "type": "string", "minLength": 1, "maxLength": 200, "description": "What it sends as its name: HL7 MSH-3, ASTM H-5" } } },
                "InstrumentSettings": { "type": "object", "additionalProperties": false, "description": "The settings to change; one left out stays as it is", "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 100, "description": "Rename it; no other instrument's name" },
                    "protocol": { "type": "string", "enum": ["hl7", "astm"] },
                    "sender": { "type": "string", "minLength": 1, "maxLength": 200, "description": "What it sends as its name (HL7 MSH-3, ASTM H-5); no other instrument of the protocol's" },
                    "unmapped_results": { "type": "string", "enum": ["hold", "store_mappable"] },
                    "specimen_id_component": { "type": ["integer", "null"], "minimum": 1, "maximum": 10, "description": "ASTM O-3 component holding the accession number; null takes the first that is not empty" },
                    "charset": { "type": "string", "enum": ["utf-8", "windows-1252", "ascii", "utf-8-lossy"] } } },
                "CodeMapping": { "type": "object", "required": ["instrument_code"], "properties": {
                    "instrument_code": { "type": "string", "minLength": 1, "maxLength": 100 },
                    "map_as": { "type": "string", "enum": ["result", "flag", "ignore"], "description": "result when not given" },
                    "test_code": { "type": "string", "description": "The catalog test (SI_H, SI_I, SI_L for serum indices); for a result" },
                    "unit": { "type": "string", "description": "The unit the instrument sends; another than the catalog's only where Cuvette converts it. Empty means the catalog's" } } },
                "CodeMapImport": { "type": "object", "required": ["csv"], "properties": {
                    "csv": { "type": "string", "description": "The file: a header row naming instrument_code, map_as, test_code, unit (any order), then one mapping a row" },
                    "dry_run": { "type": "boolean", "description": "Check the file and answer what would be saved, saving nothing" } } },
                "ReplayRequest": { "type": "object", "properties": {
                    "accession": { "type": "string", "description": "A corrected accession number for every result in the message" } } },
                "DismissRequest": { "type": "object", "required": ["reason"], "properties": {
                    "reason": { "type": "string", "minLength": 1 } } },
                "SaveDefinition": { "type": "object", "required": ["expected_version", "definition", "reason"], "properties": {
                    "expected_version": { "type": "integer", "description": "The version last read (0 for a definition never saved)" },
                    "definition": Definition::schema(),
                    "reason": { "type": "string", "description": "Why: the verification or source the change follows; kept with the version" } } },
                "ImportCatalog": { "type": "object", "required": ["toml"], "properties": {
                    "toml": { "type": "string", "description": "A catalog file as GET /v1/catalog/export gives it: the whole catalog or only the tests and panels changed" },
                    "reason": { "type": "string", "description": "Why; required unless dry_run, kept with every new version" },
                    "dry_run": { "type": "boolean", "description": "Only say what would change; store nothing" } } }
            }
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(staff_schemas());
    }
    doc
}

/// The request bodies of the staff calls (a macro of its own: the document's is at its
/// recursion limit).
fn staff_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        "StaffRecordRequest".into(),
        json!({ "type": "object", "required": ["expected_version", "record"], "properties": {
                    "expected_version": { "type": "integer", "description": "The record's version as last read (0 for a person without one)" },
                    "record": { "type": "object", "description": "Dates as YYYY-MM-DD; empty rows are ignored; every bad field is refused by its path (certifications[0].expires_on)", "properties": {
                        "education": { "type": "array", "items": { "type": "object", "properties": {
                            "level": { "type": "string", "enum": ["certificate", "associate", "bachelor", "master", "doctorate"] },
                            "field": { "type": "string", "enum": ["medical_laboratory_science", "medical_laboratory_technology", "chemistry", "biology", "medicine", "allied_health", "other"] },
                            "institution": { "type": "string" },
                            "accreditation": { "type": "string", "description": "naacls, caahep, abhes, institutional, or empty" },
                            "completed_on": { "type": "string", "format": "date" } } } },
                        "certifications": { "type": "array", "items": { "type": "object", "properties": {
                            "credential": { "type": "string", "enum": ["ascp_mls", "ascp_mlt", "ascp_sbb", "ascp_sc", "ascp_sh", "ascp_sm", "ascp_pbt", "amt_mt", "amt_mlt", "nha_cpt"] },
                            "number": { "type": "string" }, "issued_on": { "type": "string", "format": "date" },
                            "expires_on": { "type": "string", "description": "YYYY-MM-DD, or empty for a certification that does not expire" } } } },
                        "licences": { "type": "array", "items": { "type": "object", "properties": {
                            "state": { "type": "string", "description": "Two-letter postal code" }, "number": { "type": "string" },
                            "expires_on": { "type": "string", "format": "date" } } } },
                        "hire_date": { "type": "string", "format": "date" },
                        "experience_since": { "type": "string", "description": "Laboratory experience counts from this date; the hire date when empty" },
                        "disciplines": { "type": "array", "items": { "type": "string" } } } } } }),
    );
    schemas.insert(
        "AuthoriseRequest".into(),
        json!({ "type": "object", "required": ["discipline"], "properties": {
                    "discipline": { "type": "string", "description": "A discipline of the catalog (chemistry, hematology, …)" },
                    "authorised_on": { "type": "string", "description": "The date on the signed authorisation, YYYY-MM-DD; today when empty" } } }),
    );
    schemas.insert(
        "CompetencyRequest".into(),
        json!({ "type": "object", "required": ["outcome", "elements"], "description": "The test system is a test (or, with test empty, a discipline) on an instrument (or, with instrument empty, the manual method)", "properties": {
                    "test": { "type": "string" }, "discipline": { "type": "string" },
                    "instrument": { "type": "string", "description": "The instrument's name as registered" },
                    "outcome": { "type": "string", "enum": ["pass", "fail"] },
                    "elements": { "type": "array", "minItems": 6, "maxItems": 6, "description": "The six CLIA elements in order: direct observation; recording and reporting; records review; maintenance observation; previously analysed, blind or PT samples; problem solving", "items": { "type": "object", "required": ["evidence", "assessor", "assessed_on"], "properties": {
                        "evidence": { "type": "string" }, "assessor": { "type": "string", "description": "The assessor's user ID: a technical consultant (moderate) or supervisor (high)" },
                        "assessed_on": { "type": "string", "format": "date" } } } } } }),
    );
    schemas.insert(
        "RotationRequest".into(),
        json!({ "type": "object", "required": ["program", "discipline", "starts_on", "ends_on", "supervisor"], "properties": {
                    "program": { "type": "string", "description": "The student's programme (State University MLS program)" },
                    "discipline": { "type": "string", "description": "A discipline of the catalog" },
                    "starts_on": { "type": "string", "format": "date" },
                    "ends_on": { "type": "string", "format": "date", "description": "On or after starts_on; a rotation runs at most 366 days" },
                    "supervisor": { "type": "string", "description": "The supervising technologist's user ID: an active technologist, supervisor or the director" } } }),
    );
    schemas.insert(
        "PolicyRequest".into(),
        json!({ "type": "object", "properties": {
                    "enforce": { "type": "boolean" },
                    "licence_required_from": { "type": "string", "description": "waived, moderate, high, or empty for none" },
                    "certification_required_from": { "type": "string", "description": "waived, moderate, high, or empty for none" } } }),
    );
    schemas
}
