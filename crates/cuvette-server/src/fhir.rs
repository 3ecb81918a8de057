//! The FHIR R4 API under `/fhir` (`application/fhir+json`), shaped to US Core: read and
//! search of Patient, ServiceRequest, Specimen, Observation and DiagnosticReport, and the
//! CapabilityStatement at `/fhir/metadata`.
//!
//! One table, [`RESOURCES`], says which types are served and which search parameters and
//! `_include`s each takes: searches are read against it and the CapabilityStatement is written
//! from it, so the statement cannot promise a parameter the router refuses. Every error is an
//! OperationOutcome naming what was wrong in `expression` (the parameter) and what to do in
//! `diagnostics`. The data come only from the app's read models (`cuvette_app::fhir`), which
//! audit every read; only released results are served (see there why).

mod resources;
mod search;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cuvette_app::fhir::{FhirRead, PatientPage, ResultQuery, SpecimenQuery};
use cuvette_app::{AppError, CumulativeReport};
use cuvette_domain::scope::{ReadGrant, ResourceType, Scopes};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;

pub use resources::profile;
use resources::{DiagnosticReport, Observation, Patient, ServiceRequest, Specimen};
use search::Search;

/// The media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The kind of a search parameter (FHIR `SearchParamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A code, optionally with its system.
    Token,
    /// Another resource.
    Reference,
    /// A date or time, with a prefix.
    Date,
}

impl ParamKind {
    /// The name FHIR gives it.
    pub fn code(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
            ParamKind::Reference => "reference",
            ParamKind::Date => "date",
        }
    }
}

/// One search parameter a type takes.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    /// Its name.
    pub name: &'static str,
    /// Its kind.
    pub kind: ParamKind,
    /// What it selects, in the lab's words.
    pub documentation: &'static str,
}

const fn param(name: &'static str, kind: ParamKind, documentation: &'static str) -> SearchParam {
    SearchParam { name, kind, documentation }
}

/// A served resource type: its profile, search parameters and includes.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRoute {
    /// The type.
    pub resource: ResourceType,
    /// The US Core profile its resources claim.
    pub profile: &'static str,
    /// Search parameters besides `_count`, `_include` and the paging cursor.
    pub params: &'static [SearchParam],
    /// The `_include` values it takes.
    pub includes: &'static [&'static str],
}

const ID: SearchParam = param("_id", ParamKind::Token, "The resource id");
const PATIENT: SearchParam =
    param("patient", ParamKind::Reference, "The patient's id, as 123 or Patient/123");
const ACCESSION: SearchParam = param(
    "identifier",
    ParamKind::Token,
    "The accession number as printed (urn:cuvette:accession|26-0000123-0)",
);
const LOINC_CODE: SearchParam =
    param("code", ParamKind::Token, "LOINC codes, any of them: http://loinc.org|2823-3,…");
const COLLECTED: SearchParam = param(
    "date",
    ParamKind::Date,
    "When the specimen was collected, with eq, ge, gt, le or lt; a date is a day in the lab's time zone",
);

/// Every type served, in the CapabilityStatement's order.
pub const RESOURCES: &[ResourceRoute] = &[
    ResourceRoute {
        resource: ResourceType::Patient,
        profile: profile::PATIENT,
        params: &[ID, param("identifier", ParamKind::Token, "The MRN (urn:cuvette:mrn|MRN123)")],
        includes: &[],
    },
    ResourceRoute {
        resource: ResourceType::ServiceRequest,
        profile: profile::SERVICE_REQUEST,
        params: &[ID, PATIENT, ACCESSION, LOINC_CODE],
        includes: &["ServiceRequest:patient"],
    },
    ResourceRoute {
        resource: ResourceType::Specimen,
        profile: profile::SPECIMEN,
        params: &[ID, PATIENT, ACCESSION, COLLECTED],
        includes: &["Specimen:patient"],
    },
    ResourceRoute {
        resource: ResourceType::Observation,
        profile: profile::OBSERVATION_LAB,
        params: &[
            ID,
            PATIENT,
            LOINC_CODE,
            COLLECTED,
            param(
                "status",
                ParamKind::Token,
                "preliminary, final or corrected (only released results are served)",
            ),
            param("category", ParamKind::Token, "laboratory (every Observation served)"),
        ],
        includes: &["Observation:patient"],
    },
    ResourceRoute {
        resource: ResourceType::DiagnosticReport,
        profile: profile::DIAGNOSTIC_REPORT_LAB,
        params: &[
            ID,
            PATIENT,
            ACCESSION,
            COLLECTED,
            param("category", ParamKind::Token, "LAB (every report served)"),
        ],
        includes: &["DiagnosticReport:result", "DiagnosticReport:patient"],
    },
];

/// The route of a type.
pub fn route_of(resource: ResourceType) -> &'static ResourceRoute {
    // Invariant: every type in `ResourceType::ALL` has its row (tested below).
    RESOURCES.iter().find(|r| r.resource == resource).expect("every served type has a route")
}

/// The FHIR API's router, mounted under `/fhir`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/{resource}", get(search))
        .route("/{resource}/{id}", get(read))
        .route("/DiagnosticReport/{id}/report.pdf", get(report_pdf))
        .fallback(no_such_route)
        .method_not_allowed_fallback(not_allowed)
}

// ---- errors ----

/// An error, answered as an OperationOutcome.
#[derive(Debug)]
pub struct Outcome {
    status: StatusCode,
    code: &'static str,
    diagnostics: String,
    expression: Option<String>,
}

impl Outcome {
    /// A bad search parameter (400), named.
    pub fn invalid(parameter: &str, diagnostics: impl Into<String>) -> Outcome {
        Outcome {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            diagnostics: diagnostics.into(),
            expression: Some(parameter.to_owned()),
        }
    }

    fn forbidden(diagnostics: impl Into<String>) -> Outcome {
        Outcome {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    fn not_found(diagnostics: impl Into<String>) -> Outcome {
        Outcome {
            status: StatusCode::NOT_FOUND,
            code: "not-found",
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }
}

impl From<AppError> for Outcome {
    fn from(e: AppError) -> Outcome {
        let (status, code, expression) = match &e {
            AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "login", None),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", None),
            AppError::Invalid(fields) => {
                (StatusCode::BAD_REQUEST, "invalid", fields.first().map(|f| f.field.clone()))
            }
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            AppError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "business-rule", None),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "transient", None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "exception", None),
        };
        let diagnostics = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "FHIR request failed");
            "the request failed on the server; try again, and tell the lab if it persists".into()
        } else {
            e.to_string()
        };
        Outcome { status, code, diagnostics, expression }
    }
}

#[derive(Serialize)]
struct OperationOutcome<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    issue: [Issue<'a>; 1],
}

#[derive(Serialize)]
struct Issue<'a> {
    severity: &'static str,
    code: &'static str,
    diagnostics: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression: Option<[&'a str; 1]>,
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let body = OperationOutcome {
            resource_type: "OperationOutcome",
            issue: [Issue {
                severity: "error",
                code: self.code,
                diagnostics: &self.diagnostics,
                expression: self.expression.as_deref().map(|e| [e]),
            }],
        };
        fhir_json(self.status, &body)
    }
}

fn fhir_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))], bytes)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "FHIR resource did not serialise");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn no_such_route() -> Outcome {
    Outcome::not_found(
        "no such FHIR route: Cuvette serves /fhir/metadata, /fhir/{type} and /fhir/{type}/{id} for Patient, ServiceRequest, Specimen, Observation and DiagnosticReport",
    )
}

async fn not_allowed() -> Outcome {
    Outcome {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "not-supported",
        diagnostics: "Cuvette's FHIR API is read-only here: use GET".into(),
        expression: None,
    }
}

fn resource_type(name: &str) -> Result<ResourceType, Outcome> {
    ResourceType::parse(name).ok_or_else(|| {
        let served: Vec<&str> = ResourceType::ALL.iter().map(|t| t.name()).collect();
        Outcome::not_found(format!(
            "Cuvette serves no {name:?} resources: it serves {}",
            served.join(", ")
        ))
    })
}

// ---- the caller ----

/// Who is asking: a bearer API key, with the SMART scopes it holds. The key's role still
/// decides what it may see in the lab (the app checks it); its scopes narrow FHIR to the types
/// they name.
struct Caller {
    actor: cuvette_app::Actor,
    scopes: Scopes,
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = Outcome;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Caller, Outcome> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Outcome::from(AppError::Unauthenticated(
                    "send Authorization: Bearer <API key>, a key made with FHIR scopes (cuvette apikey create --scope system/*.read)".into(),
                ))
            })?;
        let (actor, scopes) = state.lab.api_key_access(key.trim()).await?;
        Ok(Caller { actor, scopes })
    }
}

impl Caller {
    /// What this key's scopes allow of `resource`; refused when nothing.
    fn grant(&self, resource: ResourceType) -> Result<ReadGrant, Outcome> {
        match self.scopes.read_grant(resource) {
            ReadGrant::Refused => Err(Outcome::forbidden(format!(
                "this key's scopes ({}) do not let it read {resource}: a key with system/{resource}.read or system/*.read does",
                if self.scopes.is_empty() { "none".to_owned() } else { self.scopes.to_string() }
            ))),
            grant => Ok(grant),
        }
    }

    /// Refuses unless the key reads `resource` of any patient (a read by id names no
    /// patient to hold a patient/ scope to).
    fn reads_any(&self, resource: ResourceType) -> Result<(), Outcome> {
        match self.grant(resource)? {
            ReadGrant::AnyPatient => Ok(()),
            _ => Err(Outcome::forbidden(format!(
                "a patient/ scope reads one patient's {resource} at a time: search with patient=<id>"
            ))),
        }
    }
}

// ---- read ----

async fn read(
    State(s): State<AppState>,
    caller: Caller,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    let resource = resource_type(&resource)?;
    caller.reads_any(resource)?;
    let missing = || Outcome::not_found(format!("{resource}/{id} does not exist"));
    let Some(n) = id.parse::<i64>().ok().filter(|n| *n > 0) else { return Err(missing()) };
    let read = FhirRead::Read(n);
    let actor = &caller.actor;
    let lab = &s.lab;
    let body = match resource {
        ResourceType::Patient => {
            let page = PatientPage { id: Some(n), count: 1, ..Default::default() };
            lab.patient_page(actor, &page, read)
                .await?
                .items
                .first()
                .map(|p| to_value(&Patient::from(p)))
        }
        ResourceType::ServiceRequest => {
            let q = ResultQuery { id: Some(n), count: 1, ..Default::default() };
            lab.ordered_tests(actor, &q, read)
                .await?
                .items
                .first()
                .map(|t| to_value(&ServiceRequest::from(t)))
        }
        ResourceType::Specimen => {
            let q = SpecimenQuery { id: Some(n), count: 1, ..Default::default() };
            lab.specimen_page(actor, &q, read)
                .await?
                .items
                .first()
                .map(|x| to_value(&Specimen::from(x)))
        }
        ResourceType::Observation => {
            let q = ResultQuery { id: Some(n), count: 1, ..Default::default() };
            let found = lab.released_results(actor, &q, read).await?.items;
            if found.is_empty() {
                return Err(Outcome::not_found(format!(
                    "Observation/{n} does not exist or its result is not released yet: only released results are served"
                )));
            }
            found.first().map(|r| to_value(&Observation::from(r)))
        }
        ResourceType::DiagnosticReport => {
            let q = SpecimenQuery { id: Some(n), count: 1, ..Default::default() };
            let base = base_url(&s, &headers);
            let found = lab.lab_reports(actor, &q, read).await?.items;
            if found.is_empty() {
                return Err(Outcome::not_found(format!(
                    "DiagnosticReport/{n} does not exist or has no released result yet"
                )));
            }
            found.first().map(|r| to_value(&DiagnosticReport::new(r, &base)))
        }
    };
    let body = body.ok_or_else(missing)?;
    Ok(fhir_json(StatusCode::OK, &body))
}

fn to_value<T: Serialize>(r: &T) -> Value {
    // Invariant: the resource structs hold strings, numbers and vectors only, which always
    // serialise.
    serde_json::to_value(r).expect("a resource serialises")
}

/// The address of this API as the caller reached it.
fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if s.config.secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}/fhir")
}

// ---- search ----

#[derive(Serialize)]
struct Bundle {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    link: Vec<Link>,
    entry: Vec<Entry>,
}

#[derive(Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    full_url: String,
    resource: Value,
    search: EntrySearch,
}

#[derive(Serialize)]
struct EntrySearch {
    mode: &'static str,
}

async fn search(
    State(s): State<AppState>,
    caller: Caller,
    Path(resource): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    let resource = resource_type(&resource)?;
    let route = route_of(resource);
    let Query(pairs) = query.map_err(|e| {
        Outcome::invalid("", format!("the query string cannot be read ({e}): percent-encode it"))
    })?;
    let q = search::read(route, &pairs, &s.lab.config().time_zone)?;
    if caller.grant(resource)? == ReadGrant::OnePatient {
        let (named, how) = match resource {
            ResourceType::Patient => (q.id.is_some(), "_id=<patient id>"),
            _ => (q.patient.is_some(), "patient=<patient id>"),
        };
        if !named {
            return Err(Outcome::forbidden(format!(
                "a patient/ scope reads one patient's {resource} at a time: search with {how}"
            )));
        }
    }
    for include in &q.includes {
        let included = match *include {
            "DiagnosticReport:result" => ResourceType::Observation,
            _ => ResourceType::Patient,
        };
        caller.grant(included)?;
    }
    let base = base_url(&s, &headers);
    let this = link(&base, resource, &q.echo, None);
    let mut matches: Vec<(i64, Value)> = Vec::new();
    let mut included: Vec<(String, Value)> = Vec::new();
    let mut patients: Vec<i64> = Vec::new();
    let mut more = false;
    if !q.matches_nothing {
        let read = FhirRead::Search(&this);
        let actor = &caller.actor;
        let lab = &s.lab;
        let count = q.count;
        match resource {
            ResourceType::Patient => {
                let page = PatientPage { id: q.id, mrn: q.mrn.clone(), after_id: q.after, count };
                let page = lab.patient_page(actor, &page, read).await?;
                more = page.more;
                for p in page.items {
                    matches.push((p.id, to_value(&Patient::from(&p))));
                }
            }
            ResourceType::ServiceRequest => {
                let page = lab.ordered_tests(actor, &result_query(&q, count), read).await?;
                more = page.more;
                for t in page.items {
                    patients.push(t.item.patient.id);
                    matches.push((t.item.test.id, to_value(&ServiceRequest::from(&t))));
                }
            }
            ResourceType::Specimen => {
                let page = lab.specimen_page(actor, &specimen_query(&q, count), read).await?;
                more = page.more;
                for x in page.items {
                    patients.push(x.patient.id);
                    matches.push((x.specimen.id, to_value(&Specimen::from(&x))));
                }
            }
            ResourceType::Observation => {
                let page = lab.released_results(actor, &result_query(&q, count), read).await?;
                more = page.more;
                for r in page.items {
                    patients.push(r.item.patient.id);
                    matches.push((r.item.test.id, to_value(&Observation::from(&r))));
                }
            }
            ResourceType::DiagnosticReport => {
                let page = lab.lab_reports(actor, &specimen_query(&q, count), read).await?;
                more = page.more;
                let results = q.includes.contains(&"DiagnosticReport:result");
                for r in &page.items {
                    patients.push(r.specimen.patient.id);
                    matches
                        .push((r.specimen.specimen.id, to_value(&DiagnosticReport::new(r, &base))));
                    for o in r.results.iter().filter(|_| results) {
                        included.push((
                            format!("Observation/{}", o.item.test.id),
                            to_value(&Observation::from(o)),
                        ));
                    }
                }
            }
        }
        let wants_patients = q.includes.iter().any(|i| i.ends_with(":patient"));
        if wants_patients && !patients.is_empty() {
            for p in lab.patients_by_id(actor, &patients).await? {
                included.push((format!("Patient/{}", p.id), to_value(&Patient::from(&p))));
            }
        }
    }
    let mut links = vec![Link { relation: "self", url: this }];
    if more && let Some((last, _)) = matches.last() {
        links.push(Link { relation: "next", url: link(&base, resource, &q.echo, Some(*last)) });
    }
    let mut entry: Vec<Entry> = matches
        .into_iter()
        .map(|(id, resource_json)| Entry {
            full_url: format!("{base}/{resource}/{id}"),
            resource: resource_json,
            search: EntrySearch { mode: "match" },
        })
        .collect();
    entry.extend(included.into_iter().map(|(path, r)| Entry {
        full_url: format!("{base}/{path}"),
        resource: r,
        search: EntrySearch { mode: "include" },
    }));
    let bundle = Bundle { resource_type: "Bundle", kind: "searchset", link: links, entry };
    Ok(fhir_json(StatusCode::OK, &bundle))
}

fn result_query(q: &Search, count: i64) -> ResultQuery {
    ResultQuery {
        id: q.id,
        patient_id: q.patient,
        accession: q.accession.clone(),
        loinc: q.loinc.clone(),
        collected_from: q.from,
        collected_before: q.before,
        statuses: q.statuses.clone(),
        after_id: q.after,
        count,
    }
}

fn specimen_query(q: &Search, count: i64) -> SpecimenQuery {
    SpecimenQuery {
        id: q.id,
        patient_id: q.patient,
        accession: q.accession.clone(),
        collected_from: q.from,
        collected_before: q.before,
        after_id: q.after,
        count,
    }
}

/// A search's address: the parameters as given, and the cursor of the page it points at.
fn link(
    base: &str,
    resource: ResourceType,
    echo: &[(String, String)],
    after: Option<i64>,
) -> String {
    let enc =
        |s: &str| percent_encoding::utf8_percent_encode(s, crate::web::UNRESERVED_ONLY).to_string();
    let mut pairs: Vec<String> =
        echo.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    if let Some(after) = after {
        pairs.push(format!("_after={after}"));
    }
    if pairs.is_empty() {
        format!("{base}/{resource}")
    } else {
        format!("{base}/{resource}?{}", pairs.join("&"))
    }
}

// ---- the report's PDF ----

async fn report_pdf(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Outcome> {
    let missing = || Outcome::not_found(format!("DiagnosticReport/{id} does not exist"));
    caller.reads_any(ResourceType::DiagnosticReport)?;
    let n = id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(missing)?;
    let q = SpecimenQuery { id: Some(n), count: 1, ..Default::default() };
    let reports = s.lab.lab_reports(&caller.actor, &q, FhirRead::Read(n)).await?;
    let report = reports.items.first().ok_or_else(missing)?;
    let cumulative: CumulativeReport =
        s.lab.cumulative_report(&caller.actor, report.specimen.patient.id).await?;
    let bytes = crate::html::reports::report_pdf_bytes(&s.lab, &cumulative);
    Ok(([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response())
}

// ---- capability statement ----

/// The CapabilityStatement, written from [`RESOURCES`].
pub fn capability_statement(software_version: &str, date: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let params: Vec<Value> = r
                .params
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name,
                        "type": p.kind.code(),
                        "documentation": p.documentation,
                    })
                })
                .collect();
            let mut v = serde_json::json!({
                "type": r.resource.name(),
                "supportedProfile": [r.profile],
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params,
            });
            if !r.includes.is_empty() {
                v["searchInclude"] = serde_json::json!(r.includes);
            }
            v
        })
        .collect();
    serde_json::json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": { "name": "Cuvette", "version": software_version },
        "implementation": { "description": "Cuvette laboratory information system" },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "instantiates": ["http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server"],
        "rest": [{
            "mode": "server",
            "documentation": "Only released results are served. Pages are keyset-paged: follow the next link.",
            "security": {
                "description": "Authorization: Bearer <API key>; the key's SMART scopes (system/Observation.read, patient/*.read, …) choose the types it reads",
            },
            "resource": resources,
        }],
    })
}

async fn metadata(State(s): State<AppState>) -> Response {
    let today = s.lab.now().to_zoned_datetime(s.lab.config().time_zone.clone()).date();
    fhir_json(StatusCode::OK, &capability_statement(env!("CARGO_PKG_VERSION"), &today.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_type_has_one_route() {
        for t in ResourceType::ALL {
            assert_eq!(RESOURCES.iter().filter(|r| r.resource == t).count(), 1, "{t}");
        }
    }
}
