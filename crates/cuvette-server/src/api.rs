//! The JSON API: the bench's actions for other systems, under `/api/v1`, described by the
//! OpenAPI document at `/api/openapi.json`. Authenticated by `Authorization: Bearer <key>`
//! (`cuvette apikey create`) or by a browser session with `X-CSRF-Token`.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use cuvette_app::records::AuditFilter;
use cuvette_app::{
    AppError, Correction, CriticalCall, EnteredResult, IdentityCheck, PatientQuery, PlaceOrder,
    RegisterPatient,
};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::workflow::TestStatus;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AppState;
use crate::auth::ApiCaller;
use crate::error::{ApiError, api_error};

mod interfaces;
pub mod openapi;
pub mod responses;

use interfaces::{
    add_instrument, code_map, configure_instrument, dismiss, export_code_map, import_code_map,
    instrument, instruments, map_code, message, messages, quarantine, replay,
};

use responses as out;
use responses::Schema;

type ApiResult<T> = Result<T, ApiError>;

/// Where a parameter is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// In the path (`{id}`); always required.
    Path,
    /// In the query string; always optional.
    Query,
}

/// A path or query parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Path or query.
    pub location: In,
    /// JSON Schema type: "integer" or "string".
    pub kind: &'static str,
    /// What it selects.
    pub description: &'static str,
    /// The form a valid value has, as a regular expression.
    pub pattern: Option<&'static str>,
}

const fn path(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: In::Path, kind, description, pattern: None }
}

const fn query(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: In::Query, kind, description, pattern: None }
}

/// One operation of the API: how the router reaches it and how the OpenAPI document
/// describes it, from the same entry.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path below `/api`, with `{name}` for path parameters.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The group it is listed under.
    pub tag: &'static str,
    /// Path and query parameters.
    pub params: &'static [Param],
    /// The request body's schema, by component name.
    pub body: Option<&'static str>,
    /// The success status.
    pub status: u16,
    /// The success body's schema, generated from its response struct.
    pub response: fn() -> Value,
    /// The refusals it can answer with, each with the error body.
    pub errors: &'static [u16],
}

/// Declares every route once: the router is built from this list and so is the OpenAPI
/// document, so a route cannot exist undocumented.
macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:ident {
        summary: $summary:literal,
        tag: $tag:literal,
        params: [$($param:expr),* $(,)?],
        body: $body:expr,
        ok: $status:literal $resp:ty,
        errors: [$($err:literal),* $(,)?] $(,)?
    } )*) => {
        /// Every operation of the API, in the document's order.
        pub const ROUTES: &[Operation] = &[$(
            Operation {
                method: stringify!($method),
                path: $path,
                summary: $summary,
                tag: $tag,
                params: &[$($param),*],
                body: $body,
                status: $status,
                response: <$resp as Schema>::schema,
                errors: &[$($err),*],
            },
        )*];

        /// The API's router, mounted under `/api`.
        pub fn routes() -> Router<AppState> {
            let mut router = Router::new();
            $( router = router.route($path, on(MethodFilter::$method, $handler)); )*
            router.fallback(no_such_route)
        }
    };
}

const ID: Param = path("id", "integer", "Patient id");
const ACCESSION: Param = Param {
    pattern: Some("^[0-9]{2}-?[0-9]{7}-?[0-9]$"),
    ..path(
        "accession",
        "string",
        "Accession number as printed (26-0000123-0) or scanned (2600001230); the last digit is a check digit",
    )
};
const CODE: Param = Param { pattern: Some(TEST_CODE), ..path("code", "string", "Test code") };
const INSTRUMENT: Param = path("id", "integer", "Instrument id");
const MESSAGE: Param = path("id", "integer", "Message log id");
const LOG_FILTERS: [Param; 6] = [
    query("direction", "string", "in or out"),
    query("outcome", "string", "accepted, quarantined, partial, query, aborted, sent or failed"),
    query("instrument", "integer", "Only this instrument's messages (its id)"),
    query("q", "string", "A control id or accession number, or text in the detail"),
    query("before", "integer", "Page backwards: messages before this id (next_before)"),
    query("limit", "integer", "At most this many, 1 to 1000 (200 when not given)"),
];

/// The form of a test or panel code in the catalog.
pub const TEST_CODE: &str = "^[A-Za-z0-9_-]{1,16}$";

api_routes! {
    GET "/openapi.json" => document {
        summary: "This document", tag: "meta", params: [], body: None,
        ok: 200 out::Document, errors: [],
    }
    POST "/v1/patients" => register_patient {
        summary: "Register a patient", tag: "patients", params: [], body: Some("RegisterPatient"),
        ok: 201 out::Patient, errors: [400, 401, 403, 409, 415, 422],
    }
    GET "/v1/patients" => search_patients {
        summary: "Search patients", tag: "patients",
        params: [query("q", "string", "MRN, `family,given`, optionally followed by a date of birth")],
        body: None, ok: 200 out::PatientList, errors: [400, 401, 403, 422],
    }
    GET "/v1/patients/{id}" => patient {
        summary: "A patient", tag: "patients", params: [ID], body: None,
        ok: 200 out::Patient, errors: [400, 401, 403, 404],
    }
    GET "/v1/patients/{id}/report" => report {
        summary: "The patient's released results (cumulative report); audited as a view",
        tag: "results", params: [ID], body: None,
        ok: 200 out::Report, errors: [400, 401, 403, 404],
    }
    POST "/v1/orders" => place_order {
        summary: "Place an order: patient and tests in, accession numbers out", tag: "orders",
        params: [], body: Some("OrderRequest"),
        ok: 201 out::PlacedOrder, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    GET "/v1/specimens/{accession}" => specimen {
        summary: "A specimen with its tests and results (test code, LOINC, value, unit, flags, status, who entered and verified)",
        tag: "specimens", params: [ACCESSION], body: None,
        ok: 200 out::Specimen, errors: [400, 401, 403, 404, 422],
    }
    POST "/v1/specimens/{accession}/collect" => collect {
        summary: "Record collection now, by the caller", tag: "specimens",
        params: [ACCESSION], body: None,
        ok: 200 out::SpecimenStep, errors: [400, 401, 403, 404, 409, 422],
    }
    POST "/v1/specimens/{accession}/receive" => receive {
        summary: "Receive in the lab after checking two identifiers on the label",
        tag: "specimens", params: [ACCESSION], body: Some("ReceiveRequest"),
        ok: 200 out::SpecimenStep, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    POST "/v1/specimens/{accession}/reject" => reject {
        summary: "Reject; open tests are cancelled and a recollection specimen is created",
        tag: "specimens", params: [ACCESSION], body: Some("RejectRequest"),
        ok: 200 out::Rejected, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    POST "/v1/specimens/{accession}/results" => enter_results {
        summary: "Enter results by test code (all or nothing); calculations follow",
        tag: "results", params: [ACCESSION], body: Some("ResultsRequest"),
        ok: 200 out::SavedResults, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    POST "/v1/release" => release {
        summary: "Verify and release results; each is released or held with the reason",
        tag: "results", params: [], body: Some("ReleaseRequest"),
        ok: 200 out::ReleaseOutcomes, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    POST "/v1/tests/{id}/critical-calls" => critical_call {
        summary: "Document the call of a critical result (read-back opens the release gate)",
        tag: "results", params: [path("id", "integer", "Ordered test id")],
        body: Some("CriticalCall"),
        ok: 201 out::CallDocumented, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    GET "/v1/worklist" => worklist {
        summary: "Open tests on a bench, STAT first", tag: "results",
        params: [query("bench", "string", "Discipline, e.g. chemistry")], body: None,
        ok: 200 out::WorkList, errors: [400, 401, 403, 422],
    }
    GET "/v1/search" => find {
        summary: "What a scanned or typed text names: an accession number (or a tube's placer specimen id) the specimen, an MRN the patient, else a name search; audited",
        tag: "search",
        params: [query("q", "string", "An accession number, a placer specimen id, an MRN or a name")],
        body: None, ok: 200 out::Found, errors: [400, 401, 403, 404, 422],
    }
    GET "/v1/orders" => search_orders {
        summary: "Orders by patient, provider, period, status, priority and test, newest first, a page at a time; audited",
        tag: "orders",
        params: [
            query("mrn", "string", "The patient's MRN"),
            query("provider", "string", "The ordering provider, as written on the order"),
            query("from", "string", "First day ordered (2026-11-24); 30 days before the last when absent"),
            query("to", "string", "Last day ordered; today when absent"),
            query("status", "string", "A test status: ordered, collected, received, in_process, preliminary, final, cancelled"),
            query("priority", "string", "stat or routine"),
            query("test", "string", "A test code from the catalog"),
            query("page", "integer", "The page, from 1"),
        ],
        body: None, ok: 200 out::OrderSearchResult, errors: [400, 401, 403, 422],
    }
    GET "/v1/review-queue" => review_queue {
        summary: "Results waiting for verification, critical first", tag: "results",
        params: [], body: None, ok: 200 out::WorkList, errors: [401, 403],
    }
    GET "/v1/audit" => audit {
        summary: "The audit log, newest first", tag: "audit",
        params: [
            query("actor", "string", "Username"),
            query("action", "string", "Only this kind of event, by its code: result.release, login.fail, …"),
            query("entity", "string", "patient, specimen, result, …"),
            query("entity_id", "string", "Which one"),
            query("patient_id", "integer", "Events about this patient"),
            query("before_seq", "integer", "Page backwards: events before this sequence number"),
        ],
        body: None, ok: 200 out::AuditLog, errors: [400, 401, 403, 422],
    }
    GET "/v1/catalog/tests" => catalog_tests {
        summary: "The test catalog with each definition's version", tag: "catalog",
        params: [], body: None, ok: 200 out::CatalogList, errors: [401, 403],
    }
    GET "/v1/catalog/tests/{code}" => catalog_test {
        summary: "One test definition", tag: "catalog", params: [CODE], body: None,
        ok: 200 out::CatalogTest, errors: [400, 401, 403, 404, 422],
    }
    PUT "/v1/catalog/tests/{code}" => save_catalog_test {
        summary: "Save a new version of a test definition (supervisor)", tag: "catalog",
        params: [CODE], body: Some("SaveDefinition"),
        ok: 200 out::DefinitionSaved, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    GET "/v1/catalog/tests/{code}/synonyms" => coded_synonyms {
        summary: "The synonyms of a coded test: the text instruments and the bench write for its values (NEG, 1+, trace), each read as the value it stands for",
        tag: "catalog", params: [CODE], body: None,
        ok: 200 out::CodedSynonymList, errors: [400, 401, 403, 404, 422],
    }
    POST "/v1/catalog/tests/{code}/synonyms" => add_coded_synonym {
        summary: "Add a synonym to a coded test (those who edit the catalog; audited)",
        tag: "catalog", params: [CODE], body: Some("SynonymRequest"),
        ok: 201 out::CodedSynonymList, errors: [400, 401, 403, 404, 415, 422],
    }
    POST "/v1/catalog/tests/{code}/synonyms/remove" => remove_coded_synonym {
        summary: "Remove a synonym of a coded test (those who edit the catalog; audited); results read through it keep their value and the text as sent",
        tag: "catalog", params: [CODE], body: Some("SynonymRemoval"),
        ok: 200 out::CodedSynonymList, errors: [400, 401, 403, 404, 415, 422],
    }
    GET "/v1/instruments" => instruments {
        summary: "Every instrument and other sender, with its settings and code map",
        tag: "interfaces", params: [], body: None,
        ok: 200 out::InstrumentList, errors: [401, 403],
    }
    POST "/v1/instruments" => add_instrument {
        summary: "Add an instrument or other sender (supervisor); audited", tag: "interfaces",
        params: [], body: Some("NewInstrument"),
        ok: 201 out::Instrument, errors: [400, 401, 403, 409, 415, 422],
    }
    GET "/v1/instruments/{id}" => instrument {
        summary: "One instrument with its settings and code map", tag: "interfaces",
        params: [INSTRUMENT], body: None,
        ok: 200 out::Instrument, errors: [400, 401, 403, 404],
    }
    PATCH "/v1/instruments/{id}" => configure_instrument {
        summary: "Rename an instrument, change its sender or protocol, or change its settings (supervisor): all given are saved, or none; each audited",
        tag: "interfaces", params: [INSTRUMENT], body: Some("InstrumentSettings"),
        ok: 200 out::Instrument, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    GET "/v1/instruments/{id}/codes" => code_map {
        summary: "An instrument's code map, with each unit's conversion", tag: "interfaces",
        params: [INSTRUMENT], body: None,
        ok: 200 out::CodeMap, errors: [400, 401, 403, 404],
    }
    POST "/v1/instruments/{id}/codes" => map_code {
        summary: "Add or replace one mapping (supervisor): a catalog test in a unit Cuvette converts, an instrument flag, or ignored; audited",
        tag: "interfaces", params: [INSTRUMENT], body: Some("CodeMapping"),
        ok: 200 out::CodeMapping, errors: [400, 401, 403, 404, 415, 422],
    }
    GET "/v1/instruments/{id}/codes/csv" => export_code_map {
        summary: "An instrument's code map as a CSV file, guarded against spreadsheet formulas",
        tag: "interfaces", params: [INSTRUMENT], body: None,
        ok: 200 out::CodeMapFile, errors: [400, 401, 403, 404],
    }
    POST "/v1/instruments/{id}/codes/csv" => import_code_map {
        summary: "Import a code map CSV file (supervisor): all rows or none, each wrong row named; dry_run only checks",
        tag: "interfaces", params: [INSTRUMENT], body: Some("CodeMapImport"),
        ok: 200 out::CodeMapImported, errors: [400, 401, 403, 404, 415, 422],
    }
    GET "/v1/messages" => messages {
        summary: "The message log, newest first", tag: "interfaces",
        params: [
            LOG_FILTERS[0], LOG_FILTERS[1], LOG_FILTERS[2], LOG_FILTERS[3], LOG_FILTERS[4],
            LOG_FILTERS[5],
        ],
        body: None, ok: 200 out::MessageLog, errors: [400, 401, 403, 422],
    }
    GET "/v1/messages/{id}" => message {
        summary: "One logged message: the bytes, the outcome and the acknowledgement with each error's code",
        tag: "interfaces", params: [MESSAGE], body: None,
        ok: 200 out::MessageDetail, errors: [400, 401, 403, 404],
    }
    GET "/v1/quarantine" => quarantine {
        summary: "Messages waiting in the quarantine, newest first", tag: "interfaces",
        params: [LOG_FILTERS[2], LOG_FILTERS[3], LOG_FILTERS[4], LOG_FILTERS[5]],
        body: None, ok: 200 out::MessageLog, errors: [400, 401, 403, 422],
    }
    POST "/v1/messages/{id}/replay" => replay {
        summary: "Replay a quarantined message once its cause is fixed, optionally with a corrected accession number; audited",
        tag: "interfaces", params: [MESSAGE], body: Some("ReplayRequest"),
        ok: 200 out::Replayed, errors: [400, 401, 403, 404, 415, 422],
    }
    POST "/v1/messages/{id}/dismiss" => dismiss {
        summary: "Dismiss a quarantined message that will not be replayed, with the reason; audited",
        tag: "interfaces", params: [MESSAGE], body: Some("DismissRequest"),
        ok: 200 out::LoggedMessage, errors: [400, 401, 403, 404, 415, 422],
    }
    GET "/v1/catalog/tests/{code}/diff" => catalog_test_diff {
        summary: "What changed between two versions of a test (supervisor)", tag: "catalog",
        params: [
            CODE,
            query("from", "integer", "The earlier version; the one before `to` when absent"),
            query("to", "integer", "The later version; the current one when absent"),
        ],
        body: None, ok: 200 out::VersionDiff, errors: [400, 401, 403, 404, 422],
    }
    GET "/v1/catalog/export" => export_catalog {
        summary: "The whole catalog as one TOML file in the bundled files' shape (supervisor)",
        tag: "catalog", params: [], body: None,
        ok: 200 out::CatalogExport, errors: [401, 403],
    }
    POST "/v1/catalog/import" => import_catalog {
        summary: "Import a catalog file all or nothing, or preview it: each changed test becomes one new version with the reason; a gap is refused by name (supervisor)",
        tag: "catalog", params: [], body: Some("ImportCatalog"),
        ok: 200 out::CatalogImported, errors: [400, 401, 403, 409, 415, 422],
    }
    GET "/v1/staff/{username}" => staff {
        summary: "A person's staff record, authorisations and competency standing today (your own, or anyone's for those who manage users)",
        tag: "staff", params: [USERNAME], body: None,
        ok: 200 out::Staff, errors: [400, 401, 403, 404],
    }
    PUT "/v1/staff/{username}/record" => save_staff_record {
        summary: "Save a staff record (those who manage users); every bad field is refused at once and nothing is stored",
        tag: "staff", params: [USERNAME], body: Some("StaffRecordRequest"),
        ok: 200 out::StaffRecordSaved, errors: [400, 401, 403, 404, 409, 415, 422],
    }
    POST "/v1/staff/{username}/authorisations" => authorise {
        summary: "Authorise a person to test in a discipline (the director or a technical supervisor, recorded as the one who authorised it)",
        tag: "staff", params: [USERNAME], body: Some("AuthoriseRequest"),
        ok: 201 out::Recorded, errors: [400, 401, 403, 404, 415, 422],
    }
    POST "/v1/staff/{username}/competency" => record_competency {
        summary: "Record a competency assessment on a test system: the six CLIA elements, each with evidence, a qualified assessor and a date",
        tag: "staff", params: [USERNAME], body: Some("CompetencyRequest"),
        ok: 201 out::Recorded, errors: [400, 401, 403, 404, 415, 422],
    }
    POST "/v1/staff/{username}/rotations" => schedule_rotation {
        summary: "Schedule a block of a student's clinical rotation: programme, discipline, dates and the supervising technologist (those who manage users)",
        tag: "staff", params: [USERNAME], body: Some("RotationRequest"),
        ok: 201 out::Recorded, errors: [400, 401, 403, 404, 415, 422],
    }
    POST "/v1/staff/{username}/rotations/{id}/sign-off" => sign_off_rotation {
        summary: "Sign off a rotation's logbook, once nothing the student entered in it waits for co-signature (its supervising technologist, the director or a technical supervisor)",
        tag: "staff", params: [USERNAME, ROTATION], body: None,
        ok: 200 out::Logbook, errors: [400, 401, 403, 404, 409, 422],
    }
    GET "/v1/staff/{username}/logbook" => logbook {
        summary: "A student's rotation logbook: tests performed per rotation with their co-signatures and the sign-off; no patient identifiers (the student, their supervisor, those who manage users)",
        tag: "staff", params: [USERNAME], body: None,
        ok: 200 out::Logbook, errors: [400, 401, 403, 404, 422],
    }
    GET "/v1/staff/{username}/logbook/csv" => logbook_csv {
        summary: "The rotation logbook as a CSV file for the programme, guarded against spreadsheet formulas",
        tag: "staff", params: [USERNAME], body: None,
        ok: 200 out::LogbookFile, errors: [400, 401, 403, 404, 422],
    }
    GET "/v1/cosignatures" => cosignatures {
        summary: "Students' results waiting for a co-signature, the asker's own students first (those who may verify); the co-signature is the release",
        tag: "staff", params: [], body: None,
        ok: 200 out::Cosignatures, errors: [401, 403],
    }
    GET "/v1/staff-policy" => qualification_policy {
        summary: "The lab's qualification settings", tag: "staff", params: [], body: None,
        ok: 200 out::QualificationPolicy, errors: [401, 403],
    }
    PUT "/v1/staff-policy" => set_qualification_policy {
        summary: "Change the lab's qualification settings (those who manage users)", tag: "staff",
        params: [], body: Some("PolicyRequest"),
        ok: 200 out::QualificationPolicy, errors: [400, 401, 403, 415, 422],
    }
}

const USERNAME: Param =
    Param { pattern: Some("^[A-Za-z0-9._-]{1,64}$"), ..path("username", "string", "User ID") };
const ROTATION: Param = path("id", "integer", "Rotation id");

/// The document, with the lab's current catalog codes as the values a test code takes.
async fn document(State(s): State<AppState>) -> Json<out::Document> {
    let cat = s.lab.catalog();
    let orderable: Vec<&str> = cat
        .catalog
        .tests()
        .filter(|t| t.orderable)
        .map(|t| t.code.as_str())
        .chain(cat.catalog.panels().map(|p| p.code.as_str()))
        .collect();
    let tests: Vec<&str> = cat.catalog.tests().map(|t| t.code.as_str()).collect();
    Json(out::Document(openapi::document(&orderable, &tests)))
}

async fn no_such_route() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "no such API route: see /api/openapi.json for the routes".into(),
        vec![],
    )
}

/// A refusal of the request's form, before any use case runs: 400 for what does not parse,
/// 415 for a body that is not JSON, 422 for a value the API cannot take (with its field).
#[derive(Debug)]
pub enum BadRequest {
    /// Malformed JSON, path or query string.
    Malformed(String),
    /// No JSON content type.
    NotJson,
    /// Well-formed but unusable: the field and why.
    Invalid(String, String),
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        match self {
            BadRequest::Malformed(m) => api_error(StatusCode::BAD_REQUEST, m, vec![]),
            BadRequest::NotJson => api_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `Content-Type: application/json`".into(),
                vec![],
            ),
            BadRequest::Invalid(field, message) => {
                let f = cuvette_app::FieldError { field, message: message.clone() };
                api_error(StatusCode::UNPROCESSABLE_ENTITY, message, vec![f])
            }
        }
    }
}

/// The first text in `v` holding a NUL character, by its field path. PostgreSQL cannot store
/// NUL in text, and no laboratory value contains one, so the API refuses it at the edge.
fn nul_field(v: &Value, at: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(at.to_owned()),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, x)| nul_field(x, &format!("{at}[{i}]")))
        }
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                return Some(at.to_owned());
            }
            nul_field(x, &if at.is_empty() { k.clone() } else { format!("{at}.{k}") })
        }),
        _ => None,
    }
}

fn refuse_nul(pairs: &[(String, String)]) -> Result<(), BadRequest> {
    match pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        Some((k, _)) => Err(BadRequest::Invalid(
            k.replace('\0', ""),
            "contains a NUL character: send text without control characters".into(),
        )),
        None => Ok(()),
    }
}

/// A JSON body, refused with the API's error shape (axum's own `Json` answers in plain text).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = BadRequest;

    async fn from_request(req: Request, state: &S) -> Result<ApiJson<T>, BadRequest> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(BadRequest::NotJson);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| BadRequest::Malformed(format!("the body could not be read: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BadRequest::Malformed(format!("the body is not valid JSON: {e}")))?;
        if let Some(field) = nul_field(&value, "") {
            let field = if field.is_empty() { "body".to_owned() } else { field };
            return Err(BadRequest::Invalid(
                field,
                "contains a NUL character: send text without control characters".into(),
            ));
        }
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            BadRequest::Invalid("body".into(), format!("the body does not fit this call: {e}"))
        })
    }
}

/// Query parameters, refused with the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = BadRequest;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ApiQuery<T>, BadRequest> {
        let malformed = |e: axum::extract::rejection::QueryRejection| {
            BadRequest::Malformed(format!(
                "the query string does not fit this call: {}",
                e.body_text()
            ))
        };
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(malformed)?;
        refuse_nul(&pairs)?;
        Query::<T>::try_from_uri(&parts.uri).map(|Query(q)| ApiQuery(q)).map_err(malformed)
    }
}

/// Path parameters, refused with the API's error shape.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = BadRequest;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, BadRequest> {
        let malformed = |e: axum::extract::rejection::PathRejection| {
            BadRequest::Malformed(format!("the path does not fit this call: {}", e.body_text()))
        };
        let Path(pairs) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(malformed)?;
        refuse_nul(&pairs)?;
        let Path(p) = Path::<T>::from_request_parts(parts, state).await.map_err(malformed)?;
        Ok(ApiPath(p))
    }
}

async fn register_patient(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(form): ApiJson<RegisterPatient>,
) -> ApiResult<(StatusCode, Json<out::Patient>)> {
    let p = s.lab.register_patient(&c.actor, &form).await?;
    Ok((StatusCode::CREATED, Json(out::Patient::from(&p))))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_patients(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<out::PatientList>> {
    let rows = s.lab.search_patients(&c.actor, &PatientQuery { text: q.q }).await?;
    Ok(Json(out::PatientList { patients: rows.iter().map(out::Patient::from).collect() }))
}

async fn patient(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::Patient>> {
    Ok(Json(out::Patient::from(&s.lab.patient(&c.actor, id).await?)))
}

async fn report(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::Report>> {
    let r = s.lab.cumulative_report(&c.actor, id).await?;
    Ok(Json(out::Report::from(&r)))
}

#[derive(Deserialize)]
struct OrderRequest {
    /// An existing patient, or…
    patient_id: Option<i64>,
    /// …a patient found by MRN or registered with these details.
    patient: Option<RegisterPatient>,
    #[serde(default, alias = "ordering_provider")]
    provider: String,
    #[serde(default)]
    priority: String,
    /// `["BMP", "CBC"]`, or one string `"BMP, CBC"`.
    #[serde(default, deserialize_with = "codes")]
    tests: Vec<String>,
    #[serde(default, alias = "note")]
    clinical_note: String,
    placer_number: Option<String>,
}

fn codes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Codes {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Codes::deserialize(d)? {
        Codes::List(v) => v,
        Codes::Text(t) => vec![t],
    })
}

async fn place_order(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(req): ApiJson<OrderRequest>,
) -> ApiResult<(StatusCode, Json<out::PlacedOrder>)> {
    let patient_id =
        match (req.patient_id, &req.patient) {
            (Some(id), _) => id,
            (None, Some(p)) => {
                let mrn = cuvette_domain::Mrn::parse(&p.mrn)
                    .map_err(|m| AppError::invalid("patient.mrn", m))?;
                match s
                    .lab
                    .search_patients(&c.actor, &PatientQuery { text: mrn.to_string() })
                    .await?
                    .into_iter()
                    .find(|x| x.mrn == mrn.as_str())
                {
                    Some(found) => found.id,
                    None => s.lab.register_patient(&c.actor, p).await?.id,
                }
            }
            (None, None) => return Err(AppError::invalid(
                "patient",
                "give patient_id, or patient with mrn, family_name, given_name, birth_date and sex",
            )
            .into()),
        };
    let placed = s
        .lab
        .place_order(
            &c.actor,
            &PlaceOrder {
                patient_id,
                provider: req.provider,
                priority: if req.priority.is_empty() { "routine".into() } else { req.priority },
                tests: req.tests,
                clinical_note: req.clinical_note,
                placer_number: req.placer_number,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(out::PlacedOrder::new(&placed, patient_id))))
}

async fn specimen(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(acc): ApiPath<String>,
) -> ApiResult<Json<out::Specimen>> {
    let v = s.lab.specimen_view(&c.actor, &acc).await?;
    Ok(Json(out::Specimen::from(&v)))
}

async fn collect(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(acc): ApiPath<String>,
) -> ApiResult<Json<out::SpecimenStep>> {
    let sp = s.lab.collect(&c.actor, &acc).await?;
    Ok(Json(out::SpecimenStep::from(&sp)))
}

#[derive(Deserialize, Default)]
struct ReceiveRequest {
    mrn: Option<String>,
    birth_date: Option<String>,
    family_name: Option<String>,
}

async fn receive(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(acc): ApiPath<String>,
    ApiJson(req): ApiJson<ReceiveRequest>,
) -> ApiResult<Json<out::SpecimenStep>> {
    let check =
        IdentityCheck { mrn: req.mrn, birth_date: req.birth_date, family_name: req.family_name };
    let sp = s.lab.receive(&c.actor, &acc, &check).await?;
    Ok(Json(out::SpecimenStep::from(&sp)))
}

#[derive(Deserialize)]
struct RejectRequest {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
}

async fn reject(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(acc): ApiPath<String>,
    ApiJson(req): ApiJson<RejectRequest>,
) -> ApiResult<Json<out::Rejected>> {
    let recollection = s.lab.reject(&c.actor, &acc, &req.reason, &req.note).await?;
    Ok(Json(out::Rejected {
        accession: acc,
        status: "rejected".into(),
        recollection_accession: recollection,
    }))
}

#[derive(Deserialize)]
struct ResultEntry {
    test_code: String,
    value: String,
    /// The test's row_version as last read; required when the test already has a result,
    /// so nothing is overwritten unseen.
    row_version: Option<i64>,
}

#[derive(Deserialize)]
struct CorrectionRequest {
    reason: String,
    signature: String,
}

#[derive(Deserialize)]
struct ResultsRequest {
    results: Vec<ResultEntry>,
    correction: Option<CorrectionRequest>,
}

async fn enter_results(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(acc): ApiPath<String>,
    ApiJson(req): ApiJson<ResultsRequest>,
) -> ApiResult<Json<out::SavedResults>> {
    let view = s.lab.specimen_view(&c.actor, &acc).await?;
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in req.results.iter().enumerate() {
        let code = r.test_code.trim().to_ascii_uppercase();
        let Some(t) =
            view.tests.iter().rev().find(|t| {
                t.item.test.test_code == code && t.item.test.status != TestStatus::Cancelled
            })
        else {
            errors.push(cuvette_app::FieldError {
                field: format!("results[{i}].test_code"),
                message: format!(
                    "{} is not ordered on specimen {}",
                    r.test_code, view.specimen.accession
                ),
            });
            continue;
        };
        let row_version = match (r.row_version, &t.item.result) {
            (Some(v), _) => v,
            (None, None) => t.item.test.row_version,
            (None, Some(_)) => {
                errors.push(cuvette_app::FieldError {
                    field: format!("results[{i}].row_version"),
                    message: format!("{code} already has a result: send the row_version you last read to replace it"),
                });
                continue;
            }
        };
        entries.push(EnteredResult {
            ordered_test_id: t.item.test.id,
            row_version,
            text: r.value.clone(),
        });
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors).into());
    }
    let correction =
        req.correction.map(|c| Correction { reason: c.reason, signature: c.signature });
    let saved = s.lab.enter_results(&c.actor, &entries, correction.as_ref()).await?;
    Ok(Json(out::SavedResults { saved: saved.iter().map(out::SavedResult::from).collect() }))
}

#[derive(Deserialize)]
struct ReleaseItem {
    ordered_test_id: i64,
    row_version: i64,
}

#[derive(Deserialize)]
struct ReleaseRequest {
    tests: Vec<ReleaseItem>,
    #[serde(default)]
    status: Option<String>,
}

async fn release(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> ApiResult<Json<out::ReleaseOutcomes>> {
    let status = match req.status.as_deref().unwrap_or("final") {
        "final" => TestStatus::Final,
        "preliminary" => TestStatus::Preliminary,
        other => {
            return Err(AppError::invalid(
                "status",
                format!("{other:?}: release as \"final\" or \"preliminary\""),
            )
            .into());
        }
    };
    let tests: Vec<(i64, i64)> =
        req.tests.iter().map(|t| (t.ordered_test_id, t.row_version)).collect();
    let outcomes = s.lab.release(&c.actor, &tests, status).await?;
    Ok(Json(out::ReleaseOutcomes {
        outcomes: outcomes.iter().map(out::ReleaseOutcome::from).collect(),
    }))
}

#[derive(Deserialize)]
struct CallRequest {
    #[serde(default)]
    called_person: String,
    #[serde(default)]
    read_back: bool,
    #[serde(default)]
    notes: String,
}

async fn critical_call(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CallRequest>,
) -> ApiResult<(StatusCode, Json<out::CallDocumented>)> {
    let call = CriticalCall {
        called_person: req.called_person,
        read_back: req.read_back,
        notes: req.notes,
    };
    let call_id = s.lab.document_critical_call(&c.actor, id, &call).await?;
    Ok((StatusCode::CREATED, Json(out::CallDocumented { id: call_id })))
}

#[derive(Deserialize)]
struct BenchQuery {
    bench: Option<String>,
}

async fn worklist(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(q): ApiQuery<BenchQuery>,
) -> ApiResult<Json<out::WorkList>> {
    let items = s.lab.worklist(&c.actor, q.bench.as_deref()).await?;
    Ok(Json(out::WorkList { items: items.iter().map(out::WorkEntry::from).collect() }))
}

#[derive(Deserialize)]
struct FindQuery {
    #[serde(default)]
    q: String,
}

async fn find(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(q): ApiQuery<FindQuery>,
) -> ApiResult<Json<out::Found>> {
    let found = s.lab.find(&c.actor, &q.q).await?;
    Ok(Json(out::Found::from(&found)))
}

async fn search_orders(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(form): ApiQuery<cuvette_app::search::OrderSearchForm>,
) -> ApiResult<Json<out::OrderSearchResult>> {
    let search = form.read(&s.lab).map_err(AppError::Invalid)?;
    let page = s.lab.search_orders(&c.actor, &search).await?;
    Ok(Json(out::OrderSearchResult {
        items: page.items.iter().map(out::OrderLine::from).collect(),
        page: page.page,
        next_page: page.more.then_some(page.page + 1),
    }))
}

async fn review_queue(State(s): State<AppState>, c: ApiCaller) -> ApiResult<Json<out::WorkList>> {
    let items = s.lab.review_queue(&c.actor).await?;
    Ok(Json(out::WorkList { items: items.iter().map(out::WorkEntry::from).collect() }))
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    entity: Option<String>,
    entity_id: Option<String>,
    patient_id: Option<i64>,
    before_seq: Option<i64>,
}

async fn audit(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<out::AuditLog>> {
    let filter = AuditFilter {
        actor: q.actor.filter(|a| !a.is_empty()),
        action: match q.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(code) => Some(AuditAction::parse(code).ok_or_else(|| {
                AppError::invalid(
                    "action",
                    format!("{code:?} is not an audit action: use a code such as result.release"),
                )
            })?),
        },
        entity: q
            .entity
            .filter(|e| !e.is_empty())
            .map(|e| (e, q.entity_id.clone().unwrap_or_default())),
        patient_id: q.patient_id,
        before_seq: q.before_seq,
    };
    let events = s.lab.audit_events(&c.actor, &filter).await?;
    Ok(Json(out::AuditLog { events: events.iter().map(out::AuditRecord::from).collect() }))
}

async fn catalog_tests(
    State(s): State<AppState>,
    _c: ApiCaller,
) -> ApiResult<Json<out::CatalogList>> {
    let cat = s.lab.catalog();
    Ok(Json(out::CatalogList {
        tests: cat
            .catalog
            .tests()
            .map(|t| out::CatalogTest {
                version: cat.versions.get(&t.code).copied(),
                definition: out::Definition::from(t),
            })
            .collect(),
        panels: cat.catalog.panels().map(out::CatalogPanel::from).collect(),
    }))
}

async fn catalog_test(
    State(s): State<AppState>,
    _c: ApiCaller,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<out::CatalogTest>> {
    let cat = s.lab.catalog();
    let t = cat
        .catalog
        .test(&code)
        .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?;
    Ok(Json(out::CatalogTest {
        version: cat.versions.get(&t.code).copied(),
        definition: out::Definition::from(t),
    }))
}

#[derive(Deserialize)]
struct SaveDefinition {
    expected_version: i64,
    definition: cuvette_domain::TestDefinition,
    /// Refused by the app in the form's words when missing or blank.
    #[serde(default)]
    reason: String,
}

fn synonym_list(s: &AppState, code: &str) -> ApiResult<Json<out::CodedSynonymList>> {
    let rows = s.lab.coded_synonyms(code)?;
    Ok(Json(out::CodedSynonymList {
        test_code: code.to_owned(),
        synonyms: rows.iter().map(out::CodedSynonym::from).collect(),
    }))
}

async fn coded_synonyms(
    State(s): State<AppState>,
    _c: ApiCaller,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<out::CodedSynonymList>> {
    synonym_list(&s, &code)
}

async fn add_coded_synonym(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(code): ApiPath<String>,
    ApiJson(form): ApiJson<cuvette_app::SynonymForm>,
) -> ApiResult<(StatusCode, Json<out::CodedSynonymList>)> {
    s.lab.add_coded_synonym(&c.actor, &code, &form).await?;
    Ok((StatusCode::CREATED, synonym_list(&s, &code)?))
}

#[derive(Deserialize)]
struct SynonymRemoval {
    synonym: String,
}

async fn remove_coded_synonym(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<SynonymRemoval>,
) -> ApiResult<Json<out::CodedSynonymList>> {
    s.lab.remove_coded_synonym(&c.actor, &code, &req.synonym).await?;
    synonym_list(&s, &code)
}

async fn save_catalog_test(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<SaveDefinition>,
) -> ApiResult<Json<out::DefinitionSaved>> {
    if req.definition.code != code {
        return Err(AppError::invalid(
            "definition.code",
            format!("the definition's code must be {code}"),
        )
        .into());
    }
    let version =
        s.lab.save_definition(&c.actor, req.definition, req.expected_version, &req.reason).await?;
    Ok(Json(out::DefinitionSaved { code, version }))
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

async fn catalog_test_diff(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<out::VersionDiff>> {
    let current = s.lab.catalog().versions.get(&code).copied().unwrap_or(0);
    let to = q.to.unwrap_or(current);
    let from = q.from.unwrap_or(to - 1);
    let d = s.lab.definition_diff(&c.actor, &code, from, to).await?;
    Ok(Json(out::VersionDiff {
        code,
        from,
        to,
        from_saved_by: d.from.created_by.clone(),
        to_saved_by: d.to.created_by.clone(),
        to_saved_at: out::Time::at(d.to.created_at),
        to_reason: d.to.reason.clone(),
        diff: out::DefinitionDiff::from(&d.diff),
    }))
}

async fn export_catalog(
    State(s): State<AppState>,
    c: ApiCaller,
) -> ApiResult<Json<out::CatalogExport>> {
    Ok(Json(out::CatalogExport { toml: s.lab.export_catalog(&c.actor)? }))
}

#[derive(Deserialize)]
struct ImportCatalog {
    toml: String,
    #[serde(default)]
    reason: String,
    /// Only show what would change.
    #[serde(default)]
    dry_run: bool,
}

async fn import_catalog(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(req): ApiJson<ImportCatalog>,
) -> ApiResult<Json<out::CatalogImported>> {
    let mode = if req.dry_run {
        cuvette_app::catalog::ImportMode::Preview
    } else {
        cuvette_app::catalog::ImportMode::Apply
    };
    let import = s.lab.import_catalog(&c.actor, &req.toml, &req.reason, mode).await?;
    Ok(Json(out::CatalogImported::from(&import)))
}

#[derive(Deserialize)]
struct StaffRecordRequest {
    expected_version: i64,
    record: cuvette_domain::staff::StaffRecordInput,
}

async fn staff(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<out::Staff>> {
    let view = s.lab.staff(&c.actor, &username).await?;
    Ok(Json(out::Staff::from(&view)))
}

async fn save_staff_record(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<StaffRecordRequest>,
) -> ApiResult<Json<out::StaffRecordSaved>> {
    let version =
        s.lab.save_staff_record(&c.actor, &username, &req.record, req.expected_version).await?;
    Ok(Json(out::StaffRecordSaved { username, version }))
}

async fn authorise(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<cuvette_app::AuthoriseInput>,
) -> ApiResult<(StatusCode, Json<out::Recorded>)> {
    let id = s.lab.authorise(&c.actor, &username, &req).await?;
    Ok((StatusCode::CREATED, Json(out::Recorded { id })))
}

async fn record_competency(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<cuvette_app::AssessmentInput>,
) -> ApiResult<(StatusCode, Json<out::Recorded>)> {
    let id = s.lab.record_competency(&c.actor, &username, &req).await?;
    Ok((StatusCode::CREATED, Json(out::Recorded { id })))
}

async fn qualification_policy(
    State(s): State<AppState>,
    c: ApiCaller,
) -> ApiResult<Json<out::QualificationPolicy>> {
    let policy = s.lab.qualification_policy(&c.actor).await?;
    Ok(Json(policy.into()))
}

async fn set_qualification_policy(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(req): ApiJson<cuvette_app::PolicyInput>,
) -> ApiResult<Json<out::QualificationPolicy>> {
    let policy = s.lab.set_qualification_policy(&c.actor, &req).await?;
    Ok(Json(policy.into()))
}

async fn schedule_rotation(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<cuvette_domain::rotation::RotationInput>,
) -> ApiResult<(StatusCode, Json<out::Recorded>)> {
    let id = s.lab.schedule_rotation(&c.actor, &username, &req).await?;
    Ok((StatusCode::CREATED, Json(out::Recorded { id })))
}

async fn sign_off_rotation(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath((username, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<out::Logbook>> {
    s.lab.sign_off_rotation(&c.actor, &username, id).await?;
    let book = s.lab.logbook(&c.actor, &username).await?;
    Ok(Json(out::Logbook::from(&book)))
}

async fn logbook(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<out::Logbook>> {
    let book = s.lab.logbook(&c.actor, &username).await?;
    Ok(Json(out::Logbook::from(&book)))
}

async fn logbook_csv(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<out::LogbookFile>> {
    let book = s.lab.logbook(&c.actor, &username).await?;
    Ok(Json(out::LogbookFile {
        username: book.user.username.clone(),
        filename: crate::html::logbook_filename(&book, "csv"),
        csv: crate::html::logbook_csv_body(&book),
    }))
}

async fn cosignatures(
    State(s): State<AppState>,
    c: ApiCaller,
) -> ApiResult<Json<out::Cosignatures>> {
    let pending = s.lab.pending_cosignatures(&c.actor).await?;
    Ok(Json(out::Cosignatures {
        items: pending
            .iter()
            .map(|p| out::PendingCosignature {
                student: p.item.result.as_ref().map(|r| r.entered_by.clone()).unwrap_or_default(),
                supervisor: p.supervisor.clone(),
                yours: p.yours,
                entry: out::WorkEntry::from(&p.item),
            })
            .collect(),
    }))
}
