//! Interfaces: instruments and their test codes, the message log, the quarantine (fix and
//! replay), and the outbox of results to the EHR. Interfaces are where labs lose days
//! troubleshooting, so every message is here with its outcome and its acknowledgement.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::records::{
    CodeDisposition, Direction, InstrumentRow, MessageFilter, MessageOutcome, MessageRow,
    OutboxRow, Quarantine, TestCodeRow,
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
        .route("/interfaces/instruments/{id}/peers", post(set_allowed_peers))
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
            let (conversion, problem) = match catalog.catalog.test(&c.test_code) {
                Some(def) => match units::mapping(def, &c.unit) {
                    Mapping::Same => (String::new(), String::new()),
                    Mapping::Convert(conversion) => (conversion.describe(), String::new()),
                    Mapping::Unconvertible => (
                        String::new(),
                        format!(
                            "Cuvette cannot convert {} to the catalog's {}: its results are quarantined until the code is mapped again",
                            c.unit,
                            if def.unit.is_empty() { "(no unit)" } else { &def.unit }
                        ),
                    ),
                },
                // Serum indices are not catalog tests and take no unit.
                None => (String::new(), String::new()),
            };
            CodeLine {
                instrument_code: c.instrument_code.clone(),
                test_code: c.test_code.clone(),
                unit: c.unit.clone(),
                conversion,
                problem,
            }
        })
        .collect()
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
    /// The addresses typed for the instrument whose list was refused, as typed.
    peers_form: Option<(i64, String)>,
}

impl OverviewPage {
    /// What the code form of `instrument` shows: what was typed when its mapping was refused.
    fn typed(&self, instrument: &i64) -> CodeForm {
        match &self.code_form {
            Some((id, form)) if id == instrument => form.clone(),
            _ => CodeForm::default(),
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
        peers_form: None,
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
    let lab = &s.lab;
    let saved = match CodeDisposition::parse(form.map_as.trim()) {
        None if !form.map_as.trim().is_empty() => Err(AppError::invalid(
            "map_as",
            "map the code as a result of a catalog test, an instrument flag, or ignored",
        )),
        Some(CodeDisposition::Flag) => {
            lab.map_flag_code(&bench.actor, id, &form.instrument_code).await
        }
        Some(CodeDisposition::Ignore) => {
            lab.ignore_test_code(&bench.actor, id, &form.instrument_code).await
        }
        Some(CodeDisposition::Result) | None => {
            lab.map_test_code(&bench.actor, id, &form.instrument_code, &form.test_code, &form.unit)
                .await
        }
    };
    match saved {
        Ok(()) => Ok(Redirect::to("/interfaces").into_response()),
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
    const PAGE: i64 = 200;
    // An empty choice is no filter; anything else must be a code, or the page would quietly
    // show every message under a filter the reader thinks is applied.
    let direction = match q.direction.trim() {
        "" => None,
        code => Some(Direction::parse(code).ok_or_else(|| {
            AppError::invalid("direction", format!("{code:?} is not a direction: choose in or out"))
        })?),
    };
    let outcome = match q.outcome.trim() {
        "" => None,
        code => Some(MessageOutcome::parse(code).ok_or_else(|| {
            let known: Vec<&str> = MessageOutcome::ALL.iter().map(|o| o.code()).collect();
            AppError::invalid(
                "outcome",
                format!("{code:?} is not an outcome: choose one of {}", known.join(", ")),
            )
        })?),
    };
    let filter = MessageFilter {
        open_quarantine: false,
        direction,
        outcome,
        text: Some(q.q.trim().to_owned()).filter(|t| !t.is_empty()),
        before_id: q.before.parse().ok(),
        limit: PAGE,
    };
    let rows = s.lab.message_log(&bench.actor, &filter).await?;
    let next_before = (rows.len() as i64 == PAGE).then(|| rows.last().map(|m| m.id)).flatten();
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
