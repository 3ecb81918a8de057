//! The OpenAPI 3.1 document of the JSON API, written by hand beside the routes it describes
//! (a test checks that every route is documented).

use serde_json::{Value, json};

fn op(summary: &str, tag: &str, body: Option<&str>, ok: &str, ok_schema: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "responses": {
            ok: { "description": "Success", "content": { "application/json": { "schema": ok_schema } } },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
            "409": { "$ref": "#/components/responses/Error" },
            "422": { "$ref": "#/components/responses/Error" }
        }
    });
    if let Some(schema) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    }
    o
}

fn path_param(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": kind }, "description": description })
}

fn query_param(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": { "type": kind }, "description": description })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The document served at `/api/openapi.json`.
pub fn document() -> Value {
    let acc = path_param(
        "accession",
        "string",
        "Accession number as printed (26-0000123-0) or scanned (2600001230)",
    );
    let with_acc = |mut o: Value| {
        o["parameters"] = json!([acc.clone()]);
        o
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cuvette laboratory information system API",
            "version": "1",
            "description": "Every call is authenticated: `Authorization: Bearer <key>` (create one with `cuvette apikey create --name NAME --role ROLE`) or a signed-in browser session, which must send its CSRF token in `X-CSRF-Token` for anything but GET. The key's role decides what it may do, exactly as for a person in that role. Times are RFC 3339 in UTC. Errors are `{\"error\": {\"status\", \"message\", \"fields\"}}`."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "session": [] }],
        "paths": {
            "/api/v1/patients": {
                "post": op("Register a patient", "patients", Some("RegisterPatient"), "201", r("Patient")),
                "get": { "parameters": [query_param("q", "string", "MRN, `family,given`, optionally followed by a date of birth")],
                         "summary": "Search patients", "tags": ["patients"],
                         "responses": { "200": { "description": "Matches", "content": { "application/json": { "schema": { "type": "object", "properties": { "patients": { "type": "array", "items": r("Patient") } } } } } } } }
            },
            "/api/v1/patients/{id}": { "get": { "parameters": [path_param("id", "integer", "Patient id")], "summary": "A patient", "tags": ["patients"], "responses": { "200": { "description": "The patient", "content": { "application/json": { "schema": r("Patient") } } }, "404": { "$ref": "#/components/responses/Error" } } } },
            "/api/v1/patients/{id}/report": { "get": { "parameters": [path_param("id", "integer", "Patient id")], "summary": "The patient's released results (cumulative report); audited as a view", "tags": ["results"], "responses": { "200": { "description": "Released results", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/api/v1/orders": { "post": op("Place an order: patient and tests in, accession numbers out", "orders", Some("OrderRequest"), "201", r("PlacedOrder")) },
            "/api/v1/specimens/{accession}": { "get": with_acc(op("A specimen with its tests and results (test code, LOINC, value, unit, flags, status, who entered and verified)", "specimens", None, "200", r("Specimen"))) },
            "/api/v1/specimens/{accession}/collect": { "post": with_acc(op("Record collection now, by the caller", "specimens", None, "200", json!({ "type": "object" }))) },
            "/api/v1/specimens/{accession}/receive": { "post": with_acc(op("Receive in the lab after checking two identifiers on the label", "specimens", Some("ReceiveRequest"), "200", json!({ "type": "object" }))) },
            "/api/v1/specimens/{accession}/reject": { "post": with_acc(op("Reject; open tests are cancelled and a recollection specimen is created", "specimens", Some("RejectRequest"), "200", json!({ "type": "object", "properties": { "recollection_accession": { "type": "string" } } }))) },
            "/api/v1/specimens/{accession}/results": { "post": with_acc(op("Enter results by test code (all or nothing); calculations follow", "results", Some("ResultsRequest"), "200", json!({ "type": "object" }))) },
            "/api/v1/release": { "post": op("Verify and release results; each is released or held with the reason", "results", Some("ReleaseRequest"), "200", json!({ "type": "object", "properties": { "outcomes": { "type": "array" } } })) },
            "/api/v1/tests/{id}/critical-calls": { "post": { "parameters": [path_param("id", "integer", "Ordered test id")], "summary": "Document the call of a critical result (read-back opens the release gate)", "tags": ["results"], "requestBody": { "required": true, "content": { "application/json": { "schema": r("CriticalCall") } } }, "responses": { "201": { "description": "Documented" }, "422": { "$ref": "#/components/responses/Error" } } } },
            "/api/v1/worklist": { "get": { "parameters": [query_param("bench", "string", "Discipline, e.g. chemistry")], "summary": "Open tests on a bench, STAT first", "tags": ["results"], "responses": { "200": { "description": "Work items" } } } },
            "/api/v1/review-queue": { "get": { "summary": "Results waiting for verification, critical first", "tags": ["results"], "responses": { "200": { "description": "Work items" } } } },
            "/api/v1/audit": { "get": { "parameters": [query_param("actor", "string", "Username"), query_param("entity", "string", "patient, specimen, result, …"), query_param("entity_id", "string", "Which one"), query_param("patient_id", "integer", "Events about this patient"), query_param("before_seq", "integer", "Page backwards")], "summary": "The audit log, newest first", "tags": ["audit"], "responses": { "200": { "description": "Events" } } } },
            "/api/v1/catalog/tests": { "get": { "summary": "The test catalog with each definition's version", "tags": ["catalog"], "responses": { "200": { "description": "Tests and panels" } } } },
            "/api/v1/catalog/tests/{code}": {
                "get": { "parameters": [path_param("code", "string", "Test code")], "summary": "One test definition", "tags": ["catalog"], "responses": { "200": { "description": "The definition" } } },
                "put": { "parameters": [path_param("code", "string", "Test code")], "summary": "Save a new version of a test definition (supervisor)", "tags": ["catalog"], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["expected_version", "definition"], "properties": { "expected_version": { "type": "integer" }, "definition": { "type": "object" } } } } } }, "responses": { "200": { "description": "Saved" }, "409": { "$ref": "#/components/responses/Error" } } }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key from `cuvette apikey create`" },
                "session": { "type": "apiKey", "in": "cookie", "name": "cuvette_session" }
            },
            "responses": {
                "Error": { "description": "Refused; the message says why and what to do", "content": { "application/json": { "schema": r("Error") } } }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "status": { "type": "integer" }, "message": { "type": "string" },
                    "fields": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } } } } } },
                "RegisterPatient": { "type": "object", "required": ["mrn", "family_name", "birth_date", "sex"], "properties": {
                    "mrn": { "type": "string", "maxLength": 20 }, "family_name": { "type": "string" }, "given_name": { "type": "string" },
                    "birth_date": { "type": "string", "format": "date" }, "sex": { "type": "string", "enum": ["F", "M", "U"] } } },
                "Patient": { "type": "object", "properties": { "id": { "type": "integer" }, "mrn": { "type": "string" }, "family_name": { "type": "string" }, "given_name": { "type": "string" }, "birth_date": { "type": "string", "format": "date" }, "sex": { "type": "string" } } },
                "OrderRequest": { "type": "object", "required": ["provider", "tests"], "properties": {
                    "patient_id": { "type": "integer" }, "patient": r("RegisterPatient"),
                    "provider": { "type": "string" }, "priority": { "type": "string", "enum": ["routine", "stat"] },
                    "tests": { "type": "array", "items": { "type": "string" }, "description": "Test and panel codes, e.g. [\"BMP\", \"CBC\"]" },
                    "clinical_note": { "type": "string" }, "placer_number": { "type": "string" } } },
                "PlacedOrder": { "type": "object", "properties": { "order_id": { "type": "integer" }, "patient_id": { "type": "integer" },
                    "accessions": { "type": "array", "items": { "type": "string" } },
                    "specimens": { "type": "array", "items": { "type": "object", "properties": { "accession": { "type": "string" }, "container": { "type": "string" }, "tests": { "type": "array", "items": { "type": "string" } } } } } } },
                "Result": { "type": "object", "properties": {
                    "version": { "type": "integer" }, "value": { "type": "string", "description": "As reported (\"<0.5\", \">750\")" }, "value_text": { "type": "string", "description": "Exactly as entered" },
                    "unit": { "type": "string" }, "sent_value": { "type": ["string", "null"], "description": "The value as the instrument sent it, when it was converted to the catalog's unit" }, "sent_unit": { "type": ["string", "null"], "description": "The UCUM unit the instrument sent it in, when converted" }, "flags": { "type": "array", "items": { "type": "string", "enum": ["L", "H", "LL", "HH", "A", "<", ">", "INV"] } },
                    "reference_interval": { "type": "string" }, "status": { "type": "string", "enum": ["entered", "preliminary", "final", "corrected"] },
                    "entered_by": { "type": "string" }, "entered_at": { "type": "string", "format": "date-time" },
                    "verified_by": { "type": ["string", "null"] }, "verified_at": { "type": ["string", "null"], "format": "date-time" } } },
                "Specimen": { "type": "object", "properties": {
                    "accession": { "type": "string" }, "status": { "type": "string", "enum": ["pending", "collected", "received", "rejected"] },
                    "container": { "type": "string" }, "patient": r("Patient"),
                    "tests": { "type": "array", "items": { "type": "object", "properties": {
                        "ordered_test_id": { "type": "integer" }, "row_version": { "type": "integer" }, "test_code": { "type": "string" }, "loinc": { "type": "string" },
                        "status": { "type": "string", "enum": ["ordered", "collected", "received", "in_process", "preliminary", "final", "cancelled"] },
                        "result": r("Result"), "released_result": r("Result") } } } } },
                "ReceiveRequest": { "type": "object", "properties": { "mrn": { "type": "string" }, "birth_date": { "type": "string", "format": "date" }, "family_name": { "type": "string" } }, "description": "At least two identifiers as printed on the label" },
                "RejectRequest": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string", "enum": ["hemolyzed", "clotted", "qns", "mislabeled", "wrong_container", "stability_exceeded"] }, "note": { "type": "string" } } },
                "ResultsRequest": { "type": "object", "required": ["results"], "properties": {
                    "results": { "type": "array", "items": { "type": "object", "required": ["test_code", "value"], "properties": { "test_code": { "type": "string" }, "value": { "type": "string" }, "row_version": { "type": "integer", "description": "Required when the test already has a result" } } } },
                    "correction": { "type": "object", "properties": { "reason": { "type": "string" }, "signature": { "type": "string", "description": "The caller's password (signature for correcting a released result)" } } } } },
                "ReleaseRequest": { "type": "object", "required": ["tests"], "properties": { "status": { "type": "string", "enum": ["final", "preliminary"] },
                    "tests": { "type": "array", "items": { "type": "object", "properties": { "ordered_test_id": { "type": "integer" }, "row_version": { "type": "integer" } } } } } },
                "CriticalCall": { "type": "object", "required": ["called_person", "read_back"], "properties": { "called_person": { "type": "string" }, "read_back": { "type": "boolean" }, "notes": { "type": "string" } } }
            }
        }
    })
}
