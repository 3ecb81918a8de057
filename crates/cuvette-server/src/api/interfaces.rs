//! The interfaces in the JSON API: instruments and their code maps (one mapping at a time or
//! a whole CSV file), the message log and the quarantine. Each handler calls the use case the
//! interfaces screens call, so the same privileges, checks, words and audit apply.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cuvette_app::interop::{CodeEntry, InstrumentSettings, LogQuery};
use cuvette_app::records::MessageRow;
use serde::{Deserialize, Deserializer};

use super::responses as out;
use super::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;
use crate::auth::ApiCaller;
use crate::html::interfaces::{code_map_csv, code_map_filename};

async fn instrument_body(s: &AppState, c: &ApiCaller, id: i64) -> ApiResult<out::Instrument> {
    let (instrument, codes) = s.lab.instrument(&c.actor, id).await?;
    Ok(out::Instrument::new(&s.lab.catalog().catalog, &instrument, &codes))
}

pub(super) async fn instruments(
    State(s): State<AppState>,
    c: ApiCaller,
) -> ApiResult<Json<out::InstrumentList>> {
    let all = s.lab.instruments(&c.actor).await?;
    let catalog = s.lab.catalog();
    Ok(Json(out::InstrumentList {
        instruments: all
            .iter()
            .map(|(i, codes)| out::Instrument::new(&catalog.catalog, i, codes))
            .collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct NewInstrument {
    #[serde(default)]
    name: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    sender: String,
}

pub(super) async fn add_instrument(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiJson(req): ApiJson<NewInstrument>,
) -> ApiResult<(StatusCode, Json<out::Instrument>)> {
    let id = s.lab.add_instrument(&c.actor, &req.name, &req.protocol, &req.sender).await?;
    Ok((StatusCode::CREATED, Json(instrument_body(&s, &c, id).await?)))
}

pub(super) async fn instrument(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::Instrument>> {
    Ok(Json(instrument_body(&s, &c, id).await?))
}

/// `null` and absent differ for a setting that may be cleared: absent leaves it, `null`
/// clears it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    name: Option<String>,
    protocol: Option<String>,
    sender: Option<String>,
    unmapped_results: Option<String>,
    #[serde(default, deserialize_with = "present")]
    specimen_id_component: Option<Option<usize>>,
    charset: Option<String>,
}

pub(super) async fn configure_instrument(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Settings>,
) -> ApiResult<Json<out::Instrument>> {
    let settings = InstrumentSettings {
        name: req.name.as_deref(),
        protocol: req.protocol.as_deref(),
        sender: req.sender.as_deref(),
        unmapped_results: req.unmapped_results.as_deref(),
        specimen_id_component: req.specimen_id_component,
        charset: req.charset.as_deref(),
    };
    s.lab.configure_instrument(&c.actor, id, &settings).await?;
    Ok(Json(instrument_body(&s, &c, id).await?))
}

pub(super) async fn code_map(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::CodeMap>> {
    let (_, codes) = s.lab.instrument(&c.actor, id).await?;
    let catalog = s.lab.catalog();
    Ok(Json(out::CodeMap {
        instrument_id: id,
        codes: codes.iter().map(|m| out::CodeMapping::new(&catalog.catalog, m)).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct Mapping {
    #[serde(default)]
    instrument_code: String,
    #[serde(default)]
    map_as: String,
    #[serde(default)]
    test_code: String,
    #[serde(default)]
    unit: String,
}

pub(super) async fn map_code(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Mapping>,
) -> ApiResult<Json<out::CodeMapping>> {
    let entry = CodeEntry {
        instrument_code: &req.instrument_code,
        map_as: &req.map_as,
        test_code: &req.test_code,
        unit: &req.unit,
    };
    let mapped = s.lab.map_code(&c.actor, id, &entry).await?;
    Ok(Json(out::CodeMapping::from(&mapped)))
}

pub(super) async fn export_code_map(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::CodeMapFile>> {
    let (instrument, codes) = s.lab.instrument(&c.actor, id).await?;
    Ok(Json(out::CodeMapFile {
        instrument_id: id,
        filename: code_map_filename(&instrument),
        csv: code_map_csv(&codes),
    }))
}

#[derive(Deserialize)]
pub(super) struct CodeMapImport {
    #[serde(default)]
    csv: String,
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn import_code_map(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CodeMapImport>,
) -> ApiResult<Json<out::CodeMapImported>> {
    let codes = s.lab.import_code_map(&c.actor, id, req.csv.as_bytes(), req.dry_run).await?;
    Ok(Json(out::CodeMapImported {
        instrument_id: id,
        dry_run: req.dry_run,
        codes: codes.iter().map(out::CodeMapping::from).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct LogParams {
    #[serde(default)]
    direction: String,
    #[serde(default)]
    outcome: String,
    instrument: Option<i64>,
    #[serde(default)]
    q: String,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn log_page(
    s: &AppState,
    c: &ApiCaller,
    p: &LogParams,
    open_quarantine: bool,
) -> ApiResult<out::MessageLog> {
    let query = LogQuery {
        open_quarantine,
        direction: &p.direction,
        outcome: &p.outcome,
        instrument: p.instrument,
        text: &p.q,
        before: p.before,
        limit: p.limit,
    };
    let rows: Vec<MessageRow> = s.lab.search_message_log(&c.actor, &query).await?;
    let full = rows.len() as i64 == p.limit.unwrap_or(cuvette_app::interop::MESSAGE_PAGE);
    Ok(out::MessageLog {
        next_before: rows.last().filter(|_| full).map(|m| m.id),
        messages: rows.iter().map(out::LoggedMessage::from).collect(),
    })
}

pub(super) async fn messages(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<Json<out::MessageLog>> {
    Ok(Json(log_page(&s, &c, &p, false).await?))
}

pub(super) async fn quarantine(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<Json<out::MessageLog>> {
    Ok(Json(log_page(&s, &c, &p, true).await?))
}

pub(super) async fn message(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<out::MessageDetail>> {
    Ok(Json(out::MessageDetail::from(&s.lab.message(&c.actor, id).await?)))
}

#[derive(Deserialize)]
pub(super) struct ReplayRequest {
    accession: Option<String>,
}

pub(super) async fn replay(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> ApiResult<Json<out::Replayed>> {
    let accession = req.accession.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let replay = s.lab.replay_quarantined(&c.actor, id, accession).await?;
    Ok(Json(out::Replayed {
        original: out::LoggedMessage::from(&s.lab.message(&c.actor, id).await?),
        replay: out::LoggedMessage::from(&s.lab.message(&c.actor, replay).await?),
    }))
}

#[derive(Deserialize)]
pub(super) struct DismissRequest {
    #[serde(default)]
    reason: String,
}

pub(super) async fn dismiss(
    State(s): State<AppState>,
    c: ApiCaller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DismissRequest>,
) -> ApiResult<Json<out::LoggedMessage>> {
    s.lab.dismiss_quarantined(&c.actor, id, &req.reason).await?;
    Ok(Json(out::LoggedMessage::from(&s.lab.message(&c.actor, id).await?)))
}
