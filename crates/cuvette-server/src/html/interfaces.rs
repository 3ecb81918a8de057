//! Interfaces: instruments and their test codes, the message log, the quarantine (fix and
//! replay), and the outbox of results to the EHR. Interfaces are where labs lose days
//! troubleshooting, so every message is here with its outcome and its acknowledgement.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::interop::{self, CodeEntry, MESSAGE_PAGE};
use cuvette_app::records::{
    CodeDisposition, InstrumentRow, MessageFilter, MessageRow, OutboxRow, Quarantine, TestCodeRow,
};
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::units::{self, Mapping};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/interfaces", get(overview))
        .route("/interfaces/instruments", post(add_instrument))
        .route("/interfaces/instruments/{id}/codes", post(map_code))
        .route("/interfaces/instruments/{id}/unmapped", post(set_unmapped_results))
        .route("/interfaces/instruments/{id}/codes.csv", get(code_map_download))
        .route("/interfaces/instruments/{id}/codes/import", post(import_code_map))
        .route("/interfaces/instruments/{id}/peers", post(set_allowed_peers))
        .route("/interfaces/instruments/{id}/identity", post(edit_instrument))
        .route("/interfaces/messages", get(messages))
        .route("/interfaces/messages/{id}", get(message))
        .route("/interfaces/messages/{id}/replay", post(replay))
        .route("/interfaces/messages/{id}/dismiss", post(dismiss))
        .route("/interfaces/outbox/{id}/retry", post(retry_outbox))
}

struct LogLine {
    id: i64,
    at: String,
    direction: String,
    protocol: String,
    peer: String,
    sender: String,
    control_id: String,
    message_type: String,
    outcome: String,
    detail: String,
    accession: String,
    quarantine: String,
    processed_ms: String,
}

fn log_lines(s: &AppState, rows: &[MessageRow]) -> Vec<LogLine> {
    rows.iter()
        .map(|m| LogLine {
            id: m.id,
            at: s.lab.format_time(m.received_at),
            direction: m.direction.code().to_owned(),
            protocol: m.protocol.name().to_owned(),
            peer: m.peer.clone(),
            sender: m.sender.clone(),
            control_id: m.control_id.clone().unwrap_or_default(),
            message_type: m.message_type.clone(),
            outcome: m.outcome.code().to_owned(),
            detail: m.detail.clone(),
            accession: m.accession.clone().unwrap_or_default(),
            quarantine: m.quarantine.map(Quarantine::code).unwrap_or_default().to_owned(),
            processed_ms: format!("{:.1}", m.processed_us as f64 / 1000.0),
        })
        .collect()
}

struct OutboxLine {
    id: i64,
    destination: String,
    accession: String,
    control_id: String,
    created: String,
    status: String,
    attempts: i64,
    next: String,
    error: String,
}

fn outbox_lines(s: &AppState, rows: &[OutboxRow]) -> Vec<OutboxLine> {
    rows.iter()
        .map(|o| OutboxLine {
            id: o.id,
            destination: o.destination.clone(),
            accession: o.accession.clone(),
            control_id: o.control_id.clone(),
            created: s.lab.format_time(o.created_at),
            status: o.status.code().to_owned(),
            attempts: o.attempts,
            next: s.lab.format_time(o.next_attempt_at),
            error: o.last_error.clone().unwrap_or_default(),
        })
        .collect()
}

/// One mapped code as the instruments panel shows it, with the conversion its results take.
struct CodeLine {
    instrument_code: String,
    /// The catalog test, or what the code is mapped as instead ("ignored", "instrument flag").
    test_code: String,
    unit: String,
    /// "mmol/L → mg/dL × 18.016 (glucose, …)", empty when the unit is the catalog's.
    conversion: String,
    /// Why results in this unit cannot be taken (a mapping saved before conversions were
    /// required), empty when they can.
    problem: String,
}

fn code_lines(s: &AppState, codes: &[TestCodeRow]) -> Vec<CodeLine> {
    let catalog = s.lab.catalog();
    codes
        .iter()
        .map(|c| {
            let mapped_as = match c.disposition {
                CodeDisposition::Result => None,
                CodeDisposition::Ignore => Some("ignored: its results are skipped"),
                CodeDisposition::Flag => {
                    Some("instrument flag: stored on the specimen's results, sent to review")
                }
            };
            if let Some(mapped_as) = mapped_as {
                return CodeLine {
                    instrument_code: c.instrument_code.clone(),
                    test_code: mapped_as.to_owned(),
                    unit: String::new(),
                    conversion: String::new(),
                    problem: String::new(),
                };
            }
            let (conversion, problem) = conversion_of(&catalog.catalog, c);
            CodeLine {
                instrument_code: c.instrument_code.clone(),
                test_code: c.test_code.clone(),
                unit: c.unit.clone(),
                conversion: conversion.unwrap_or_default(),
                problem: problem.unwrap_or_default(),
            }
        })
        .collect()
}

/// The conversion a code's results take to the catalog's unit (`None` when they arrive in
/// it), and why they cannot be taken (a mapping saved before conversions were required).
pub(crate) fn conversion_of(
    catalog: &cuvette_domain::Catalog,
    c: &TestCodeRow,
) -> (Option<String>, Option<String>) {
    if c.disposition != CodeDisposition::Result {
        return (None, None);
    }
    match catalog.test(&c.test_code) {
        Some(def) => match units::mapping(def, &c.unit) {
            Mapping::Same => (None, None),
            Mapping::Convert(conversion) => (Some(conversion.describe()), None),
            Mapping::Unconvertible => (
                None,
                Some(format!(
                    "Cuvette cannot convert {} to the catalog's {}: its results are quarantined until the code is mapped again",
                    c.unit,
                    if def.unit.is_empty() { "(no unit)" } else { &def.unit }
                )),
            ),
        },
        // Serum indices are not catalog tests and take no unit.
        None => (None, None),
    }
}

#[derive(Template)]
#[template(path = "interfaces.html")]
struct OverviewPage {
    page: Page,
    may_edit: bool,
    instruments: Vec<(InstrumentRow, Vec<CodeLine>)>,
    quarantine: Vec<LogLine>,
    outbox: Vec<OutboxLine>,
    form: InstrumentForm,
    /// The code form of the instrument whose mapping was refused, as typed.
    code_form: Option<(i64, CodeForm)>,
    /// The code map file pasted for an instrument, kept when it was refused or only checked.
    import_form: Option<(i64, String)>,
    /// The addresses typed for the instrument whose list was refused, as typed.
    peers_form: Option<(i64, String)>,
    /// The name, protocol and sender typed for the instrument whose change was refused.
    identity_form: Option<(i64, InstrumentForm)>,
}

impl OverviewPage {
    /// What the code form of `instrument` shows: what was typed when its mapping was refused.
    fn typed(&self, instrument: &i64) -> CodeForm {
        match &self.code_form {
            Some((id, form)) if id == instrument => form.clone(),
            _ => CodeForm::default(),
        }
    }

    /// The code map file pasted for `instrument`, as it was pasted.
    fn typed_csv(&self, instrument: &i64) -> &str {
        match &self.import_form {
            Some((id, csv)) if id == instrument => csv,
            _ => "",
        }
    }

    /// Whether `value` is what becomes of `instrument`'s results that cannot be taken.
    fn chosen(&self, instrument: &InstrumentRow, value: &str) -> bool {
        instrument.unmapped_results.code() == value
    }

    /// What `instrument`'s address field shows: what was typed when it was refused, else the
    /// stored list.
    fn peers_typed(&self, instrument: &InstrumentRow) -> String {
        match &self.peers_form {
            Some((id, typed)) if *id == instrument.id => typed.clone(),
            _ => instrument.allowed_peers.code(),
        }
    }

    /// Whether the refused address list was typed for `instrument`.
    fn peers_refused_here(&self, instrument: &i64) -> bool {
        self.peers_form.as_ref().is_some_and(|(id, _)| id == instrument)
    }

    /// What `instrument`'s name, protocol and sender fields show: what was typed when the
    /// change was refused, else what is stored.
    fn identity_typed(&self, instrument: &InstrumentRow) -> (String, String, String) {
        match &self.identity_form {
            Some((id, f)) if *id == instrument.id => {
                (f.name.clone(), f.protocol.clone(), f.sender.clone())
            }
            _ => (
                instrument.name.clone(),
                instrument.protocol.code().to_owned(),
                instrument.sender.clone(),
            ),
        }
    }

    /// The error of `field` on `instrument`'s name and sender form, when its change was
    /// refused.
    fn identity_error(&self, instrument: &i64, field: &str) -> Option<&str> {
        match &self.identity_form {
            Some((id, _)) if id == instrument => self.page.error_for(field),
            _ => None,
        }
    }

    /// The error of `field` on the form that adds an instrument, when that was refused.
    fn add_error(&self, field: &str) -> Option<&str> {
        match self.identity_form {
            Some(_) => None,
            None => self.page.error_for(field),
        }
    }

    /// Whether the refused mapping was typed into `instrument`'s code form.
    fn refused_here(&self, instrument: &i64) -> bool {
        self.code_form.as_ref().is_some_and(|(id, _)| id == instrument)
    }
}

/// The setting's choices: (value, words).
const UNMAPPED_CHOICES: [(&str, &str); 2] = [
    ("hold", "Hold the whole message in the quarantine"),
    ("store_mappable", "Store the results that can be taken; quarantine the rest with the reason"),
];

#[derive(Deserialize, Default)]
struct InstrumentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    sender: String,
}

async fn overview_page(
    s: &AppState,
    bench: &Bench,
    errors: Vec<FieldError>,
    form: InstrumentForm,
) -> Result<OverviewPage, WebError> {
    let instruments = s.lab.instruments(&bench.actor).await?;
    let quarantine = s
        .lab
        .message_log(
            &bench.actor,
            &MessageFilter { open_quarantine: true, limit: 200, ..Default::default() },
        )
        .await?;
    let outbox = s.lab.outbox(&bench.actor).await?;
    Ok(OverviewPage {
        page: Page::new(bench, "Interfaces", "interfaces").with_errors(errors),
        may_edit: bench.may(Action::EditCatalog),
        instruments: instruments.into_iter().map(|(i, codes)| (i, code_lines(s, &codes))).collect(),
        quarantine: log_lines(s, &quarantine),
        outbox: outbox_lines(s, &outbox),
        form,
        code_form: None,
        import_form: None,
        peers_form: None,
        identity_form: None,
    })
}

async fn overview(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    Ok(Html(overview_page(&s, &bench, vec![], InstrumentForm::default()).await?.render()?))
}

async fn add_instrument(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<InstrumentForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.add_instrument(&bench.actor, &form.name, &form.protocol, &form.sender).await {
        Ok(_) => Ok(Redirect::to("/interfaces").into_response()),
        Err(AppError::Invalid(errors)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(overview_page(&s, &bench, errors, form).await?.render()?),
        )
            .into_response()),
        Err(AppError::Conflict(m)) => {
            let errors = vec![FieldError { field: "name".into(), message: m }];
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(overview_page(&s, &bench, errors, form).await?.render()?),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Renames an instrument, or changes its protocol or the sender it is known by (those who
/// edit the catalog; audited). Refused in the words the API uses, the fields kept as typed.
async fn edit_instrument(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<InstrumentForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let settings = interop::InstrumentSettings {
        name: Some(&form.name),
        protocol: Some(&form.protocol),
        sender: Some(&form.sender),
        ..Default::default()
    };
    let errors = match s.lab.configure_instrument(&bench.actor, id, &settings).await {
        Ok(()) => return Ok(Redirect::to("/interfaces").into_response()),
        Err(AppError::Invalid(errors)) => errors,
        Err(AppError::Conflict(m)) => vec![FieldError { field: "name".into(), message: m }],
        Err(e) => return Err(e.into()),
    };
    let mut page = overview_page(&s, &bench, errors, InstrumentForm::default()).await?;
    page.identity_form = Some((id, form));
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
}

#[derive(Deserialize, Default, Clone)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    instrument_code: String,
    #[serde(default)]
    test_code: String,
    #[serde(default)]
    unit: String,
    /// `result` (or empty), `flag` or `ignore`.
    #[serde(default)]
    map_as: String,
}

async fn map_code(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let entry = CodeEntry {
        instrument_code: &form.instrument_code,
        map_as: &form.map_as,
        test_code: &form.test_code,
        unit: &form.unit,
    };
    let saved = s.lab.map_code(&bench.actor, id, &entry).await;
    match saved {
        Ok(_) => Ok(Redirect::to("/interfaces").into_response()),
        Err(AppError::Invalid(errors)) => {
            let mut page = overview_page(&s, &bench, errors, InstrumentForm::default()).await?;
            page.code_form = Some((id, form));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct UnmappedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    unmapped_results: String,
}

async fn set_unmapped_results(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<UnmappedForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.set_unmapped_results(&bench.actor, id, &form.unmapped_results).await {
        Ok(()) => Ok(Redirect::to("/interfaces").into_response()),
        Err(AppError::Invalid(errors)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(overview_page(&s, &bench, errors, InstrumentForm::default()).await?.render()?),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct PeersForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    allowed_peers: String,
}

async fn set_allowed_peers(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<PeersForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.set_allowed_peers(&bench.actor, id, &form.allowed_peers).await {
        Ok(_) => Ok(Redirect::to("/interfaces").into_response()),
        Err(AppError::Invalid(errors)) => {
            let mut page = overview_page(&s, &bench, errors, InstrumentForm::default()).await?;
            page.peers_form = Some((id, form.allowed_peers));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
struct LogQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "interfaces_messages.html")]
struct LogPage {
    page: Page,
    q: LogQuery,
    lines: Vec<LogLine>,
    next_before: Option<i64>,
}

async fn messages(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<LogQuery>,
) -> Result<Html<String>, WebError> {
    let query = interop::LogQuery {
        direction: &q.direction,
        outcome: &q.outcome,
        text: &q.q,
        before: q.before.parse().ok(),
        ..interop::LogQuery::default()
    };
    let rows = s.lab.search_message_log(&bench.actor, &query).await?;
    let next_before =
        (rows.len() as i64 == MESSAGE_PAGE).then(|| rows.last().map(|m| m.id)).flatten();
    let page = LogPage {
        page: Page::new(&bench, "Message log", "interfaces"),
        lines: log_lines(&s, &rows),
        q,
        next_before,
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "interfaces_message.html")]
struct MessagePage {
    page: Page,
    m: LogLine,
    raw: String,
    ack: String,
    open: bool,
    may_fix: bool,
    replay_of: Option<i64>,
    accession: String,
}

/// Shows control characters and segment breaks so a reader can see exactly what came in.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("⏎\n"),
            '\n' => out.push_str("␊\n"),
            '\u{0b}' => out.push_str("<VT>"),
            '\u{1c}' => out.push_str("<FS>"),
            '\u{02}' => out.push_str("<STX>"),
            '\u{03}' => out.push_str("<ETX>"),
            '\u{17}' => out.push_str("<ETB>"),
            '\u{04}' => out.push_str("<EOT>"),
            '\u{05}' => out.push_str("<ENQ>"),
            '\u{06}' => out.push_str("<ACK>"),
            '\u{15}' => out.push_str("<NAK>"),
            c if c.is_control() => out.push_str(&format!("<{:02X}>", c as u32)),
            c => out.push(c),
        }
    }
    out
}

async fn message_page(
    s: &AppState,
    bench: &Bench,
    id: i64,
    errors: Vec<FieldError>,
    accession: String,
) -> Result<MessagePage, WebError> {
    let m = s.lab.message(&bench.actor, id).await?;
    let line = log_lines(s, std::slice::from_ref(&m)).remove(0);
    Ok(MessagePage {
        page: Page::new(bench, format!("Message {id}"), "interfaces").with_errors(errors),
        raw: printable(&m.raw),
        ack: m.ack.as_deref().map(printable).unwrap_or_default(),
        open: m.quarantine == Some(Quarantine::Open),
        may_fix: bench.may(Action::VerifyAbnormal),
        replay_of: m.replay_of,
        accession: if accession.is_empty() { line.accession.clone() } else { accession },
        m: line,
    })
}

async fn message(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    Ok(Html(message_page(&s, &bench, id, vec![], String::new()).await?.render()?))
}

#[derive(Deserialize)]
struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    accession: String,
}

async fn replay(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<ReplayForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let accession = Some(form.accession.trim()).filter(|a| !a.is_empty());
    match s.lab.replay_quarantined(&bench.actor, id, accession).await {
        Ok(new_id) => Ok(Redirect::to(&format!("/interfaces/messages/{new_id}")).into_response()),
        Err(AppError::Invalid(errors)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(message_page(&s, &bench, id, errors, form.accession).await?.render()?),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct DismissForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn dismiss(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<DismissForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.dismiss_quarantined(&bench.actor, id, &form.reason).await {
        Ok(()) => Ok(Redirect::to(&format!("/interfaces/messages/{id}")).into_response()),
        Err(AppError::Invalid(errors)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(message_page(&s, &bench, id, errors, String::new()).await?.render()?),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn retry_outbox(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    s.lab.retry_outbox(&bench.actor, id).await?;
    Ok(Redirect::to("/interfaces").into_response())
}

/// An instrument's code map as CSV, the columns in the order an import reads them. Codes and
/// units come from instruments and people: a spreadsheet must never run one as a formula.
pub(crate) fn code_map_csv(codes: &[TestCodeRow]) -> String {
    use crate::csv_export::{Csv, Field};
    let mut csv = Csv::new(&cuvette_app::interop::CODE_MAP_COLUMNS);
    for c in codes {
        csv.row(&[
            Field::Text(&c.instrument_code),
            Field::Value(c.disposition.code()),
            Field::Text(&c.test_code),
            Field::Text(&c.unit),
        ]);
    }
    csv.finish()
}

/// The file name a code map downloads as: the instrument's name in letters, digits and dashes.
pub(crate) fn code_map_filename(instrument: &InstrumentRow) -> String {
    let name: String = instrument
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    format!("cuvette-codes-{}-{}.csv", instrument.id, name.trim_matches('-'))
}

async fn code_map_download(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let (instrument, codes) = s.lab.instrument(&bench.actor, id).await?;
    let disposition = format!("attachment; filename=\"{}\"", code_map_filename(&instrument));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        code_map_csv(&codes),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
    /// Set: check the file and say what would be saved, saving nothing.
    #[serde(default)]
    check_only: Option<String>,
}

async fn import_code_map(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<ImportForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let dry_run = form.check_only.is_some();
    match s.lab.import_code_map(&bench.actor, id, form.csv.as_bytes(), dry_run).await {
        Ok(_) if !dry_run => Ok(Redirect::to("/interfaces").into_response()),
        Ok(codes) => {
            let notice = format!(
                "The file is right: its {} mappings would be saved. Nothing is saved until you import it.",
                codes.len()
            );
            let mut page = overview_page(&s, &bench, vec![], InstrumentForm::default()).await?;
            page.page.notice = Some(notice);
            page.import_form = Some((id, form.csv));
            Ok(Html(page.render()?).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let mut page = overview_page(&s, &bench, errors, InstrumentForm::default()).await?;
            page.import_form = Some((id, form.csv));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
