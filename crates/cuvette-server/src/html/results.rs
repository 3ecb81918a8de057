//! The bench's result screens: the worklist, the result entry grid, the verification queue and
//! critical-call documentation.
//!
//! Each handler calls one use case and draws its outcome; the rules (who may enter, correct
//! or release what) stay in `cuvette_app` and `cuvette_domain`. The grid comes back with every
//! typed value when a save is refused, and never overwrites a value someone else saved in
//! between (each row carries the test's row version).

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use cuvette_app::{
    AppError, Correction, CriticalCall, EnteredResult, FieldError, Lab, Release, SpecimenView,
    TestView,
};
use cuvette_domain::catalog::ResultType;
use cuvette_domain::evaluation::{PatientContext, Review, interval_text};
use cuvette_domain::role::{ReleaseCheck, may_release};
use cuvette_domain::time::Timestamp;
use cuvette_domain::workflow::{Priority, SpecimenStatus, SpecimenStep, TestStatus, specimen_step};
use cuvette_domain::{Action, Role, Sex};
use jiff::civil::Date;
use serde::Deserialize;

use super::patients::{Banner, BannerSpecimen, short_container, specimen_status_label};
use crate::AppState;
use crate::auth::{Bench, urlencode};
use crate::error::WebError;
use crate::web::{FlagChip, Page, WorklistRow, flag_chips, sent_as, when, worklist_rows};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/worklist", get(worklist))
        .route("/specimens/{accession}/results", get(result_grid).post(save_results))
        .route("/review", get(review_queue).post(verify))
        .route("/tests/{id}/critical-call", get(critical_call_form).post(document_call))
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// The lab's calendar date of a stored time, or today.
pub(super) fn lab_date(lab: &Lab, at: Option<Timestamp>) -> Date {
    at.and_then(|at| at.to_jiff())
        .unwrap_or_else(|| lab.now())
        .to_zoned_datetime(lab.config().time_zone.clone())
        .date()
}

/// The shared banner (UX §0) with this specimen: accession, type and tube, collection time,
/// status and priority.
fn specimen_banner(lab: &Lab, view: &SpecimenView) -> Banner {
    let mut banner = Banner::of(lab, &view.patient);
    let s = &view.specimen;
    banner.specimen = Some(BannerSpecimen {
        accession: s.accession.clone(),
        container: format!("{} · {}", s.specimen_type, short_container(&s.container)),
        collected: s
            .collected_at
            .map(|m| lab.format_time(m))
            .unwrap_or_else(|| "Not collected".into()),
        status: s.status.code().to_owned(),
        status_label: specimen_status_label(&s.status),
        stat: view.order.priority == Priority::Stat,
    });
    banner
}

fn test_status_label(status: &TestStatus) -> String {
    status.to_string()
}

/// A bench (discipline) code in words: "tdm_toxicology" → "TDM / toxicology".
pub(super) fn bench_label(code: &str) -> String {
    match code {
        "tdm_toxicology" => "TDM / toxicology".into(),
        "" => "Other".into(),
        _ => {
            let words = code.replace('_', " ");
            let mut chars = words.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn render_page(status: StatusCode, t: &impl Template) -> Result<Response, WebError> {
    Ok((status, Html(t.render()?)).into_response())
}

// ---------------------------------------------------------------------------------------------
// GET /worklist?bench=chemistry

#[derive(Deserialize, Default)]
struct WorklistQuery {
    #[serde(default)]
    bench: String,
    #[serde(default)]
    stat: String,
}

struct BenchLink {
    label: String,
    href: String,
    current: bool,
    /// Received or in process.
    waiting: i64,
    /// Ordered or collected, not yet in the lab.
    coming: i64,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    page: Page,
    benches: Vec<BenchLink>,
    bench_label: String,
    stat_only: bool,
    stat_href: String,
    rows: Vec<WorklistRow>,
    stat_count: usize,
    entered_count: usize,
}

async fn worklist(
    State(state): State<AppState>,
    bench: Bench,
    Query(q): Query<WorklistQuery>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    bench.require(Action::ViewResults)?;
    let catalog = lab.catalog();
    let disciplines: BTreeSet<String> =
        catalog.catalog.tests().map(|t| t.discipline.clone()).filter(|d| !d.is_empty()).collect();
    let chosen = q.bench.trim().to_ascii_lowercase();
    let stat_only = !q.stat.is_empty() && q.stat != "0";
    let mut errors = Vec::new();
    if !chosen.is_empty() && !disciplines.contains(&chosen) {
        errors.push(FieldError {
            field: "benches".into(),
            message: format!(
                "there is no bench called {:?}: choose one of the benches below",
                q.bench
            ),
        });
    }
    let mut counts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (discipline, status, n) in lab.open_counts(&bench.actor).await? {
        let c = counts.entry(discipline).or_default();
        if status == TestStatus::Received || status == TestStatus::InProcess {
            c.0 += n;
        } else {
            c.1 += n;
        }
    }
    let stat_param = if stat_only { "&stat=1" } else { "" };
    let mut benches = vec![BenchLink {
        label: "All benches".into(),
        href: format!("/worklist?bench={stat_param}"),
        current: chosen.is_empty(),
        waiting: counts.values().map(|c| c.0).sum(),
        coming: counts.values().map(|c| c.1).sum(),
    }];
    benches.extend(disciplines.iter().map(|d| {
        let (waiting, coming) = counts.get(d).copied().unwrap_or_default();
        BenchLink {
            label: bench_label(d),
            href: format!("/worklist?bench={}{stat_param}", urlencode(d)),
            current: *d == chosen,
            waiting,
            coming,
        }
    }));
    let items = if errors.is_empty() {
        let mut items = lab.worklist(&bench.actor, Some(&chosen)).await?;
        if stat_only {
            items.retain(|i| i.order.priority == Priority::Stat);
        }
        items
    } else {
        Vec::new()
    };
    let rows = worklist_rows(lab, &items);
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let bench_label = if chosen.is_empty() { "All benches".into() } else { bench_label(&chosen) };
    let stat_href =
        format!("/worklist?bench={}{}", urlencode(&chosen), if stat_only { "" } else { "&stat=1" });
    let page = WorklistPage {
        page: Page::new(&bench, format!("Worklist · {bench_label}"), "worklist")
            .with_errors(errors),
        benches,
        bench_label,
        stat_only,
        stat_href,
        stat_count: rows.iter().filter(|r| r.stat).count(),
        entered_count: rows.iter().filter(|r| !r.value.is_empty()).count(),
        rows,
    };
    render_page(status, &page)
}

// ---------------------------------------------------------------------------------------------
// GET/POST /specimens/{accession}/results

/// One row of the result grid.
struct GridRow {
    id: i64,
    /// The input's name and id: `result_<id>`.
    field: String,
    code: String,
    name: String,
    unit: String,
    interval: String,
    kind: &'static str,
    low: String,
    high: String,
    crit_low: String,
    crit_high: String,
    amr_low: String,
    amr_high: String,
    /// Coded tests: the value set, `|`-separated, and as a list for the datalist.
    allowed: String,
    options: Vec<String>,
    normal: String,
    numeric: bool,
    /// What the cell shows: typed, or the stored value.
    value: String,
    /// The stored value the form was drawn with (an unchanged cell is not saved again).
    orig: String,
    /// The test's row version the form was drawn with.
    version: i64,
    /// A cell to type in.
    input: bool,
    /// Typing here corrects a released result.
    correcting: bool,
    status: String,
    status_label: String,
    /// The latest stored value, its flags and who entered it.
    current: String,
    current_flags: Vec<FlagChip>,
    /// "sent as 5.2 mmol/L" when the instrument's value was converted.
    sent: String,
    /// The file an instrument sent as the current result, to open before verifying it.
    attachment: Option<super::reports::AttachmentLine>,
    entered: String,
    student: bool,
    released: String,
    /// Why the stored value waits for a technologist.
    reasons: Vec<String>,
    critical: bool,
    previous: String,
    /// Why there is no cell.
    note: String,
}

#[derive(Template)]
#[template(path = "results_entry.html")]
struct ResultsPage {
    page: Page,
    banner: Banner,
    accession: String,
    specimen_status: String,
    patient_id: i64,
    provider: String,
    clinical_note: String,
    bench: String,
    rows: Vec<GridRow>,
    /// Why no results can be entered on this specimen, when none can.
    blocked: String,
    /// Rejection details, for a rejected specimen.
    rejection: Vec<String>,
    recollection: String,
    can_enter: bool,
    correcting: bool,
    correction_reason: String,
    /// After a save: the results that now wait for a technologist, and why.
    needs_review: Vec<(String, String, Vec<String>)>,
}

/// What a grid form sends.
#[derive(Default)]
struct GridForm {
    csrf: String,
    results: BTreeMap<i64, String>,
    versions: BTreeMap<i64, i64>,
    origs: BTreeMap<i64, String>,
    correction: bool,
    correction_reason: String,
    signature: String,
}

impl GridForm {
    fn parse(fields: Vec<(String, String)>) -> GridForm {
        let mut f = GridForm::default();
        for (key, value) in fields {
            let id = |prefix: &str| key.strip_prefix(prefix).and_then(|n| n.parse::<i64>().ok());
            if let Some(id) = id("result_") {
                f.results.insert(id, value);
            } else if let Some(id) = id("version_") {
                if let Ok(v) = value.trim().parse() {
                    f.versions.insert(id, v);
                }
            } else if let Some(id) = id("orig_") {
                f.origs.insert(id, value);
            } else {
                match key.as_str() {
                    "csrf" => f.csrf = value,
                    "correction_reason" => {
                        f.correction = true;
                        f.correction_reason = value;
                    }
                    "signature" => {
                        f.correction = true;
                        f.signature = value;
                    }
                    _ => {}
                }
            }
        }
        f
    }

    /// Whether the person changed this cell.
    fn changed(&self, id: i64) -> bool {
        let typed = self.results.get(&id).map(|s| s.trim()).unwrap_or("");
        let orig = self.origs.get(&id).map(|s| s.trim()).unwrap_or("");
        self.results.contains_key(&id) && typed != orig
    }
}

/// What the cells show instead of the stored values.
#[derive(Default)]
struct Typed {
    values: BTreeMap<i64, String>,
    versions: BTreeMap<i64, i64>,
    origs: BTreeMap<i64, String>,
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    #[serde(default)]
    saved: String,
}

async fn result_grid(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Query(q): Query<SavedQuery>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    let view = lab.specimen_view(&bench.actor, &accession).await?;
    let saved = q.saved.parse::<usize>().ok();
    let notice = saved.map(|n| format!("Saved {}", plural(n, "result", "results")));
    let mut page = grid_page(lab, &bench, &view, &Typed::default(), Vec::new(), notice, "").await?;
    if saved.is_some() {
        page.needs_review = page
            .rows
            .iter()
            .filter(|r| !r.reasons.is_empty() && r.released.is_empty())
            .map(|r| (r.name.clone(), r.current.clone(), r.reasons.clone()))
            .collect();
    }
    render_page(StatusCode::OK, &page)
}

async fn save_results(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = GridForm::parse(fields);
    bench.check_csrf(&form.csrf)?;
    let lab = &state.lab;
    let view = lab.specimen_view(&bench.actor, &accession).await?;
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for t in &view.tests {
        let id = t.item.test.id;
        if !form.changed(id) {
            continue;
        }
        let text = form.results.get(&id).cloned().unwrap_or_default();
        if text.trim().is_empty() {
            errors.push(FieldError {
                field: format!("result_{id}"),
                message: format!(
                    "{}: a saved result cannot be blanked; enter the right value instead",
                    t.name
                ),
            });
            continue;
        }
        // A form without the version cannot prove what it saw: it gets a conflict, not a save.
        let row_version = form.versions.get(&id).copied().unwrap_or(-1);
        entries.push(EnteredResult { ordered_test_id: id, row_version, text });
    }
    let typed = Typed {
        values: form.results.clone(),
        versions: form.versions.clone(),
        origs: form.origs.clone(),
    };
    if !errors.is_empty() {
        let page =
            grid_page(lab, &bench, &view, &typed, errors, None, &form.correction_reason).await?;
        return render_page(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let correction = form.correction.then(|| Correction {
        reason: form.correction_reason.clone(),
        signature: form.signature.clone(),
    });
    match lab.enter_results(&bench.actor, &entries, correction.as_ref()).await {
        Ok(saved) => {
            let to = format!(
                "/specimens/{}/results?saved={}",
                urlencode(&view.specimen.accession),
                saved.len()
            );
            Ok(Redirect::to(&to).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let page = grid_page(lab, &bench, &view, &typed, errors, None, &form.correction_reason)
                .await?;
            render_page(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(AppError::Forbidden(message)) => {
            // Refused for the person's qualifications: nothing was saved, and the grid comes
            // back as typed with the reason, for a qualified colleague to take over.
            let errors = vec![FieldError { field: "results".into(), message }];
            let page = grid_page(lab, &bench, &view, &typed, errors, None, &form.correction_reason)
                .await?;
            render_page(StatusCode::FORBIDDEN, &page)
        }
        Err(AppError::Conflict(message)) => {
            // Someone saved first: show their values and versions, keep what this person
            // changed in the cells, and let them decide.
            let fresh = lab.specimen_view(&bench.actor, &accession).await?;
            let kept = Typed {
                values: form
                    .results
                    .iter()
                    .filter(|(id, _)| form.changed(**id))
                    .map(|(id, v)| (*id, v.clone()))
                    .collect(),
                ..Typed::default()
            };
            // Name each row that changed under this person's hands.
            let mut errors: Vec<FieldError> = fresh
                .tests
                .iter()
                .filter(|t| {
                    form.changed(t.item.test.id)
                        && form.versions.get(&t.item.test.id) != Some(&t.item.test.row_version)
                })
                .map(|t| {
                    let now = match &t.item.result {
                        Some(r) => format!(
                            "it is now {} (entered by {}, {})",
                            r.report_text,
                            r.entered_by,
                            lab.format_time(r.entered_at)
                        ),
                        None => format!("it is now {}", test_status_label(&t.item.test.status)),
                    };
                    FieldError {
                        field: format!("result_{}", t.item.test.id),
                        message: format!(
                            "{} changed since you opened this page: {now}. Nothing was saved; your entry is kept: save again if it should replace theirs",
                            t.name
                        ),
                    }
                })
                .collect();
            if errors.is_empty() {
                errors.push(FieldError {
                    field: "results".into(),
                    message: format!(
                        "{message}. Nothing was saved; the current values are shown beside your entries, which are kept"
                    ),
                });
            }
            let page = grid_page(lab, &bench, &fresh, &kept, errors, None, &form.correction_reason)
                .await?;
            render_page(StatusCode::CONFLICT, &page)
        }
        Err(e) => Err(e.into()),
    }
}

async fn grid_page(
    lab: &Lab,
    bench: &Bench,
    view: &SpecimenView,
    typed: &Typed,
    errors: Vec<FieldError>,
    notice: Option<String>,
    correction_reason: &str,
) -> Result<ResultsPage, WebError> {
    let actor = &bench.actor;
    let sees_results = bench.may(Action::ViewResults);
    let may_enter = bench.may(Action::EnterResult);
    let may_correct = bench.may(Action::CorrectResult);
    let specimen_status = view.specimen.status;
    let blocked = match specimen_step(specimen_status, SpecimenStep::Result) {
        Ok(()) if may_enter => String::new(),
        Ok(()) => format!("Your role ({}) may not enter results on this page.", actor.role),
        Err(refusal) => {
            let mut why = refusal.to_string();
            if let Some(first) = why.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{why}.")
        }
    };
    let (rejection, recollection) = rejection_details(lab, view);
    let previous =
        if sees_results { previous_results(lab, actor, view).await? } else { BTreeMap::new() };

    let catalog = lab.catalog();
    let birth = view.patient.birth_date.parse::<Date>().ok();
    let collected_on = lab_date(lab, view.specimen.collected_at);
    let sex = Sex::parse(&view.patient.sex).unwrap_or(Sex::Unknown);
    let mut rows = Vec::with_capacity(view.tests.len());
    for t in &view.tests {
        let id = t.item.test.id;
        let def = catalog.catalog.test(&t.item.test.test_code);
        let status = t.item.test.status;
        let interval =
            def.and_then(|d| d.interval_for(sex, birth.unwrap_or(collected_on), collected_on));
        // A newborn's critical limits are not a child's or an adult's.
        let (crit_low, crit_high) = def
            .map(|d| d.critical_for(sex, birth.unwrap_or(collected_on), collected_on))
            .unwrap_or_default();
        let dec = |d: Option<rust_decimal::Decimal>| d.map(|x| x.to_string()).unwrap_or_default();
        let result = t.item.result.as_ref();
        let released = t.released();
        let open = status.accepts_results() || (status == TestStatus::Final && may_correct);
        let input = blocked.is_empty() && !t.calculated && def.is_some() && open;
        let note = if t.calculated {
            "Calculated from its inputs".to_owned()
        } else if def.is_none() {
            "No longer in the catalog".to_owned()
        } else if status == TestStatus::Cancelled {
            "Cancelled".to_owned()
        } else if status == TestStatus::Final && !may_correct && blocked.is_empty() {
            "Released; a technologist corrects released results".to_owned()
        } else {
            String::new()
        };
        let stored = result.map(|r| r.value_text.clone()).unwrap_or_default();
        let result_type = def.map(|d| d.result_type);
        let kind = match result_type {
            Some(ResultType::Numeric) => "numeric",
            Some(ResultType::Coded) => "coded",
            Some(ResultType::Text) => "text",
            Some(ResultType::Organism) => "organism",
            None => "text",
        };
        rows.push(GridRow {
            id,
            field: format!("result_{id}"),
            code: t.item.test.test_code.clone(),
            name: t.name.clone(),
            unit: t.unit.clone(),
            // The sentence saying no interval applies shows before anything is typed.
            interval: def
                .map(|d| {
                    let patient = PatientContext {
                        sex,
                        birth_date: birth.unwrap_or(collected_on),
                        collected_on,
                    };
                    interval_text(d, patient)
                })
                .unwrap_or_default(),
            kind,
            low: dec(interval.and_then(|i| i.low)),
            high: dec(interval.and_then(|i| i.high)),
            crit_low: dec(crit_low),
            crit_high: dec(crit_high),
            amr_low: dec(def.and_then(|d| d.amr_low)),
            amr_high: dec(def.and_then(|d| d.amr_high)),
            allowed: def.map(|d| d.allowed_values.join("|")).unwrap_or_default(),
            options: def.map(|d| d.allowed_values.clone()).unwrap_or_default(),
            normal: def.map(|d| d.normal_values.join("|")).unwrap_or_default(),
            numeric: result_type == Some(ResultType::Numeric),
            value: typed.values.get(&id).cloned().unwrap_or_else(|| stored.clone()),
            orig: typed.origs.get(&id).cloned().unwrap_or(stored),
            version: typed.versions.get(&id).copied().unwrap_or(t.item.test.row_version),
            input,
            correcting: input && status == TestStatus::Final,
            status: t.item.test.status.code().to_owned(),
            status_label: test_status_label(&t.item.test.status),
            current: result.map(|r| r.report_text.clone()).unwrap_or_default(),
            current_flags: result.map(|r| flag_chips(&r.flags)).unwrap_or_default(),
            sent: result.map(sent_as).unwrap_or_default(),
            attachment: result
                .and_then(|r| t.attachment_of(r))
                .map(super::reports::AttachmentLine::of),
            entered: result
                .map(|r| format!("{} · {}", r.entered_by, lab.format_time(r.entered_at)))
                .unwrap_or_default(),
            student: result.is_some_and(|r| r.entered_by_role == Role::Student),
            released: released
                .filter(|r| result.is_some_and(|c| c.version == r.version))
                .map(|r| {
                    format!(
                        "{} · {}",
                        r.released_by.clone().unwrap_or_default(),
                        when(lab, r.released_at)
                    )
                })
                .unwrap_or_default(),
            reasons: result
                .filter(|r| r.released_at.is_none() && r.review == Review::Technologist)
                .map(|r| r.reasons.clone())
                .unwrap_or_default(),
            critical: result.is_some_and(|r| r.flags.is_critical()),
            previous: previous.get(&t.item.test.test_code).cloned().unwrap_or_default(),
            note,
        });
    }
    let correcting = rows.iter().any(|r| r.correcting);
    let can_enter = rows.iter().any(|r| r.input);
    Ok(ResultsPage {
        page: Page::new(bench, format!("Results · {}", view.specimen.accession), "worklist")
            .with_errors(errors)
            .with_notice(notice),
        banner: specimen_banner(lab, view),
        accession: view.specimen.accession.clone(),
        specimen_status: view.specimen.status.code().to_owned(),
        patient_id: view.patient.id,
        provider: view.order.provider.clone(),
        clinical_note: view.order.clinical_note.clone(),
        bench: view.tests.first().map(|t| t.item.test.discipline.clone()).unwrap_or_default(),
        rows,
        blocked,
        rejection,
        recollection,
        can_enter,
        correcting,
        correction_reason: correction_reason.to_owned(),
        needs_review: Vec::new(),
    })
}

/// For a rejected specimen: why, by whom, when, and the recollection's accession.
fn rejection_details(lab: &Lab, view: &SpecimenView) -> (Vec<String>, String) {
    let specimen = &view.specimen;
    if specimen.status != SpecimenStatus::Rejected {
        return (Vec::new(), String::new());
    }
    let mut lines = Vec::new();
    if let Some(reason) = specimen.reject_reason {
        lines.push(format!("Reason: {reason}"));
    }
    if let Some(note) = specimen.reject_note.as_ref().filter(|n| !n.trim().is_empty()) {
        lines.push(format!("Note: {note}"));
    }
    lines.push(format!(
        "Rejected {} by {}",
        when(lab, specimen.rejected_at),
        specimen.rejected_by.clone().unwrap_or_default()
    ));
    (lines, view.recollection.clone().unwrap_or_default())
}

/// The latest released value of each test on this specimen from an earlier specimen of the
/// same patient: "4.1 H · 20-Nov-2026 08:05".
async fn previous_results(
    lab: &Lab,
    actor: &cuvette_app::Actor,
    view: &SpecimenView,
) -> Result<BTreeMap<String, String>, WebError> {
    let previous = lab.previous_results(actor, view).await?;
    Ok(previous
        .into_iter()
        .map(|(code, p)| {
            let flags: Vec<&str> = flag_chips(&p.result.flags).iter().map(|c| c.label).collect();
            let mut text = p.result.report_text;
            if !flags.is_empty() {
                text = format!("{text} {}", flags.join(" "));
            }
            (code, format!("{text} · {}", lab.format_time(p.collected_at)))
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// GET/POST /review

struct ReviewRow {
    id: i64,
    /// The checkbox value: `<ordered_test_id>:<row_version>`.
    check: String,
    stat: bool,
    critical: bool,
    patient: String,
    /// Date of birth, sex and MRN.
    ids: String,
    accession: String,
    code: String,
    name: String,
    value: String,
    unit: String,
    /// "sent as 5.2 mmol/L" when the instrument's value was converted.
    sent: String,
    flags: Vec<FlagChip>,
    interval: String,
    reasons: Vec<String>,
    entered_by: String,
    entered_at: String,
    student: bool,
    /// "Correction of a released result", "Preliminary released", or empty.
    stage: String,
    /// Critical rows: the call's state.
    call: String,
    called: bool,
    /// Why this person cannot release it; empty when they can.
    hold: String,
    /// The autoverification decision stored with an instrument result.
    av: Option<AvTrace>,
}

/// An autoverification decision as the review queue shows it: one line, and every rule's
/// verdict in words (never colour alone) behind a `<details>`.
struct AvTrace {
    release: bool,
    /// The failed rules' details, "; "-joined.
    held: String,
    fingerprint: String,
    /// (verdict in words, CSS class, rule, detail).
    lines: Vec<(&'static str, &'static str, &'static str, String)>,
}

fn av_trace(json: Option<&str>) -> Option<(AvTrace, String)> {
    use cuvette_domain::autoverify::{Decision, Verdict};
    let decision: Decision = serde_json::from_str(json?).ok()?;
    let lines = decision
        .trace
        .iter()
        .map(|o| {
            let (verdict, class) = match o.verdict {
                Verdict::Passed => ("✓ passed", "av-pass"),
                Verdict::Failed => ("✗ HELD", "av-fail"),
                _ => ("– not applicable", "av-na"),
            };
            (verdict, class, o.rule.label(), o.detail.clone())
        })
        .collect();
    let trace = AvTrace {
        release: decision.release,
        // Each detail names its rule and numbers ("delta K +1.9 mmol/L in 6 h, limit 1.0").
        held: decision.held_reasons(),
        fingerprint: decision.fingerprint.clone(),
        lines,
    };
    // The same decision's summary is among the stored reasons; the trace replaces it.
    Some((trace, decision.summary()))
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    page: Page,
    rows: Vec<ReviewRow>,
    can_verify: bool,
    why_not: String,
    held: Vec<String>,
    critical_count: usize,
    selectable_count: usize,
}

async fn review_page(
    lab: &Lab,
    bench: &Bench,
    errors: Vec<FieldError>,
    notice: Option<String>,
    held: Vec<String>,
) -> Result<ReviewPage, WebError> {
    let actor = &bench.actor;
    let items = lab.review_queue(actor).await?;
    let catalog = lab.catalog();
    let can_verify = bench.may(Action::VerifyRoutine);
    let why_not = if can_verify {
        String::new()
    } else if actor.role == cuvette_domain::Role::Student {
        "A student cannot verify results: a technician or technologist co-signs them.".into()
    } else {
        format!(
            "Your role ({}) may not verify results; this queue is shown for reading.",
            actor.role
        )
    };
    // The calls documented for every critical result in the queue, read at once.
    let critical: Vec<i64> = items
        .iter()
        .filter(|i| i.result.as_ref().is_some_and(|r| r.flags.is_critical()))
        .map(|i| i.test.id)
        .collect();
    let all_calls = lab.critical_calls_of_tests(actor, &critical).await?;
    let mut rows = Vec::with_capacity(items.len());
    for i in &items {
        let Some(r) = i.result.as_ref() else { continue };
        let critical = r.flags.is_critical();
        let (call, called) = if critical {
            let calls: Vec<_> =
                all_calls.iter().filter(|c| c.ordered_test_id == i.test.id).collect();
            let done = calls.iter().rev().find(|c| c.result_version == r.version && c.read_back);
            let attempts =
                calls.iter().filter(|c| c.result_version == r.version && !c.read_back).count();
            match done {
                Some(c) => (
                    format!(
                        "Called {} · {} · by {}",
                        c.called_person,
                        lab.format_time(c.called_at),
                        c.called_by
                    ),
                    true,
                ),
                None if attempts > 0 => {
                    (format!("Not reached: {}", plural(attempts, "attempt", "attempts")), false)
                }
                None => ("Not called".into(), false),
            }
        } else {
            (String::new(), false)
        };
        let student = r.entered_by_role == cuvette_domain::Role::Student;
        let check = ReleaseCheck {
            review: r.review,
            critical,
            critical_call_documented: called,
            entered_by_student: student,
            invalid_value: r.flags.is_invalid(),
        };
        let hold = match may_release(&bench.privileges, actor.role, check) {
            Ok(()) => String::new(),
            Err(refusal) => refusal.to_string(),
        };
        let stage = match i.test.status {
            TestStatus::Final => "Correction of a released result".into(),
            TestStatus::Preliminary => "Released as preliminary".into(),
            TestStatus::Ordered
            | TestStatus::Collected
            | TestStatus::Received
            | TestStatus::InProcess
            | TestStatus::Cancelled => String::new(),
        };
        let mut reasons = r.reasons.clone();
        let av = av_trace(r.autoverify.as_deref()).map(|(trace, summary)| {
            reasons.retain(|why| *why != summary);
            trace
        });
        rows.push(ReviewRow {
            id: i.test.id,
            check: format!("{}:{}", i.test.id, i.test.row_version),
            stat: i.order.priority == Priority::Stat,
            critical,
            patient: format!("{}, {}", i.patient.family_name.to_uppercase(), i.patient.given_name),
            ids: super::patients::list_ids(&i.patient.birth_date, &i.patient.sex, &i.patient.mrn),
            accession: i.specimen.accession.clone(),
            code: i.test.test_code.clone(),
            name: catalog
                .catalog
                .test(&i.test.test_code)
                .map(|d| d.name.clone())
                .unwrap_or_else(|| i.test.test_code.clone()),
            value: r.report_text.clone(),
            unit: r.unit.clone(),
            sent: sent_as(r),
            flags: flag_chips(&r.flags),
            interval: r.reference_interval.clone(),
            reasons,
            entered_by: r.entered_by.clone(),
            entered_at: lab.format_time(r.entered_at),
            student,
            stage,
            call,
            called,
            hold,
            av,
        });
    }
    Ok(ReviewPage {
        page: Page::new(bench, "Review", "review").with_errors(errors).with_notice(notice),
        critical_count: rows.iter().filter(|r| r.critical).count(),
        selectable_count: rows.iter().filter(|r| r.hold.is_empty()).count(),
        rows,
        can_verify,
        why_not,
        held,
    })
}

async fn review_queue(State(state): State<AppState>, bench: Bench) -> Result<Response, WebError> {
    let page = review_page(&state.lab, &bench, Vec::new(), None, Vec::new()).await?;
    render_page(StatusCode::OK, &page)
}

async fn verify(
    State(state): State<AppState>,
    bench: Bench,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let mut csrf = String::new();
    let mut picked: Vec<(i64, i64)> = Vec::new();
    let mut unreadable = false;
    for (key, value) in fields {
        match key.as_str() {
            "csrf" => csrf = value,
            "t" => match value.split_once(':').map(|(a, b)| (a.parse(), b.parse())) {
                Some((Ok(id), Ok(version))) => picked.push((id, version)),
                _ => unreadable = true,
            },
            _ => {}
        }
    }
    bench.check_csrf(&csrf)?;
    let lab = &state.lab;
    if picked.is_empty() {
        let message = if unreadable {
            "the selection could not be read: reload the queue and select again"
        } else {
            "select the results to verify: tick the box at the start of each row"
        };
        let errors = vec![FieldError { field: "t".into(), message: message.into() }];
        let page = review_page(lab, &bench, errors, None, Vec::new()).await?;
        return render_page(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    // Name the held results by patient and accession as well as test.
    let before = lab.review_queue(&bench.actor).await?;
    let outcomes = lab.release(&bench.actor, &picked, TestStatus::Final).await?;
    let released = outcomes.iter().filter(|o| matches!(o, Release::Released { .. })).count();
    let held: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Release::Held { ordered_test_id, reason } => {
                Some(match before.iter().find(|i| i.test.id == *ordered_test_id) {
                    Some(i) => format!(
                        "{}, {} ({}): {reason}",
                        i.patient.family_name.to_uppercase(),
                        i.patient.given_name,
                        i.specimen.accession
                    ),
                    None => reason.clone(),
                })
            }
            Release::Released { .. } => None,
        })
        .collect();
    let notice = format!("Released {released} · Held {}", held.len());
    let page = review_page(lab, &bench, Vec::new(), Some(notice), held).await?;
    render_page(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------
// GET/POST /tests/{id}/critical-call

struct CallLine {
    at: String,
    person: String,
    by: String,
    read_back: bool,
    notes: String,
    /// Documented for an earlier value of the test.
    earlier: bool,
}

#[derive(Template)]
#[template(path = "critical_call.html")]
struct CriticalCallPage {
    page: Page,
    banner: Banner,
    accession: String,
    test_id: i64,
    name: String,
    code: String,
    value: String,
    unit: String,
    flags: Vec<FlagChip>,
    interval: String,
    entered: String,
    elapsed: String,
    provider: String,
    clinical_note: String,
    critical: bool,
    released: bool,
    called: bool,
    why_not: String,
    calls: Vec<CallLine>,
    called_person: String,
    read_back: bool,
    notes: String,
}

#[derive(Deserialize, Default)]
struct CallForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    called_person: String,
    #[serde(default)]
    read_back: Option<String>,
    #[serde(default)]
    notes: String,
}

/// The specimen view holding an ordered test, found from the test's id.
async fn view_of_test(
    lab: &Lab,
    bench: &Bench,
    id: i64,
) -> Result<(SpecimenView, usize), WebError> {
    let view = lab.specimen_view_of_test(&bench.actor, id).await?;
    let at = view
        .tests
        .iter()
        .position(|t| t.item.test.id == id)
        .ok_or_else(|| AppError::NotFound(format!("there is no ordered test {id}")))?;
    Ok((view, at))
}

fn call_page(
    lab: &Lab,
    bench: &Bench,
    view: &SpecimenView,
    t: &TestView,
    form: &CallForm,
) -> CriticalCallPage {
    let result = t.item.result.as_ref();
    let version = result.map(|r| r.version).unwrap_or(0);
    let critical = result.is_some_and(|r| r.flags.is_critical());
    let called = t.calls.iter().any(|c| c.result_version == version && c.read_back);
    let may = bench.may(Action::DocumentCriticalCall);
    let why_not = if !may {
        format!("Your role ({}) may not document critical calls.", bench.actor.role)
    } else if result.is_none() {
        "There is no result to call yet.".into()
    } else if !critical {
        "This result is not critical: no call needs documenting.".into()
    } else {
        String::new()
    };
    let now = lab.now_at();
    let elapsed = result
        .map(|r| {
            let minutes = now.minutes_since(r.entered_at).max(0);
            if minutes < 120 {
                format!("{minutes} min since entry")
            } else {
                format!("{} h since entry", minutes / 60)
            }
        })
        .unwrap_or_default();
    CriticalCallPage {
        page: Page::new(bench, format!("Critical call · {}", t.item.test.test_code), "review"),
        banner: specimen_banner(lab, view),
        accession: view.specimen.accession.clone(),
        test_id: t.item.test.id,
        name: t.name.clone(),
        code: t.item.test.test_code.clone(),
        value: result.map(|r| r.report_text.clone()).unwrap_or_default(),
        unit: result.map(|r| r.unit.clone()).unwrap_or_else(|| t.unit.clone()),
        flags: result.map(|r| flag_chips(&r.flags)).unwrap_or_default(),
        interval: result.map(|r| r.reference_interval.clone()).unwrap_or_default(),
        entered: result
            .map(|r| format!("{} · {}", r.entered_by, lab.format_time(r.entered_at)))
            .unwrap_or_default(),
        elapsed,
        provider: view.order.provider.clone(),
        clinical_note: view.order.clinical_note.clone(),
        critical,
        released: result.is_some_and(|r| r.released_at.is_some()),
        called,
        why_not,
        calls: t
            .calls
            .iter()
            .rev()
            .map(|c| CallLine {
                at: lab.format_time(c.called_at),
                person: c.called_person.clone(),
                by: c.called_by.clone(),
                read_back: c.read_back,
                notes: c.notes.clone(),
                earlier: c.result_version != version,
            })
            .collect(),
        called_person: form.called_person.clone(),
        read_back: form.read_back.is_some(),
        notes: form.notes.clone(),
    }
}

async fn critical_call_form(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Query(q): Query<SavedQuery>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    let (view, at) = view_of_test(lab, &bench, id).await?;
    let mut page = call_page(lab, &bench, &view, &view.tests[at], &CallForm::default());
    page.page.notice = match q.saved.as_str() {
        "call" => Some("Call documented with read-back: the result can now be released.".into()),
        "attempt" => Some(
            "Attempt recorded. Without read-back the result stays held: call again or escalate."
                .into(),
        ),
        _ => None,
    };
    render_page(StatusCode::OK, &page)
}

async fn document_call(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<CallForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let lab = &state.lab;
    let call = CriticalCall {
        called_person: form.called_person.clone(),
        read_back: form.read_back.is_some(),
        notes: form.notes.clone(),
    };
    match lab.document_critical_call(&bench.actor, id, &call).await {
        Ok(_) => {
            let saved = if call.read_back { "call" } else { "attempt" };
            Ok(Redirect::to(&format!("/tests/{id}/critical-call?saved={saved}")).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let (view, at) = view_of_test(lab, &bench, id).await?;
            let mut page = call_page(lab, &bench, &view, &view.tests[at], &form);
            page.page = page.page.with_errors(errors);
            render_page(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => Err(e.into()),
    }
}
