//! Specimens: the specimen page (collect, receive, reject), barcodes and labels, the
//! collection list and the receipt bench.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::{AppError, DueDraw, FieldError, IdentityCheck, Lab, SpecimenView};
use cuvette_domain::patient::Mrn;
use cuvette_domain::workflow::{
    Priority, REJECTION_REASONS, RejectionReason, SpecimenCondition, SpecimenStatus, TestStatus,
};
use cuvette_domain::{Accession, Action};
use serde::{Deserialize, Serialize};

use super::patients::{
    Banner, BannerSpecimen, accessions_from, discipline_words, mark_same_names, render_with,
    short_container, specimen_status_label,
};
use crate::AppState;
use crate::auth::{Bench, urlencode};
use crate::barcode;
use crate::error::{WebError, status_of};
use crate::web::{FlagChip, Page, flag_chips, sent_as, when};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/specimens/{accession}", get(show))
        .route("/specimens/{accession}/collect", post(collect))
        .route("/specimens/{accession}/reject", post(reject))
        .route("/specimens/{accession}/conditions", post(set_conditions))
        .route("/specimens/{accession}/barcode.svg", get(barcode_svg))
        .route("/labels", get(labels))
        .route("/collect", get(collect_list))
        .route("/receive", get(receive_form).post(receive))
}

/// The most labels printed from one request.
const LABELS_MAX: usize = 100;
/// The most receipts listed on the receipt bench.
const RECENT_MAX: usize = 50;

fn banner_with_specimen(lab: &Lab, view: &SpecimenView) -> Banner {
    let mut banner = Banner::of(lab, &view.patient);
    let s = &view.specimen;
    banner.specimen = Some(BannerSpecimen {
        accession: s.accession.clone(),
        container: format!("{} · {}", s.specimen_type, short_container(&s.container)),
        collected: when(lab, s.collected_at),
        status: s.status.code().to_owned(),
        status_label: specimen_status_label(&s.status),
        stat: view.order.priority == Priority::Stat,
    });
    banner
}

/// The benches a specimen's tests go to, in order, without repeats ("chemistry, hematology").
fn disciplines(view: &SpecimenView) -> String {
    let mut seen = Vec::new();
    for t in &view.tests {
        let d = discipline_words(&t.item.test.discipline);
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen.join(", ")
}

// ---------------------------------------------------------------------------------------------
// The specimen page.

struct TestLine {
    code: String,
    name: String,
    status: String,
    status_label: String,
    value: String,
    unit: String,
    /// "sent as 5.2 mmol/L" when the instrument's value was converted.
    sent: String,
    flags: Vec<FlagChip>,
    released: bool,
}

struct ReasonChoice {
    key: usize,
    code: &'static str,
    label: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct RejectForm {
    csrf: String,
    reason: String,
    note: String,
    /// The status the page showed when the form was drawn.
    drawn_status: String,
    /// Confirmation for a specimen already received.
    confirm: String,
}

#[derive(Template)]
#[template(path = "specimen_show.html")]
struct SpecimenPage {
    page: Page,
    banner: Banner,
    accession: String,
    container: String,
    specimen_type: String,
    status: String,
    status_label: &'static str,
    stat: bool,
    provider: String,
    ordered: String,
    ordered_by: String,
    note: String,
    collected: String,
    collected_by: String,
    received: String,
    received_by: String,
    rejected: String,
    rejected_by: String,
    reject_reason: String,
    reject_note: String,
    recollection_of: Option<String>,
    recollected_as: Vec<String>,
    tests: Vec<TestLine>,
    open_tests: usize,
    may_collect: bool,
    may_receive: bool,
    may_reject: bool,
    may_view_results: bool,
    reasons: Vec<ReasonChoice>,
    reject: RejectForm,
    /// The specimen's recorded conditions (HEM, CLOT …) as (code, words).
    conditions: Vec<(String, String)>,
    /// The condition checkboxes, ticked as stored (or as sent, when refused).
    condition_choices: Vec<ConditionChoice>,
    may_set_conditions: bool,
}

/// One specimen-condition checkbox.
struct ConditionChoice {
    code: &'static str,
    label: &'static str,
    checked: bool,
}

/// The lab's condition codes, ticked when in `codes`.
fn condition_choices(codes: &[&str]) -> Vec<ConditionChoice> {
    SpecimenCondition::ALL
        .into_iter()
        .map(|condition| ConditionChoice {
            code: condition.code(),
            label: condition.words(),
            checked: codes.iter().any(|c| SpecimenCondition::parse(c) == Some(condition)),
        })
        .collect()
}

async fn specimen_page(
    lab: &Lab,
    bench: &Bench,
    accession: &str,
    reject: RejectForm,
    errors: Vec<FieldError>,
    notice: Option<String>,
) -> Result<SpecimenPage, WebError> {
    let view = lab.specimen_view(&bench.actor, accession).await?;
    let orders = lab.patient_orders(&bench.actor, view.patient.id).await?;
    let siblings: Vec<_> =
        orders.into_iter().find(|(o, _)| o.id == view.order.id).map(|(_, s)| s).unwrap_or_default();
    let s = &view.specimen;
    let recollection_of = s
        .recollection_of
        .and_then(|id| siblings.iter().find(|x| x.id == id))
        .map(|x| x.accession.clone());
    let recollected_as = siblings
        .iter()
        .filter(|x| x.recollection_of == Some(s.id))
        .map(|x| x.accession.clone())
        .collect();
    let status = s.status;
    let tests: Vec<TestLine> = view
        .tests
        .iter()
        .map(|t| {
            let result = t.item.result.as_ref();
            TestLine {
                code: t.item.test.test_code.clone(),
                name: t.name.clone(),
                status: t.item.test.status.code().to_owned(),
                status_label: t.item.test.status.to_string(),
                value: result.map(|r| r.report_text.clone()).unwrap_or_default(),
                unit: result.map(|r| r.unit.clone()).unwrap_or_else(|| t.unit.clone()),
                sent: result.map(sent_as).unwrap_or_default(),
                flags: result.map(|r| flag_chips(&r.flags)).unwrap_or_default(),
                released: result.is_some_and(|r| r.released_at.is_some()),
            }
        })
        .collect();
    let open_tests = view
        .tests
        .iter()
        .filter(|t| {
            let s = t.item.test.status;
            !s.is_released() && s != TestStatus::Cancelled
        })
        .count();
    let any_released = view.tests.iter().any(|t| t.item.test.status.is_released());
    let banner = banner_with_specimen(lab, &view);
    let title = format!("Specimen {} – {}", s.accession, banner.name());
    let page = Page::new(bench, title, "patients").with_errors(errors).with_notice(notice);
    let reject_reason = s.reject_reason.map(|r| r.to_string()).unwrap_or_default();
    Ok(SpecimenPage {
        page,
        accession: s.accession.clone(),
        container: s.container.clone(),
        specimen_type: s.specimen_type.clone(),
        status: s.status.code().to_owned(),
        status_label: specimen_status_label(&s.status),
        stat: view.order.priority == Priority::Stat,
        provider: view.order.provider.clone(),
        ordered: lab.format_time(view.order.ordered_at),
        ordered_by: view.order.ordered_by.clone(),
        note: view.order.clinical_note.clone(),
        collected: when(lab, s.collected_at),
        collected_by: s.collected_by.clone().unwrap_or_default(),
        received: when(lab, s.received_at),
        received_by: s.received_by.clone().unwrap_or_default(),
        rejected: when(lab, s.rejected_at),
        rejected_by: s.rejected_by.clone().unwrap_or_default(),
        reject_reason,
        reject_note: s.reject_note.clone().unwrap_or_default(),
        recollection_of,
        recollected_as,
        tests,
        open_tests,
        may_collect: status == SpecimenStatus::Pending && bench.may(Action::CollectSpecimen),
        may_receive: status == SpecimenStatus::Collected && bench.may(Action::ReceiveSpecimen),
        // Released results are corrected, not rejected: the lab refuses it, so it is not offered.
        may_reject: status != SpecimenStatus::Rejected
            && !any_released
            && bench.may(Action::RejectSpecimen),
        may_view_results: bench.may(Action::ViewResults),
        reasons: REJECTION_REASONS
            .iter()
            .enumerate()
            .map(|(i, r)| ReasonChoice { key: i + 1, code: r.code(), label: r.to_string() })
            .collect(),
        reject,
        conditions: s
            .conditions
            .iter()
            .map(|c| (c.code().to_owned(), c.words().to_owned()))
            .collect(),
        condition_choices: condition_choices(
            &s.conditions.iter().map(|c| c.code()).collect::<Vec<_>>(),
        ),
        // Conditions are seen on the tube in hand: once collected, until rejected.
        may_set_conditions: matches!(status, SpecimenStatus::Collected | SpecimenStatus::Received)
            && bench.may(Action::ReceiveSpecimen),
        banner,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    done: String,
    recollection: String,
}

async fn show(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, WebError> {
    let notice = match query.done.as_str() {
        "collected" => Some("Collection recorded.".to_owned()),
        "conditions" => Some("Specimen condition recorded.".to_owned()),
        "rejected" => Some(match Accession::parse(&query.recollection) {
            Ok(r) => format!("Specimen rejected. Recollection {r} is waiting to be drawn."),
            Err(_) => "Specimen rejected.".to_owned(),
        }),
        _ => None,
    };
    let page = specimen_page(&state.lab, &bench, &accession, RejectForm::default(), vec![], notice)
        .await?;
    render_with(StatusCode::OK, &page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CollectForm {
    csrf: String,
    /// `collect` when sent from the collection list.
    from: String,
}

async fn collect(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Form(form): Form<CollectForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let from_list = form.from == "collect";
    match state.lab.collect(&bench.actor, &accession).await {
        Ok(row) if from_list => {
            Ok(Redirect::to(&format!("/collect?done={}", urlencode(&row.accession)))
                .into_response())
        }
        Ok(row) => {
            Ok(Redirect::to(&format!("/specimens/{}?done=collected", urlencode(&row.accession)))
                .into_response())
        }
        Err(e @ (AppError::Refused(_) | AppError::NotFound(_) | AppError::Invalid(_))) => {
            let status = status_of(&e);
            let message = match e {
                AppError::Invalid(errors) => {
                    errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; ")
                }
                other => other.to_string(),
            };
            if from_list {
                let error = FieldError {
                    field: "draws".into(),
                    message: format!("{}: {message}", accession.trim()),
                };
                let page =
                    collect_page(&state.lab, &bench, String::new(), vec![error], None).await?;
                render_with(status, &page)
            } else {
                let error = FieldError { field: "collect".into(), message };
                let page = specimen_page(
                    &state.lab,
                    &bench,
                    &accession,
                    RejectForm::default(),
                    vec![error],
                    None,
                )
                .await?;
                render_with(status, &page)
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn reject(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Form(form): Form<RejectForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let lab = &state.lab;
    // Rejecting a specimen already in the lab cancels work under way: confirm it first.
    if SpecimenStatus::parse(&form.drawn_status) == Some(SpecimenStatus::Received)
        && form.confirm != "yes"
    {
        let mut errors = vec![FieldError {
            field: "confirm".into(),
            message: "this specimen was already received: tick the box to confirm that its open tests are to be cancelled".into(),
        }];
        if RejectionReason::parse(&form.reason).is_none() {
            errors.insert(
                0,
                FieldError {
                    field: "reason".into(),
                    message: "choose why the specimen is rejected".into(),
                },
            );
        }
        let page = specimen_page(lab, &bench, &accession, form, errors, None).await?;
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    match lab.reject(&bench.actor, &accession, &form.reason, &form.note).await {
        Ok(recollection) => Ok(Redirect::to(&format!(
            "/specimens/{}?done=rejected&recollection={}",
            urlencode(accession.trim()),
            urlencode(&recollection)
        ))
        .into_response()),
        Err(AppError::Invalid(errors)) => {
            let page = specimen_page(lab, &bench, &accession, form, errors, None).await?;
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(AppError::Refused(message)) => {
            let errors = vec![FieldError { field: "reject".into(), message }];
            let page = specimen_page(lab, &bench, &accession, form, errors, None).await?;
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /specimens/{accession}/conditions: the condition of the tube in hand (hemolysed,
/// clotted …), which autoverification rule sets may hold results on.
async fn set_conditions(
    State(state): State<AppState>,
    bench: Bench,
    Path(accession): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let mut csrf = String::new();
    let mut codes = Vec::new();
    for (key, value) in fields {
        match key.as_str() {
            "csrf" => csrf = value,
            "conditions" => codes.push(value),
            _ => {}
        }
    }
    bench.check_csrf(&csrf)?;
    let lab = &state.lab;
    match lab.set_specimen_conditions(&bench.actor, &accession, &codes).await {
        Ok(()) => {
            Ok(Redirect::to(&format!("/specimens/{}?done=conditions", urlencode(accession.trim())))
                .into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let mut page =
                specimen_page(lab, &bench, &accession, RejectForm::default(), errors, None).await?;
            // Keep the boxes as they were ticked.
            page.condition_choices =
                condition_choices(&codes.iter().map(String::as_str).collect::<Vec<_>>());
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Barcodes and labels.

async fn barcode_svg(_bench: Bench, Path(accession): Path<String>) -> Result<Response, WebError> {
    let accession =
        Accession::parse(&accession).map_err(|e| AppError::invalid("accession", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], barcode::accession_svg(accession, 2, true))
        .into_response())
}

struct Label {
    name: String,
    mrn: String,
    dob_age_sex: String,
    svg: String,
    accession: String,
    container: String,
    specimen_type: String,
    stat: bool,
    tests: String,
    status: String,
    status_label: &'static str,
    patient_id: i64,
}

#[derive(Template)]
#[template(path = "labels.html")]
struct LabelsPage {
    page: Page,
    labels: Vec<Label>,
    placed: bool,
}

async fn labels(
    State(state): State<AppState>,
    bench: Bench,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    let mut wanted: Vec<Accession> = Vec::new();
    for a in accessions_from(&pairs, "acc") {
        let a = a.map_err(|m| AppError::invalid("acc", m))?;
        if !wanted.contains(&a) {
            wanted.push(a);
        }
    }
    if wanted.len() > LABELS_MAX {
        return Err(
            AppError::invalid("acc", format!("print at most {LABELS_MAX} labels at once")).into()
        );
    }
    let mut labels = Vec::with_capacity(wanted.len());
    for a in wanted {
        let view = lab.specimen_view(&bench.actor, &a.to_string()).await?;
        let banner = Banner::of(lab, &view.patient);
        let mut codes: Vec<String> = Vec::new();
        for t in &view.tests {
            let code =
                t.item.test.panel_code.clone().unwrap_or_else(|| t.item.test.test_code.clone());
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        labels.push(Label {
            name: banner.name(),
            mrn: banner.mrn.clone(),
            dob_age_sex: format!(
                "{}{} {}",
                banner.dob,
                if banner.age.is_empty() { String::new() } else { format!(" {}", banner.age) },
                banner.sex_code
            ),
            svg: barcode::accession_svg(a, 1, false),
            accession: view.specimen.accession.clone(),
            container: short_container(&view.specimen.container),
            specimen_type: view.specimen.specimen_type.clone(),
            stat: view.order.priority == Priority::Stat,
            tests: codes.join(" "),
            status: view.specimen.status.code().to_owned(),
            status_label: specimen_status_label(&view.specimen.status),
            patient_id: view.patient.id,
        });
    }
    let placed = pairs.iter().any(|(k, _)| k == "placed");
    let notice = placed.then(|| {
        format!(
            "Order placed: {} {} to draw. Label each tube at the patient's side, after checking two identifiers.",
            labels.len(),
            if labels.len() == 1 { "tube" } else { "tubes" }
        )
    });
    let title =
        if labels.len() == 1 { "Label".to_owned() } else { format!("{} labels", labels.len()) };
    let mut page = Page::new(&bench, title, "collect").with_notice(notice);
    page.body_class = "labels-page";
    render_with(StatusCode::OK, &LabelsPage { page, labels, placed })
}

// ---------------------------------------------------------------------------------------------
// The collection list.

struct Draw {
    accession: String,
    digits: String,
    container: String,
    specimen_type: String,
    tests: Vec<String>,
    stat: bool,
    ordered: String,
    provider: String,
}

struct DrawGroup {
    banner: Banner,
    draws: Vec<Draw>,
}

#[derive(Template)]
#[template(path = "collect.html")]
struct CollectPage {
    page: Page,
    mrn: String,
    groups: Vec<DrawGroup>,
    total: usize,
    filtered: bool,
}

/// Groups due draws by patient (first appearance first, so STAT patients lead), one line
/// per specimen with every test on it.
fn group_draws(lab: &Lab, draws: &[DueDraw]) -> Vec<DrawGroup> {
    let mut groups: Vec<DrawGroup> = Vec::new();
    for due in draws {
        let item = &due.item;
        let group = match groups.iter().position(|g| g.banner.id == item.patient.id) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(DrawGroup { banner: Banner::of(lab, &item.patient), draws: vec![] });
                groups.last_mut().expect("just pushed")
            }
        };
        group.draws.push(Draw {
            digits: Accession::parse(&item.specimen.accession)
                .map(|a| a.digits())
                .unwrap_or_default(),
            accession: item.specimen.accession.clone(),
            container: item.specimen.container.clone(),
            specimen_type: item.specimen.specimen_type.clone(),
            tests: due.tests.clone(),
            stat: item.order.priority == Priority::Stat,
            ordered: lab.format_time(item.order.ordered_at),
            provider: item.order.provider.clone(),
        });
    }
    let mut banners: Vec<Banner> = groups.iter().map(|g| g.banner.clone()).collect();
    mark_same_names(&mut banners);
    for (g, b) in groups.iter_mut().zip(banners) {
        g.banner.same_name = b.same_name;
    }
    groups
}

async fn collect_page(
    lab: &Lab,
    bench: &Bench,
    mrn: String,
    errors: Vec<FieldError>,
    notice: Option<String>,
) -> Result<CollectPage, WebError> {
    let draws = lab.collection_list(&bench.actor).await?;
    let mut groups = group_draws(lab, &draws);
    let mut errors = errors;
    let filtered = !mrn.trim().is_empty();
    if filtered {
        match Mrn::parse(&mrn) {
            Ok(m) => groups.retain(|g| g.banner.mrn == m.as_str()),
            Err(message) => {
                errors.push(FieldError { field: "mrn".into(), message });
                groups.clear();
            }
        }
    }
    let total = groups.iter().map(|g| g.draws.len()).sum();
    let page = Page::new(bench, "Collect", "collect").with_errors(errors).with_notice(notice);
    Ok(CollectPage { page, mrn, groups, total, filtered })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CollectQuery {
    done: String,
    mrn: String,
}

async fn collect_list(
    State(state): State<AppState>,
    bench: Bench,
    Query(query): Query<CollectQuery>,
) -> Result<Response, WebError> {
    let notice = Accession::parse(&query.done).ok().map(|a| format!("Collection of {a} recorded."));
    let page = collect_page(&state.lab, &bench, query.mrn, vec![], notice).await?;
    let status =
        if page.page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render_with(status, &page)
}

/// `08:05` in the lab's time zone (now, when `at` is `None`).
fn time_of_day(lab: &Lab, at: Option<cuvette_domain::time::Timestamp>) -> String {
    let full = lab.format_time(at.unwrap_or_else(|| lab.now_at()));
    full.rsplit_once(' ').map(|(_, t)| t.to_owned()).unwrap_or(full)
}

// ---------------------------------------------------------------------------------------------
// The receipt bench.

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct ReceiveForm {
    csrf: String,
    accession: String,
    mrn: String,
    birth_date: String,
    /// This session's receipts, carried by the page (JSON).
    recent: String,
}

/// One receipt in the session's list.
#[derive(Serialize, Deserialize, Clone)]
struct Receipt {
    time: String,
    accession: String,
    patient: String,
    /// Date of birth, sex and MRN.
    #[serde(default)]
    ids: String,
    benches: String,
}

struct Outcome {
    ok: bool,
    line: String,
    reasons: Vec<String>,
    reject_href: Option<String>,
    specimen_href: Option<String>,
}

#[derive(Template)]
#[template(path = "receive.html")]
struct ReceivePage {
    page: Page,
    form: ReceiveForm,
    outcome: Option<Outcome>,
    banner: Option<Banner>,
    recent: Vec<Receipt>,
    recent_json: String,
}

fn parse_recent(json: &str) -> Vec<Receipt> {
    let mut recent: Vec<Receipt> = serde_json::from_str(json).unwrap_or_default();
    recent.retain(|r| {
        Accession::parse(&r.accession).is_ok()
            && [&r.time, &r.patient, &r.benches].iter().all(|s| s.chars().count() <= 200)
    });
    recent.truncate(RECENT_MAX);
    recent
}

fn receive_page(
    page: Page,
    form: ReceiveForm,
    outcome: Option<Outcome>,
    banner: Option<Banner>,
    recent: Vec<Receipt>,
) -> ReceivePage {
    let recent_json = serde_json::to_string(&recent).unwrap_or_default();
    ReceivePage { page, form, outcome, banner, recent, recent_json }
}

async fn receive_form(bench: Bench) -> Result<Response, WebError> {
    bench.require(Action::ReceiveSpecimen)?;
    let page = Page::new(&bench, "Receive specimens", "receive");
    render_with(StatusCode::OK, &receive_page(page, ReceiveForm::default(), None, None, vec![]))
}

async fn receive(
    State(state): State<AppState>,
    bench: Bench,
    Form(form): Form<ReceiveForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let lab = &state.lab;
    let mut recent = parse_recent(&form.recent);
    let typed = form.accession.trim().to_owned();
    let result = if typed.is_empty() {
        Err(AppError::invalid(
            "accession",
            "scan the tube's barcode, or type its accession number, for example 26-0000123-4",
        ))
    } else {
        let check = IdentityCheck {
            mrn: Some(form.mrn.clone()),
            birth_date: Some(form.birth_date.clone()),
            family_name: None,
        };
        lab.receive(&bench.actor, &typed, &check).await
    };
    match result {
        Ok(row) => {
            let view = lab.specimen_view(&bench.actor, &row.accession).await?;
            let banner = Banner::of(lab, &view.patient);
            let time = time_of_day(lab, row.received_at);
            let benches = disciplines(&view);
            let line = if benches.is_empty() {
                format!("RECEIVED {time} – {}", row.accession)
            } else {
                format!("RECEIVED {time} – {} – {benches}", row.accession)
            };
            recent.insert(
                0,
                Receipt {
                    time,
                    accession: row.accession.clone(),
                    patient: banner.name(),
                    ids: format!("{} · {} · MRN {}", banner.dob, banner.sex, banner.mrn),
                    benches,
                },
            );
            recent.truncate(RECENT_MAX);
            let outcome = Outcome {
                ok: true,
                line,
                reasons: vec![],
                reject_href: None,
                specimen_href: Some(format!("/specimens/{}", row.accession)),
            };
            let page = Page::new(&bench, "Receive specimens", "receive");
            let form = ReceiveForm::default();
            render_with(
                StatusCode::OK,
                &receive_page(page, form, Some(outcome), Some(banner), recent),
            )
        }
        Err(e @ (AppError::Invalid(_) | AppError::NotFound(_) | AppError::Refused(_))) => {
            let status = status_of(&e);
            let parsed = Accession::parse(&typed).ok();
            let (errors, offer_reject) = match e {
                AppError::Invalid(errors) => {
                    // A label that names someone else: the tube is mislabeled.
                    let mismatch = errors
                        .iter()
                        .any(|e| matches!(e.field.as_str(), "mrn" | "birth_date" | "family_name"));
                    (errors, mismatch)
                }
                AppError::NotFound(message) => {
                    (vec![FieldError { field: "accession".into(), message }], false)
                }
                other => {
                    // Rejecting is offered unless the specimen already is rejected: read its
                    // status, never the refusal's words.
                    let rejected = match parsed {
                        Some(a) => lab
                            .specimen_view(&bench.actor, &a.to_string())
                            .await
                            .is_ok_and(|v| v.specimen.status == SpecimenStatus::Rejected),
                        None => false,
                    };
                    (
                        vec![FieldError { field: "accession".into(), message: other.to_string() }],
                        !rejected,
                    )
                }
            };
            let reasons = errors.iter().map(|e| e.message.clone()).collect();
            let shown = parsed.map(|a| a.to_string()).unwrap_or_else(|| typed.clone());
            let outcome = Outcome {
                ok: false,
                line: if shown.is_empty() {
                    "NOT RECEIVED".to_owned()
                } else {
                    format!("NOT RECEIVED – {shown}")
                },
                reasons,
                reject_href: parsed
                    .filter(|_| offer_reject && bench.may(Action::RejectSpecimen))
                    .map(|a| format!("/specimens/{a}#reject")),
                specimen_href: parsed
                    .filter(|_| status != StatusCode::NOT_FOUND)
                    .map(|a| format!("/specimens/{a}")),
            };
            let page = Page::new(&bench, "Receive specimens", "receive").with_errors(errors);
            render_with(status, &receive_page(page, form, Some(outcome), None, recent))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receipt_list_survives_the_round_trip_and_drops_junk() {
        let r = Receipt {
            time: "08:05".into(),
            accession: "26-0000123-0".into(),
            patient: "SMITH, Jo".into(),
            ids: "14-Jul-1945 · Female · MRN 1".into(),
            benches: "chemistry".into(),
        };
        let json =
            serde_json::to_string(&vec![r.clone(), Receipt { accession: "nonsense".into(), ..r }])
                .unwrap();
        let back = parse_recent(&json);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].accession, "26-0000123-0");
        assert!(parse_recent("not json").is_empty());
    }
}
