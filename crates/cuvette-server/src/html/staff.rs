//! Staff records: each person sees their own (education, certifications, licences,
//! authorisations, competency standing); those who manage users edit records and the lab's
//! qualification settings; the director and technical supervisors authorise and assess.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::records::UserRow;
use cuvette_app::{
    AppError, AssessmentInput, AuthoriseInput, ElementInput, PolicyInput, StaffView,
};
use cuvette_domain::staff::{
    self, CertificationInput, EducationInput, Element, LicenceInput, Outcome, QualificationPolicy,
    StaffRecordInput, Standing,
};
use cuvette_domain::{Action, Role};

use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff", get(staff_list))
        .route("/staff-policy", post(save_policy))
        .route("/staff/{username}", get(staff_page))
        .route("/staff/{username}/record", post(save_record))
        .route("/staff/{username}/authorisations", post(authorise))
        .route("/staff/{username}/competency", post(assess))
}

/// Rows of each list the record form offers.
const EDUCATION_ROWS: usize = 2;
const CERTIFICATION_ROWS: usize = 3;
const LICENCE_ROWS: usize = 2;

#[derive(Template)]
#[template(path = "staff_list.html")]
struct StaffListPage {
    page: Page,
    users: Vec<UserRow>,
    policy: QualificationPolicy,
    licence_from: &'static str,
    certification_from: &'static str,
    complexities: Vec<(&'static str, &'static str)>,
}

/// Everyone lands on their own record; those who manage users see the list and settings.
async fn staff_list(State(s): State<AppState>, bench: Bench) -> Result<Response, WebError> {
    if !bench.may(Action::ManageUsers) {
        return Ok(Redirect::to(&format!("/staff/{}", bench.actor.name)).into_response());
    }
    let users = s.lab.users(&bench.actor).await?;
    let policy = s.lab.qualification_policy(&bench.actor).await?;
    Ok(Html(
        StaffListPage {
            page: Page::new(&bench, "Staff", "users"),
            users,
            licence_from: policy.licence_required_from.map_or("", |c| c.code()),
            certification_from: policy.certification_required_from.map_or("", |c| c.code()),
            policy,
            complexities: complexities(),
        }
        .render()?,
    )
    .into_response())
}

fn complexities() -> Vec<(&'static str, &'static str)> {
    vec![
        ("", "never"),
        ("waived", "all testing"),
        ("moderate", "moderate and high complexity"),
        ("high", "high complexity"),
    ]
}

#[derive(serde::Deserialize)]
struct PolicyForm {
    csrf: String,
    enforce: Option<String>,
    #[serde(default)]
    licence_required_from: String,
    #[serde(default)]
    certification_required_from: String,
}

async fn save_policy(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<PolicyForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let input = PolicyInput {
        enforce: form.enforce.is_some(),
        licence_required_from: form.licence_required_from,
        certification_required_from: form.certification_required_from,
    };
    s.lab.set_qualification_policy(&bench.actor, &input).await?;
    Ok(Redirect::to("/staff").into_response())
}

/// One competency line as shown.
struct StandingRow {
    system: String,
    state: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage {
    page: Page,
    view: StaffView,
    standings: Vec<StandingRow>,
    /// Those who manage users edit the record.
    edit: bool,
    /// The director and technical supervisors authorise and assess.
    authorise: bool,
    record: StaffRecordInput,
    record_version: i64,
    authorisation: AuthoriseInput,
    assessment: AssessmentInput,
    disciplines: Vec<String>,
    instruments: Vec<String>,
    levels: Vec<(&'static str, String)>,
    fields: Vec<(&'static str, String)>,
    accreditations: Vec<(&'static str, String)>,
    credentials: Vec<(&'static str, String)>,
    elements: Vec<String>,
    /// Who is signed in (who an authorisation is recorded under).
    me: String,
}

impl StaffPage {
    fn disciplines_chosen(&self, d: &str) -> bool {
        self.record.disciplines.iter().any(|x| x == d)
    }
}

async fn staff_page(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
) -> Result<Html<String>, WebError> {
    let page = render(&s, &bench, &username, Forms::default(), vec![]).await?;
    Ok(Html(page))
}

/// What was typed into the forms, given back on a refusal.
#[derive(Default)]
struct Forms {
    record: Option<(StaffRecordInput, i64)>,
    authorisation: Option<AuthoriseInput>,
    assessment: Option<AssessmentInput>,
}

async fn render(
    s: &AppState,
    bench: &Bench,
    username: &str,
    forms: Forms,
    errors: Vec<cuvette_app::FieldError>,
) -> Result<String, WebError> {
    let view = s.lab.staff(&bench.actor, username).await?;
    let standings = view
        .standings
        .iter()
        .map(|(system, standing)| {
            let (state, text) = match standing {
                Standing::Current { due } => {
                    ("current", format!("current; next assessment by {due}"))
                }
                Standing::Overdue { since } => ("overdue", format!("overdue since {since}")),
                Standing::Failed { on } => ("failed", format!("failed on {on}")),
            };
            StandingRow { system: system.to_string(), state, text }
        })
        .collect();
    let (record, record_version) = forms.record.unwrap_or_else(|| match &view.record {
        Some(r) => (StaffRecordInput::from_record(&r.record), r.version),
        None => (StaffRecordInput::default(), 0),
    });
    let record = padded(record);
    let mut assessment = forms.assessment.unwrap_or_default();
    assessment.elements.resize(6, ElementInput::default());
    let catalog = s.lab.catalog();
    let mut disciplines: Vec<String> =
        catalog.catalog.tests().map(|t| t.discipline.clone()).filter(|d| !d.is_empty()).collect();
    disciplines.sort();
    disciplines.dedup();
    let edit = bench.may(Action::ManageUsers);
    let instruments = if edit {
        s.lab.instruments(&bench.actor).await?.into_iter().map(|(i, _)| i.name).collect()
    } else {
        vec![]
    };
    let title = format!("Staff record: {}", view.user.display_name);
    let page = StaffPage {
        page: Page::new(bench, title, "users").with_errors(errors),
        standings,
        edit,
        authorise: staff::may_authorise(bench.actor.role),
        record,
        record_version,
        authorisation: forms.authorisation.unwrap_or_default(),
        assessment,
        disciplines,
        instruments,
        levels: staff::EducationLevel::ALL.iter().map(|l| (l.code(), l.to_string())).collect(),
        fields: staff::FieldOfStudy::ALL.iter().map(|f| (f.code(), f.to_string())).collect(),
        accreditations: staff::Accreditation::ALL
            .iter()
            .map(|a| (a.code(), a.to_string()))
            .collect(),
        credentials: staff::Credential::ALL.iter().map(|c| (c.code(), c.to_string())).collect(),
        elements: Element::ALL.iter().map(|e| e.to_string()).collect(),
        me: bench.actor.display_name.clone(),
        view,
    };
    Ok(page.render()?)
}

/// The record with empty rows to type into.
fn padded(mut r: StaffRecordInput) -> StaffRecordInput {
    let at_least = |n: usize, extra: usize| n.max(extra).max(n + 1).min(staff::RECORD_ENTRIES_MAX);
    r.education.resize(at_least(r.education.len(), EDUCATION_ROWS), EducationInput::default());
    r.certifications.resize(
        at_least(r.certifications.len(), CERTIFICATION_ROWS),
        CertificationInput::default(),
    );
    r.licences.resize(at_least(r.licences.len(), LICENCE_ROWS), LicenceInput::default());
    r
}

/// The value of `name` in a form posted as pairs.
fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The rows `prefix[0].…`, `prefix[1].…` of a form, as many as were posted (bounded).
fn rows(pairs: &[(String, String)], prefix: &str) -> usize {
    (0..staff::RECORD_ENTRIES_MAX + 1)
        .take_while(|i| pairs.iter().any(|(k, _)| k.starts_with(&format!("{prefix}[{i}]."))))
        .count()
}

fn record_from_form(pairs: &[(String, String)]) -> StaffRecordInput {
    let v = |name: String| value(pairs, &name).to_owned();
    StaffRecordInput {
        education: (0..rows(pairs, "education"))
            .map(|i| EducationInput {
                level: v(format!("education[{i}].level")),
                field: v(format!("education[{i}].field")),
                institution: v(format!("education[{i}].institution")),
                accreditation: v(format!("education[{i}].accreditation")),
                completed_on: v(format!("education[{i}].completed_on")),
            })
            .collect(),
        certifications: (0..rows(pairs, "certifications"))
            .map(|i| CertificationInput {
                credential: v(format!("certifications[{i}].credential")),
                number: v(format!("certifications[{i}].number")),
                issued_on: v(format!("certifications[{i}].issued_on")),
                expires_on: v(format!("certifications[{i}].expires_on")),
            })
            .collect(),
        licences: (0..rows(pairs, "licences"))
            .map(|i| LicenceInput {
                state: v(format!("licences[{i}].state")),
                number: v(format!("licences[{i}].number")),
                expires_on: v(format!("licences[{i}].expires_on")),
            })
            .collect(),
        hire_date: v("hire_date".into()),
        experience_since: v("experience_since".into()),
        disciplines: pairs
            .iter()
            .filter(|(k, _)| k == "disciplines")
            .map(|(_, d)| d.clone())
            .take(staff::RECORD_ENTRIES_MAX + 1)
            .collect(),
    }
}

/// A refused form comes back with what was typed and the errors beside the fields; a
/// conflict is shown the same way, on the form.
async fn refused(
    s: &AppState,
    bench: &Bench,
    username: &str,
    forms: Forms,
    e: AppError,
    field: &str,
) -> Result<Response, WebError> {
    let errors = match e {
        AppError::Invalid(errors) => errors,
        AppError::Conflict(m) | AppError::Forbidden(m) => {
            vec![cuvette_app::FieldError { field: field.into(), message: m }]
        }
        other => return Err(other.into()),
    };
    let page = render(s, bench, username, forms, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response())
}

async fn save_record(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    bench.check_csrf(value(&pairs, "csrf"))?;
    let input = record_from_form(&pairs);
    let version = value(&pairs, "version").parse::<i64>().unwrap_or(0);
    match s.lab.save_staff_record(&bench.actor, &username, &input, version).await {
        Ok(_) => Ok(Redirect::to(&format!("/staff/{username}")).into_response()),
        Err(e) => {
            let forms = Forms { record: Some((input, version)), ..Forms::default() };
            refused(&s, &bench, &username, forms, e, "hire_date").await
        }
    }
}

#[derive(serde::Deserialize)]
struct AuthoriseForm {
    csrf: String,
    #[serde(default)]
    discipline: String,
    #[serde(default)]
    authorised_on: String,
}

async fn authorise(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
    Form(form): Form<AuthoriseForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let input = AuthoriseInput { discipline: form.discipline, authorised_on: form.authorised_on };
    match s.lab.authorise(&bench.actor, &username, &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/staff/{username}")).into_response()),
        Err(AppError::Forbidden(m)) => Err(AppError::Forbidden(m).into()),
        Err(e) => {
            let forms = Forms { authorisation: Some(input), ..Forms::default() };
            refused(&s, &bench, &username, forms, e, "discipline").await
        }
    }
}

async fn assess(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    bench.check_csrf(value(&pairs, "csrf"))?;
    let v = |name: String| value(&pairs, &name).to_owned();
    let input = AssessmentInput {
        test: v("test".into()),
        discipline: v("discipline".into()),
        instrument: v("instrument".into()),
        outcome: v("outcome".into()),
        elements: (0..6)
            .map(|i| ElementInput {
                evidence: v(format!("elements[{i}].evidence")),
                assessor: v(format!("elements[{i}].assessor")),
                assessed_on: v(format!("elements[{i}].assessed_on")),
            })
            .collect(),
    };
    match s.lab.record_competency(&bench.actor, &username, &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/staff/{username}")).into_response()),
        Err(AppError::Forbidden(m)) => Err(AppError::Forbidden(m).into()),
        Err(e) => {
            let forms = Forms { assessment: Some(input), ..Forms::default() };
            refused(&s, &bench, &username, forms, e, "test").await
        }
    }
}
