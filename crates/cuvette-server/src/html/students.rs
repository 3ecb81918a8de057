//! Students on clinical rotation: the rotation logbook (schedule, tests performed with
//! their co-signatures, the supervisor's sign-off; CSV and PDF for the programme) and the
//! list of students' results waiting for a co-signature.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::AppError;
use cuvette_app::students::{Logbook, PendingCosignature};
use cuvette_domain::Action;
use cuvette_domain::rotation::{Cosignature, RotationInput};

use crate::AppState;
use crate::auth::Bench;
use crate::csv_export::{Csv, Field};
use crate::error::WebError;
use crate::pdf;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cosignatures", get(cosignatures))
        .route("/staff/{username}/logbook", get(logbook_page))
        .route("/staff/{username}/logbook.csv", get(logbook_csv))
        .route("/staff/{username}/logbook.pdf", get(logbook_pdf))
        .route("/staff/{username}/rotations", post(schedule))
        .route("/staff/{username}/rotations/{id}/sign-off", post(sign_off))
}

#[derive(Template)]
#[template(path = "logbook.html")]
struct LogbookPage {
    page: Page,
    book: Logbook,
    /// Those who manage users schedule rotations.
    schedule: bool,
    rotation: RotationInput,
    disciplines: Vec<String>,
    me: String,
}

impl LogbookPage {
    fn row_id(&self, i: usize) -> Option<i64> {
        self.book.sections.get(i).and_then(|s| self.book.row_of(s)).map(|r| r.id)
    }
}

async fn render(
    s: &AppState,
    bench: &Bench,
    username: &str,
    rotation: RotationInput,
    errors: Vec<cuvette_app::FieldError>,
) -> Result<String, WebError> {
    let book = s.lab.logbook(&bench.actor, username).await?;
    let catalog = s.lab.catalog();
    let mut disciplines: Vec<String> =
        catalog.catalog.tests().map(|t| t.discipline.clone()).filter(|d| !d.is_empty()).collect();
    disciplines.sort();
    disciplines.dedup();
    let title = format!("Rotation logbook: {}", book.user.display_name);
    Ok(LogbookPage {
        page: Page::new(bench, title, "users").with_errors(errors),
        schedule: bench.may(Action::ManageUsers),
        rotation,
        disciplines,
        me: bench.actor.name.clone(),
        book,
    }
    .render()?)
}

async fn logbook_page(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
) -> Result<Html<String>, WebError> {
    Ok(Html(render(&s, &bench, &username, RotationInput::default(), vec![]).await?))
}

#[derive(serde::Deserialize)]
struct RotationForm {
    csrf: String,
    #[serde(flatten)]
    rotation: RotationInput,
}

async fn schedule(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
    Form(form): Form<RotationForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.schedule_rotation(&bench.actor, &username, &form.rotation).await {
        Ok(_) => Ok(Redirect::to(&format!("/staff/{username}/logbook")).into_response()),
        Err(AppError::Invalid(errors)) => {
            let page = render(&s, &bench, &username, form.rotation, errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_off(
    State(s): State<AppState>,
    bench: Bench,
    Path((username, id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.sign_off_rotation(&bench.actor, &username, id).await {
        Ok(()) => Ok(Redirect::to(&format!("/staff/{username}/logbook")).into_response()),
        Err(AppError::Refused(m)) => {
            let errors =
                vec![cuvette_app::FieldError { field: format!("sign-off-{id}"), message: m }];
            let page = render(&s, &bench, &username, RotationInput::default(), errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The rotation's heading, as every export prints it.
pub(crate) fn heading(book: &Logbook, i: usize) -> String {
    match book.sections.get(i).and_then(|s| s.rotation.as_ref()) {
        Some(r) => format!(
            "{} · {} rotation {} to {} · supervised by {}",
            r.program, r.discipline, r.starts_on, r.ends_on, r.supervisor
        ),
        None => "Tests performed outside any scheduled rotation".into(),
    }
}

fn signed_off(book: &Logbook, i: usize) -> String {
    match book.sections.get(i).and_then(|s| s.rotation.as_ref()) {
        Some(r) => match &r.signed_off {
            Some(s) => format!("signed off by {} on {}", s.by, s.on),
            None => "not signed off".into(),
        },
        None => String::new(),
    }
}

/// The logbook as CSV, one row per test performed: the programme opens it in a spreadsheet,
/// so every text field is guarded against running as a formula.
pub(crate) fn logbook_csv_body(book: &Logbook) -> String {
    let mut out = Csv::new(&[
        "student",
        "program",
        "discipline",
        "rotation_starts_on",
        "rotation_ends_on",
        "supervisor",
        "rotation_signed_off_by",
        "rotation_signed_off_on",
        "performed_on",
        "test_code",
        "test_name",
        "cosignature",
        "cosigned_by",
        "cosigned_on",
    ]);
    for section in &book.sections {
        let r = section.rotation.as_ref();
        let starts = r.map(|r| r.starts_on.to_string()).unwrap_or_default();
        let ends = r.map(|r| r.ends_on.to_string()).unwrap_or_default();
        let signed_on =
            r.and_then(|r| r.signed_off.as_ref()).map(|s| s.on.to_string()).unwrap_or_default();
        for e in &section.entries {
            let (state, by, on) = match &e.cosignature {
                Cosignature::Pending => ("pending", "", String::new()),
                Cosignature::Signed { by, on } => ("signed", by.as_str(), on.to_string()),
                Cosignature::Replaced => ("replaced", "", String::new()),
            };
            out.row(&[
                Field::Text(&book.user.username),
                Field::Text(r.map_or("", |r| r.program.as_str())),
                Field::Text(&e.discipline),
                Field::Value(&starts),
                Field::Value(&ends),
                Field::Text(r.map_or("", |r| r.supervisor.as_str())),
                Field::Text(r.and_then(|r| r.signed_off.as_ref()).map_or("", |s| s.by.as_str())),
                Field::Value(&signed_on),
                Field::Value(&e.performed_on.to_string()),
                Field::Text(&e.test),
                Field::Text(&e.test_name),
                Field::Value(state),
                Field::Text(by),
                Field::Value(&on),
            ]);
        }
    }
    out.finish()
}

/// The file's name: the username's letters, digits, hyphens and underscores only.
pub(crate) fn logbook_filename(book: &Logbook, extension: &str) -> String {
    let name: String = book
        .user
        .username
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("logbook-{name}.{extension}")
}

async fn logbook_csv(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
) -> Result<Response, WebError> {
    let book = s.lab.logbook(&bench.actor, &username).await?;
    let disposition = format!("attachment; filename=\"{}\"", logbook_filename(&book, "csv"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        logbook_csv_body(&book),
    )
        .into_response())
}

fn logbook_report(book: &Logbook, lab_name: &str) -> pdf::Report {
    let mut sections = Vec::new();
    for (i, section) in book.sections.iter().enumerate() {
        let mut counts = pdf::Section {
            heading: format!("{} · {}", heading(book, i), signed_off(book, i)),
            columns: vec![
                pdf::Column::new("Test", 3.0),
                pdf::Column::new("Code", 1.0),
                pdf::Column::new("Performed and co-signed", 1.5).right(),
            ],
            rows: section
                .signed_per_test()
                .into_iter()
                .map(|(code, name, n)| pdf::Row {
                    cells: vec![name, code, n.to_string()],
                    note: String::new(),
                })
                .collect(),
        };
        if counts.rows.is_empty() {
            counts.rows.push(pdf::Row {
                cells: vec!["No co-signed test yet".into()],
                note: String::new(),
            });
        }
        sections.push(counts);
        sections.push(pdf::Section {
            heading: "Tests performed".into(),
            columns: vec![
                pdf::Column::new("Date", 1.2),
                pdf::Column::new("Test", 2.5),
                pdf::Column::new("Co-signature", 3.0),
            ],
            rows: section
                .entries
                .iter()
                .map(|e| pdf::Row {
                    cells: vec![
                        e.performed_on.to_string(),
                        format!("{} ({})", e.test_name, e.test),
                        e.cosignature.to_string(),
                    ],
                    note: String::new(),
                })
                .collect(),
        });
    }
    pdf::Report {
        title: "Rotation logbook".into(),
        header_lines: vec![
            lab_name.to_owned(),
            format!("Student: {} ({})", book.user.display_name, book.user.username),
        ],
        footer: format!("Printed {}", book.today),
        sections,
    }
}

async fn logbook_pdf(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
) -> Result<Response, WebError> {
    let book = s.lab.logbook(&bench.actor, &username).await?;
    let disposition = format!("inline; filename=\"{}\"", logbook_filename(&book, "pdf"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf::render(&logbook_report(&book, &s.lab.config().lab_name)),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "cosignatures.html")]
struct CosignaturesPage {
    page: Page,
    pending: Vec<PendingCosignature>,
}

async fn cosignatures(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    let pending = s.lab.pending_cosignatures(&bench.actor).await?;
    Ok(Html(
        CosignaturesPage { page: Page::new(&bench, "Waiting for co-signature", "review"), pending }
            .render()?,
    ))
}
