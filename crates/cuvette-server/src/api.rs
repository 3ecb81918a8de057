//! The JSON API: the bench's actions for other systems, under `/api/v1`, described by the
//! OpenAPI document at `/api/openapi.json`. Authenticated by `Authorization: Bearer <key>`
//! (`cuvette apikey create`) or by a browser session with `X-CSRF-Token`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use cuvette_app::store::{AuditFilter, ResultRow, WorkItem};
use cuvette_app::{
    AppError, Correction, CriticalCall, EnteredResult, IdentityCheck, PatientQuery, PlaceOrder,
    RegisterPatient, SpecimenView, TestView,
};
use cuvette_domain::workflow::{ReleaseStatus, TestStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::ApiCaller;
use crate::error::ApiError;

mod openapi;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/v1/patients", post(register_patient).get(search_patients))
        .route("/v1/patients/{id}", get(patient))
        .route("/v1/patients/{id}/report", get(report))
        .route("/v1/orders", post(place_order))
        .route("/v1/specimens/{accession}", get(specimen))
        .route("/v1/specimens/{accession}/collect", post(collect))
        .route("/v1/specimens/{accession}/receive", post(receive))
        .route("/v1/specimens/{accession}/reject", post(reject))
        .route("/v1/specimens/{accession}/results", post(enter_results))
        .route("/v1/release", post(release))
        .route("/v1/tests/{id}/critical-calls", post(critical_call))
        .route("/v1/worklist", get(worklist))
        .route("/v1/review-queue", get(review_queue))
        .route("/v1/audit", get(audit))
        .route("/v1/catalog/tests", get(catalog_tests))
        .route("/v1/catalog/tests/{code}", get(catalog_test).put(save_catalog_test))
}

fn time(micros: Option<i64>) -> Value {
    micros
        .and_then(|m| jiff::Timestamp::from_microsecond(m).ok())
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

fn flags(f: &str) -> Vec<&str> {
    f.split(' ').filter(|s| !s.is_empty()).collect()
}

fn result_json(r: &ResultRow) -> Value {
    json!({
        "version": r.version,
        "value": r.report_text,
        "value_text": r.value_text,
        "unit": r.unit,
        "sent_value": r.sent_value,
        "sent_unit": r.sent_unit,
        "flags": r.flags.iter().map(|f| f.code()).collect::<Vec<_>>(),
        "reference_interval": r.reference_interval,
        "review": r.review,
        "review_reasons": serde_json::from_str::<Value>(&r.reasons).unwrap_or(json!([])),
        "status": r.release_status.map_or("entered", ReleaseStatus::code),
        "entered_by": r.entered_by,
        "entered_at": time(Some(r.entered_at)),
        "verified_by": r.released_by,
        "verified_at": time(r.released_at),
        "correction_reason": r.correction_reason,
        "definition_version": r.definition_version,
    })
}

fn test_json(t: &TestView) -> Value {
    json!({
        "ordered_test_id": t.item.test.id,
        "row_version": t.item.test.row_version,
        "test_code": t.item.test.test_code,
        "name": t.name,
        "loinc": t.loinc,
        "unit": t.unit,
        "panel": t.item.test.panel_code,
        "calculated": t.calculated,
        "status": t.item.test.status,
        "result": t.item.result.as_ref().map(result_json),
        "released_result": t.released().map(result_json),
        "versions": t.versions.iter().map(result_json).collect::<Vec<_>>(),
        "critical_calls": t.calls.iter().map(|c| json!({
            "called_person": c.called_person, "called_by": c.called_by, "called_at": time(Some(c.called_at)),
            "read_back": c.read_back, "notes": c.notes, "result_version": c.result_version,
        })).collect::<Vec<_>>(),
    })
}

fn specimen_json(v: &SpecimenView) -> Value {
    let s = &v.specimen;
    json!({
        "accession": s.accession,
        "status": s.status,
        "container": s.container,
        "specimen_type": s.specimen_type,
        "collected_at": time(s.collected_at),
        "collected_by": s.collected_by,
        "received_at": time(s.received_at),
        "received_by": s.received_by,
        "rejection": s.rejected_at.map(|_| json!({
            "at": time(s.rejected_at), "by": s.rejected_by, "reason": s.reject_reason, "note": s.reject_note,
        })),
        "row_version": s.row_version,
        "patient": v.patient,
        "order": { "id": v.order.id, "provider": v.order.provider, "priority": v.order.priority,
                   "clinical_note": v.order.clinical_note, "placer_number": v.order.placer_number,
                   "ordered_at": time(Some(v.order.ordered_at)), "ordered_by": v.order.ordered_by },
        "tests": v.tests.iter().map(test_json).collect::<Vec<_>>(),
    })
}

fn work_item_json(i: &WorkItem) -> Value {
    json!({
        "ordered_test_id": i.test.id,
        "row_version": i.test.row_version,
        "accession": i.specimen.accession,
        "test_code": i.test.test_code,
        "discipline": i.test.discipline,
        "status": i.test.status,
        "priority": i.order.priority,
        "patient": i.patient,
        "received_at": time(i.specimen.received_at),
        "result": i.result.as_ref().map(result_json),
    })
}

async fn register_patient(
    State(s): State<AppState>,
    c: ApiCaller,
    Json(form): Json<RegisterPatient>,
) -> ApiResult<impl IntoResponse> {
    let p = s.lab.register_patient(&c.actor, &form).await?;
    Ok((StatusCode::CREATED, Json(json!(p))))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_patients(
    State(s): State<AppState>,
    c: ApiCaller,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Value>> {
    let rows = s.lab.search_patients(&c.actor, &PatientQuery { text: q.q }).await?;
    Ok(Json(json!({ "patients": rows })))
}

async fn patient(
    State(s): State<AppState>,
    c: ApiCaller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.lab.patient(&c.actor, id).await?)))
}

async fn report(
    State(s): State<AppState>,
    c: ApiCaller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let r = s.lab.cumulative_report(&c.actor, id).await?;
    Ok(Json(json!({
        "patient": r.patient,
        "results": r.rows.iter().map(|row| json!({
            "accession": row.test.item.specimen.accession,
            "collected_at": time(row.collected_at),
            "test": test_json(&row.test),
        })).collect::<Vec<_>>(),
    })))
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
    Json(req): Json<OrderRequest>,
) -> ApiResult<impl IntoResponse> {
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
    let accessions: Vec<&str> = placed.specimens.iter().map(|s| s.accession.as_str()).collect();
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "order_id": placed.order_id, "patient_id": patient_id, "accessions": accessions, "specimens": placed.specimens }),
        ),
    ))
}

async fn specimen(
    State(s): State<AppState>,
    c: ApiCaller,
    Path(acc): Path<String>,
) -> ApiResult<Json<Value>> {
    let v = s.lab.specimen_view(&c.actor, &acc).await?;
    Ok(Json(specimen_json(&v)))
}

async fn collect(
    State(s): State<AppState>,
    c: ApiCaller,
    Path(acc): Path<String>,
) -> ApiResult<Json<Value>> {
    let sp = s.lab.collect(&c.actor, &acc).await?;
    Ok(Json(
        json!({ "accession": sp.accession, "status": sp.status, "collected_at": time(sp.collected_at) }),
    ))
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
    Path(acc): Path<String>,
    Json(req): Json<ReceiveRequest>,
) -> ApiResult<Json<Value>> {
    let check =
        IdentityCheck { mrn: req.mrn, birth_date: req.birth_date, family_name: req.family_name };
    let sp = s.lab.receive(&c.actor, &acc, &check).await?;
    Ok(Json(
        json!({ "accession": sp.accession, "status": sp.status, "received_at": time(sp.received_at) }),
    ))
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
    Path(acc): Path<String>,
    Json(req): Json<RejectRequest>,
) -> ApiResult<Json<Value>> {
    let recollection = s.lab.reject(&c.actor, &acc, &req.reason, &req.note).await?;
    Ok(Json(
        json!({ "accession": acc, "status": "rejected", "recollection_accession": recollection }),
    ))
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
    Path(acc): Path<String>,
    Json(req): Json<ResultsRequest>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "saved": saved.iter().map(|r| json!({
            "ordered_test_id": r.ordered_test_id, "version": r.version, "value": r.evaluation.report_text,
            "flags": flags(&r.evaluation.flag_codes()), "reference_interval": r.evaluation.interval,
            "review": r.evaluation.review, "review_reasons": r.evaluation.reasons,
        })).collect::<Vec<_>>(),
    })))
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
    Json(req): Json<ReleaseRequest>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "outcomes": outcomes })))
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
    Path(id): Path<i64>,
    Json(req): Json<CallRequest>,
) -> ApiResult<impl IntoResponse> {
    let call = CriticalCall {
        called_person: req.called_person,
        read_back: req.read_back,
        notes: req.notes,
    };
    let call_id = s.lab.document_critical_call(&c.actor, id, &call).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": call_id }))))
}

#[derive(Deserialize)]
struct BenchQuery {
    bench: Option<String>,
}

async fn worklist(
    State(s): State<AppState>,
    c: ApiCaller,
    Query(q): Query<BenchQuery>,
) -> ApiResult<Json<Value>> {
    let items = s.lab.worklist(&c.actor, q.bench.as_deref()).await?;
    Ok(Json(json!({ "items": items.iter().map(work_item_json).collect::<Vec<_>>() })))
}

async fn review_queue(State(s): State<AppState>, c: ApiCaller) -> ApiResult<Json<Value>> {
    let items = s.lab.review_queue(&c.actor).await?;
    Ok(Json(json!({ "items": items.iter().map(work_item_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    entity: Option<String>,
    entity_id: Option<String>,
    patient_id: Option<i64>,
    before_seq: Option<i64>,
}

async fn audit(
    State(s): State<AppState>,
    c: ApiCaller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let filter = AuditFilter {
        actor: q.actor.filter(|a| !a.is_empty()),
        entity: q
            .entity
            .filter(|e| !e.is_empty())
            .map(|e| (e, q.entity_id.clone().unwrap_or_default())),
        patient_id: q.patient_id,
        before_seq: q.before_seq,
    };
    let events = s.lab.audit_events(&c.actor, &filter).await?;
    Ok(Json(json!({ "events": events })))
}

async fn catalog_tests(State(s): State<AppState>, _c: ApiCaller) -> ApiResult<Json<Value>> {
    let cat = s.lab.catalog();
    let tests: Vec<Value> = cat
        .catalog
        .tests()
        .map(|t| json!({ "version": cat.versions.get(&t.code), "definition": t }))
        .collect();
    let panels: Vec<_> = cat.catalog.panels().collect();
    Ok(Json(json!({ "tests": tests, "panels": panels })))
}

async fn catalog_test(
    State(s): State<AppState>,
    _c: ApiCaller,
    Path(code): Path<String>,
) -> ApiResult<Json<Value>> {
    let cat = s.lab.catalog();
    let t = cat
        .catalog
        .test(&code)
        .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?;
    Ok(Json(json!({ "version": cat.versions.get(&t.code), "definition": t })))
}

#[derive(Deserialize)]
struct SaveDefinition {
    expected_version: i64,
    definition: cuvette_domain::TestDefinition,
}

async fn save_catalog_test(
    State(s): State<AppState>,
    c: ApiCaller,
    Path(code): Path<String>,
    Json(req): Json<SaveDefinition>,
) -> ApiResult<Json<Value>> {
    if req.definition.code != code {
        return Err(AppError::invalid(
            "definition.code",
            format!("the definition's code must be {code}"),
        )
        .into());
    }
    let version = s.lab.save_definition(&c.actor, req.definition, req.expected_version).await?;
    Ok(Json(json!({ "code": code, "version": version })))
}
