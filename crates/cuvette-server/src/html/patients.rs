//! Patients: the one search box, registration, the patient page with its orders, and order
//! entry.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::records::{PATIENT_SEARCH_LEN_MAX, PatientRow};
use cuvette_app::{AppError, Lab, PatientQuery, PlaceOrder, RegisterPatient};
use cuvette_domain::patient::{Mrn, Sex, display_age, parse_birth_date};
use cuvette_domain::workflow::{Priority, SpecimenStatus};
use cuvette_domain::{Accession, Action};
use jiff::civil::Date;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Bench, urlencode};
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients", get(search).post(register))
        .route("/patients/new", get(register_form))
        .route("/patients/{id}", get(show))
        .route("/patients/{id}/orders/new", get(order_form))
        .route("/patients/{id}/orders", post(place_order))
}

// ---------------------------------------------------------------------------------------------
// Shared by the patient and specimen screens.

/// Today in the lab's time zone.
pub(crate) fn today(lab: &Lab) -> Date {
    lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date()
}

/// A sex code in words ("Female", "Not known").
pub(crate) fn sex_words(code: &str) -> String {
    Sex::parse(code).unwrap_or(Sex::Unknown).to_string()
}

/// A date of birth as every screen writes it (`14-Jul-1945`), or "DOB not known".
pub(crate) fn dob_words(birth_date: &str) -> String {
    birth_date
        .parse::<Date>()
        .map(|d| d.strftime("%d-%b-%Y").to_string())
        .unwrap_or_else(|_| "DOB not known".into())
}

/// The identifiers a list shows beside a name, so each row carries all four whatever the
/// name's length: "14-Jul-1945 · Female · MRN 1001".
pub(crate) fn list_ids(birth_date: &str, sex: &str, mrn: &str) -> String {
    format!("{} · {} · MRN {mrn}", dob_words(birth_date), sex_words(sex))
}

/// A specimen status in words.
pub(crate) fn specimen_status_label(status: &SpecimenStatus) -> &'static str {
    match status {
        SpecimenStatus::Pending => "Awaiting collection",
        SpecimenStatus::Collected => "Collected",
        SpecimenStatus::Received => "Received",
        SpecimenStatus::Rejected => "Rejected",
    }
}

/// A bench name ("blood_gas") in words.
pub(crate) fn discipline_words(code: &str) -> String {
    code.replace('_', " ")
}

/// The tube to draw, short enough for a label ("SST (gold)" of "SST (gold) or lithium …").
pub(crate) fn short_container(container: &str) -> String {
    container
        .split(" or ")
        .next()
        .unwrap_or(container)
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The patient as every screen names them, in the CUI banner order: FAMILY, Given, date of
/// birth with age, sex, MRN.
#[derive(Debug, Clone)]
pub(crate) struct Banner {
    /// Internal id (for links).
    pub id: i64,
    /// Family name in capitals.
    pub family: String,
    /// Given name ("" when not known).
    pub given: String,
    /// Date of birth as `14-Jul-1945`, or "Not known".
    pub dob: String,
    /// Age ("81y", "17m", "4d"), or "".
    pub age: String,
    /// Sex in words.
    pub sex: String,
    /// Sex code (labels).
    pub sex_code: String,
    /// MRN.
    pub mrn: String,
    /// Another patient on the same list has the same name.
    pub same_name: bool,
    /// The specimen the screen is about, when it is about one.
    pub specimen: Option<BannerSpecimen>,
}

/// The specimen part of the banner.
#[derive(Debug, Clone)]
pub(crate) struct BannerSpecimen {
    /// Accession as printed.
    pub accession: String,
    /// Specimen type and container.
    pub container: String,
    /// Collected at, or "".
    pub collected: String,
    /// Status code (CSS class).
    pub status: String,
    /// Status in words.
    pub status_label: &'static str,
    /// STAT order.
    pub stat: bool,
}

impl Banner {
    pub(crate) fn of(lab: &Lab, p: &PatientRow) -> Banner {
        let birth = p.birth_date.parse::<Date>().ok();
        Banner {
            id: p.id,
            family: p.family_name.to_uppercase(),
            given: p.given_name.clone(),
            dob: birth
                .map(|d| d.strftime("%d-%b-%Y").to_string())
                .unwrap_or_else(|| "Not known".into()),
            age: birth.map(|d| display_age(d, today(lab))).unwrap_or_default(),
            sex: sex_words(&p.sex),
            sex_code: Sex::parse(&p.sex).unwrap_or(Sex::Unknown).code().to_owned(),
            mrn: if p.mrn.is_empty() { "Not known".into() } else { p.mrn.clone() },
            same_name: false,
            specimen: None,
        }
    }

    /// "FAMILY, Given" (or "FAMILY" when the given name is not known).
    pub(crate) fn name(&self) -> String {
        if self.given.is_empty() {
            self.family.clone()
        } else {
            format!("{}, {}", self.family, self.given)
        }
    }
}

/// Marks every banner whose name another banner on the same list shares (a same-name mix-up
/// is a known cause of wrong-patient results).
pub(crate) fn mark_same_names(banners: &mut [Banner]) {
    let key = |b: &Banner| (b.family.clone(), b.given.to_lowercase());
    let keys: Vec<_> = banners.iter().map(key).collect();
    for (i, b) in banners.iter_mut().enumerate() {
        b.same_name = keys.iter().enumerate().any(|(j, k)| j != i && *k == keys[i]);
    }
}

/// A page drawn with a status other than 200 (422 for a form with errors).
pub(crate) fn render_with(status: StatusCode, t: &impl Template) -> Result<Response, WebError> {
    Ok((status, Html(t.render()?)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Search.

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchQuery {
    q: Option<String>,
}

struct SearchRow {
    banner: Banner,
}

#[derive(Template)]
#[template(path = "patient_search.html")]
struct SearchPage {
    page: Page,
    q: String,
    searched: bool,
    rows: Vec<SearchRow>,
    truncated: bool,
    may_register: bool,
    register_href: String,
}

async fn search(
    State(state): State<AppState>,
    bench: Bench,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    let q = query.q.unwrap_or_default();
    let searched = !q.trim().is_empty();
    let may_register = bench.may(Action::RegisterPatient);
    let register_href = format!("/patients/new?q={}", urlencode(q.trim()));
    let page = Page::new(&bench, "Find a patient", "patients");
    let (rows, status, page) =
        match lab.search_patients(&bench.actor, &PatientQuery { text: q.clone() }).await {
            Ok(rows) => (rows, StatusCode::OK, page),
            Err(AppError::Invalid(errors)) => {
                (vec![], StatusCode::UNPROCESSABLE_ENTITY, page.with_errors(errors))
            }
            Err(e) => return Err(e.into()),
        };
    // A scanned wristband or typed MRN that matches exactly opens the patient.
    if let [only] = rows.as_slice()
        && Mrn::parse(&q).is_ok_and(|m| m.as_str() == only.mrn)
    {
        return Ok(Redirect::to(&format!("/patients/{}", only.id)).into_response());
    }
    let truncated = rows.len() as i64 >= PATIENT_SEARCH_LEN_MAX;
    let mut banners: Vec<Banner> = rows.iter().map(|p| Banner::of(lab, p)).collect();
    mark_same_names(&mut banners);
    let rows = banners.into_iter().map(|banner| SearchRow { banner }).collect();
    render_with(
        status,
        &SearchPage { page, q, searched, rows, truncated, may_register, register_href },
    )
}

// ---------------------------------------------------------------------------------------------
// Registration.

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct RegisterForm {
    csrf: String,
    mrn: String,
    family_name: String,
    given_name: String,
    birth_date: String,
    sex: String,
}

#[derive(Template)]
#[template(path = "patient_new.html")]
struct RegisterPage {
    page: Page,
    form: RegisterForm,
    q: String,
}

/// Fills the registration form from the search that found nobody: an MRN, or
/// `family,given` with an optional trailing date of birth.
fn prefill(q: &str, today: Date) -> RegisterForm {
    let mut form = RegisterForm::default();
    let mut names = q.trim();
    if let Some((rest, last)) = names.rsplit_once(' ')
        && parse_birth_date(last, today).is_ok()
    {
        form.birth_date = last.to_owned();
        names = rest.trim();
    } else if parse_birth_date(names, today).is_ok() {
        form.birth_date = names.to_owned();
        names = "";
    }
    if let Some((family, given)) = names.split_once(',') {
        form.family_name = family.trim().to_owned();
        form.given_name = given.trim().to_owned();
    } else if !names.is_empty()
        && names.chars().any(|c| c.is_ascii_digit())
        && Mrn::parse(names).is_ok()
    {
        form.mrn = names.to_ascii_uppercase();
    } else {
        form.family_name = names.to_owned();
    }
    form
}

async fn register_form(
    State(state): State<AppState>,
    bench: Bench,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    bench.require(Action::RegisterPatient)?;
    let q = query.q.unwrap_or_default();
    let form = prefill(&q, today(&state.lab));
    let page = Page::new(&bench, "Register a patient", "patients");
    render_with(StatusCode::OK, &RegisterPage { page, form, q })
}

async fn register(
    State(state): State<AppState>,
    bench: Bench,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let input = RegisterPatient {
        mrn: form.mrn.clone(),
        family_name: form.family_name.clone(),
        given_name: form.given_name.clone(),
        birth_date: form.birth_date.clone(),
        sex: form.sex.clone(),
    };
    match state.lab.register_patient(&bench.actor, &input).await {
        Ok(row) => Ok(Redirect::to(&format!("/patients/{}?registered=1", row.id)).into_response()),
        Err(AppError::Invalid(errors)) => {
            let page = Page::new(&bench, "Register a patient", "patients").with_errors(errors);
            let q = String::new();
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &RegisterPage { page, form, q })
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The patient page.

struct OrderBlock {
    ordered: String,
    ordered_by: String,
    provider: String,
    stat: bool,
    note: String,
    specimens: Vec<SpecimenLine>,
}

struct SpecimenLine {
    accession: String,
    container: String,
    specimen_type: String,
    status: String,
    status_label: &'static str,
    collected: String,
    received: String,
}

#[derive(Template)]
#[template(path = "patient_show.html")]
struct PatientPage {
    page: Page,
    banner: Banner,
    orders: Vec<OrderBlock>,
    may_order: bool,
    may_view_results: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    registered: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, WebError> {
    let lab = &state.lab;
    let patient = lab.patient(&bench.actor, id).await?;
    let orders = lab.patient_orders(&bench.actor, id).await?;
    let banner = Banner::of(lab, &patient);
    let orders: Vec<OrderBlock> = orders
        .into_iter()
        .map(|(o, specimens)| OrderBlock {
            ordered: lab.format_time(o.ordered_at),
            ordered_by: o.ordered_by,
            provider: o.provider,
            stat: o.priority == Priority::Stat,
            note: o.clinical_note,
            specimens: specimens
                .into_iter()
                .map(|s| SpecimenLine {
                    status_label: specimen_status_label(&s.status),
                    accession: s.accession,
                    container: s.container,
                    specimen_type: s.specimen_type,
                    status: s.status.code().to_owned(),
                    collected: crate::web::when(lab, s.collected_at),
                    received: crate::web::when(lab, s.received_at),
                })
                .collect(),
        })
        .collect();
    let notice =
        query.registered.map(|_| format!("Registered {} (MRN {}).", banner.name(), banner.mrn));
    let title = format!("{} – patient", banner.name());
    let page = Page::new(&bench, title, "patients").with_notice(notice);
    render_with(
        StatusCode::OK,
        &PatientPage {
            page,
            banner,
            orders,
            may_order: bench.may(Action::PlaceOrder),
            may_view_results: bench.may(Action::ViewResults),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Order entry.

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct OrderForm {
    csrf: String,
    tests: String,
    provider: String,
    priority: String,
    clinical_note: String,
}

struct CodeRef {
    code: String,
    name: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "order_new.html")]
struct OrderPage {
    page: Page,
    banner: Banner,
    form: OrderForm,
    panels: Vec<CodeRef>,
    tests: Vec<CodeRef>,
}

fn order_page(lab: &Lab, page: Page, banner: Banner, form: OrderForm) -> OrderPage {
    let catalog = lab.catalog();
    let panels = catalog
        .catalog
        .panels()
        .map(|p| CodeRef {
            code: p.code.clone(),
            name: p.name.clone(),
            detail: p.members.join(" "),
        })
        .collect();
    let tests = catalog
        .catalog
        .tests()
        .filter(|t| t.orderable)
        .map(|t| CodeRef {
            code: t.code.clone(),
            name: t.name.clone(),
            detail: short_container(&t.container),
        })
        .collect();
    OrderPage { page, banner, form, panels, tests }
}

async fn order_form(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    bench.require(Action::PlaceOrder)?;
    let patient = state.lab.patient(&bench.actor, id).await?;
    let banner = Banner::of(&state.lab, &patient);
    let page = Page::new(&bench, format!("New order – {}", banner.name()), "patients");
    let form = OrderForm { priority: "routine".into(), ..OrderForm::default() };
    render_with(StatusCode::OK, &order_page(&state.lab, page, banner, form))
}

async fn place_order(
    State(state): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<OrderForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let order = PlaceOrder {
        patient_id: id,
        provider: form.provider.clone(),
        priority: form.priority.clone(),
        tests: vec![form.tests.clone()],
        clinical_note: form.clinical_note.clone(),
        placer_number: None,
    };
    match state.lab.place_order(&bench.actor, &order).await {
        Ok(placed) => {
            let query: Vec<String> = placed
                .specimens
                .iter()
                .map(|s| format!("acc={}", urlencode(&s.accession)))
                .collect();
            Ok(Redirect::to(&format!("/labels?{}&placed={}", query.join("&"), placed.order_id))
                .into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let patient = state.lab.patient(&bench.actor, id).await?;
            let banner = Banner::of(&state.lab, &patient);
            let page = Page::new(&bench, format!("New order – {}", banner.name()), "patients")
                .with_errors(errors);
            render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &order_page(&state.lab, page, banner, form),
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Accession numbers from repeated query parameters, each checked (`acc=…&acc=…`).
pub(crate) fn accessions_from(
    pairs: &[(String, String)],
    key: &str,
) -> Vec<Result<Accession, String>> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(_, v)| Accession::parse(v).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_text_prefills_registration() {
        let today = jiff::civil::date(2026, 11, 24);
        let f = prefill("smith, John 14-Jul-1945", today);
        assert_eq!((f.family_name.as_str(), f.given_name.as_str()), ("smith", "John"));
        assert_eq!(f.birth_date, "14-Jul-1945");
        assert_eq!(prefill("MRN-1234", today).mrn, "MRN-1234");
        assert_eq!(prefill("Okafor", today).family_name, "Okafor");
        assert_eq!(prefill("1945-07-14", today).birth_date, "1945-07-14");
    }

    #[test]
    fn containers_shorten_for_labels() {
        assert_eq!(
            short_container("SST (gold) or lithium heparin PST (light green)"),
            "SST (gold)"
        );
        assert_eq!(
            short_container("3.2% sodium citrate (light blue), full draw"),
            "3.2% sodium citrate (light blue)"
        );
    }
}
