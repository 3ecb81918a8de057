//! Supervisor screens: the catalog editor, users, and the audit log.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use cuvette_app::catalog::{CatalogImport, ImportMode};
use cuvette_app::records::{AuditEvent, AuditFilter, AuditVerification, StoredDefinition, UserRow};
use cuvette_app::{AppError, FieldError, NewUser};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::catalog::{ReferenceInterval, ResultType};
use cuvette_domain::definition_diff::{self, DefinitionDiff, IntervalChange};
use cuvette_domain::number::{NumberRules, parse_entry};
use cuvette_domain::role::ROLES;
use cuvette_domain::{Action, Role, TestDefinition};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::audit_diff::{DiffLine, diff};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(catalog))
        .route("/catalog.toml", get(export_catalog))
        .route("/catalog/import", get(import_page).post(import_catalog))
        .route("/catalog/{code}", get(edit_test).post(save_test))
        .route("/catalog/{code}/synonyms", axum::routing::post(add_synonym))
        .route("/catalog/{code}/synonyms/remove", axum::routing::post(remove_synonym))
        .route("/catalog/{code}/diff", get(diff_page))
        .route("/users", get(users).post(add_user))
        .route("/users/{username}", axum::routing::post(edit_user))
        .route("/sign-in-delays", get(sign_in_delays).post(clear_sign_in_delay))
        .route("/roles", get(roles_page).post(save_roles))
        .route("/audit", get(audit))
        .route("/audit.csv", get(audit_csv))
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    page: Page,
    rows: Vec<(String, String, String, String, String, i64, bool)>,
}

async fn catalog(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    bench.require(Action::EditCatalog)?;
    let cat = s.lab.catalog();
    let rows = cat
        .catalog
        .tests()
        .map(|t| {
            (
                t.code.clone(),
                t.name.clone(),
                t.discipline.clone(),
                t.unit.clone(),
                t.primary_container().to_owned(),
                cat.versions.get(&t.code).copied().unwrap_or(0),
                t.is_calculated(),
            )
        })
        .collect();
    Ok(Html(CatalogPage { page: Page::new(&bench, "Test catalog", "catalog"), rows }.render()?))
}

/// The editable fields of a definition, as text, exactly as typed.
#[derive(Deserialize, Default, Clone)]
struct DefinitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    expected_version: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    loinc: String,
    #[serde(default)]
    discipline: String,
    #[serde(default)]
    specimen: String,
    #[serde(default)]
    container: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    decimals: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    critical_low: String,
    #[serde(default)]
    critical_high: String,
    #[serde(default)]
    amr_low: String,
    #[serde(default)]
    amr_high: String,
    #[serde(default)]
    allowed_values: String,
    #[serde(default)]
    normal_values: String,
    #[serde(default)]
    reason: String,
}

fn dec(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

impl DefinitionForm {
    fn from_definition(t: &TestDefinition, version: i64) -> DefinitionForm {
        DefinitionForm {
            csrf: String::new(),
            expected_version: version,
            name: t.name.clone(),
            loinc: t.loinc.clone(),
            discipline: t.discipline.clone(),
            specimen: t.specimen.clone(),
            container: t.container.clone(),
            unit: t.unit.clone(),
            decimals: t.decimals.map(|d| d.to_string()).unwrap_or_default(),
            reference: t
                .reference
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {} {} {}",
                        r.sex,
                        r.age_min.as_deref().unwrap_or("-"),
                        r.age_max.as_deref().unwrap_or("-"),
                        r.low.map(|d| d.to_string()).unwrap_or("-".into()),
                        r.high.map(|d| d.to_string()).unwrap_or("-".into())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            critical_low: dec(t.critical_low),
            critical_high: dec(t.critical_high),
            amr_low: dec(t.amr_low),
            amr_high: dec(t.amr_high),
            allowed_values: t.allowed_values.join(" | "),
            normal_values: t.normal_values.join(" | "),
            reason: String::new(),
        }
    }

    /// Applies the form to `base`; every unreadable field is named.
    fn apply(&self, base: &TestDefinition) -> Result<TestDefinition, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut number = |field: &str, text: &str| -> Option<Decimal> {
            let t = text.trim();
            if t.is_empty() {
                return None;
            }
            match parse_entry(t, NumberRules::Plain) {
                Ok(n) => Some(n.value),
                Err(e) => {
                    errors.push(FieldError { field: field.into(), message: e.to_string() });
                    None
                }
            }
        };
        let mut t = base.clone();
        t.critical_low = number("critical_low", &self.critical_low);
        t.critical_high = number("critical_high", &self.critical_high);
        t.amr_low = number("amr_low", &self.amr_low);
        t.amr_high = number("amr_high", &self.amr_high);
        t.name = self.name.trim().to_owned();
        t.loinc = self.loinc.trim().to_owned();
        t.discipline = self.discipline.trim().to_owned();
        t.specimen = self.specimen.trim().to_owned();
        t.container = self.container.trim().to_owned();
        t.unit = self.unit.trim().to_owned();
        t.decimals = match self.decimals.trim() {
            "" => None,
            d => match d.parse::<u32>() {
                Ok(n) if n <= 6 => Some(n),
                _ => {
                    errors.push(FieldError {
                        field: "decimals".into(),
                        message: "decimals is a whole number from 0 to 6".into(),
                    });
                    None
                }
            },
        };
        let split = |s: &str| {
            s.split('|').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect::<Vec<_>>()
        };
        if t.result_type == ResultType::Coded {
            t.allowed_values = split(&self.allowed_values);
            t.normal_values = split(&self.normal_values);
        }
        let mut reference = Vec::new();
        for (n, line) in self.reference.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let opt = |s: &str| (s != "-").then(|| s.to_owned());
            let num = |s: &str| match s {
                "-" => Ok(None),
                s => parse_entry(s, NumberRules::Plain).map(|n| Some(n.value)),
            };
            match parts.as_slice() {
                [sex, age_min, age_max, low, high] => match (num(low), num(high)) {
                    (Ok(low), Ok(high)) => reference.push(ReferenceInterval {
                        sex: sex.to_string(),
                        age_min: opt(age_min),
                        age_max: opt(age_max),
                        low,
                        high,
                    }),
                    _ => errors.push(FieldError {
                        field: "reference".into(),
                        message: format!("line {}: low and high must be numbers or -", n + 1),
                    }),
                },
                _ => errors.push(FieldError {
                    field: "reference".into(),
                    message: format!("line {}: write five parts: sex age_min age_max low high, for example `* P18Y - 3.5 5.1`", n + 1),
                }),
            }
        }
        t.reference = reference;
        if errors.is_empty() { Ok(t) } else { Err(errors) }
    }
}

#[derive(Template)]
#[template(path = "catalog_edit.html")]
struct EditPage {
    page: Page,
    code: String,
    result_type: String,
    calculated: bool,
    form: DefinitionForm,
    history: Vec<HistoryRow>,
    /// The synonyms in force: as written, the value, when and by whom.
    synonyms: Vec<(String, String, String, String)>,
    /// The values a synonym may stand for.
    values: Vec<String>,
    /// What was typed in the synonym form.
    synonym_form: SynonymFields,
}

/// The synonym form as typed.
#[derive(Deserialize, Default, Clone)]
struct SynonymFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    synonym: String,
    #[serde(default)]
    coded_value: String,
}

fn synonym_rows(
    s: &AppState,
    code: &str,
) -> Result<Vec<(String, String, String, String)>, WebError> {
    Ok(s.lab
        .coded_synonyms(code)?
        .into_iter()
        .map(|r| (r.written, r.coded_value, s.lab.format_time(r.changed_at), r.changed_by))
        .collect())
}

/// One version in a test's history: when, who, why, and what changed from the one before.
struct HistoryRow {
    version: i64,
    at: String,
    by: String,
    reason: String,
    changes: Vec<String>,
    /// The version before, to compare with.
    previous: Option<i64>,
}

fn history_rows(s: &AppState, history: &[StoredDefinition]) -> Vec<HistoryRow> {
    history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let older = history.get(i + 1);
            let changes = match older {
                Some(older) => summary(&definition_diff::compare(&older.definition, &h.definition)),
                None => vec!["first version".into()],
            };
            HistoryRow {
                version: h.version,
                at: s.lab.format_time(h.created_at),
                by: h.created_by.clone(),
                reason: h.reason.clone(),
                changes,
                previous: older.map(|o| o.version),
            }
        })
        .collect()
}

/// A diff in short lines, as the history lists it.
fn summary(diff: &DefinitionDiff) -> Vec<String> {
    let shown = |v: &str| if v.is_empty() { "(none)".to_owned() } else { v.to_owned() };
    let mut lines: Vec<String> = diff
        .fields
        .iter()
        .chain(&diff.limits)
        .map(|c| format!("{}: {} → {}", c.field, shown(&c.before), shown(&c.after)))
        .collect();
    lines.extend(diff.intervals.iter().map(interval_line));
    if lines.is_empty() {
        lines.push("no change".into());
    }
    lines
}

fn interval_line(c: &IntervalChange) -> String {
    match c {
        IntervalChange::Added { partition, interval } => {
            format!("interval added: {partition}: {interval}")
        }
        IntervalChange::Removed { partition, interval } => {
            format!("interval removed: {partition}: {interval}")
        }
        IntervalChange::Changed { partition, before, after } => {
            format!("interval changed: {partition}: {before} → {after}")
        }
    }
}

async fn edit_test(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
) -> Result<Html<String>, WebError> {
    bench.require(Action::EditCatalog)?;
    let cat = s.lab.catalog();
    let t = cat
        .catalog
        .test(&code)
        .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?;
    let version = cat.versions.get(&code).copied().unwrap_or(0);
    let history = s.lab.definition_history(&bench.actor, &code).await?;
    let page = EditPage {
        page: Page::new(&bench, format!("Edit {} ({})", t.name, t.code), "catalog"),
        code: t.code.clone(),
        result_type: format!("{:?}", t.result_type).to_lowercase(),
        calculated: t.is_calculated(),
        form: DefinitionForm::from_definition(t, version),
        history: history_rows(&s, &history),
        synonyms: synonym_rows(&s, &code)?,
        values: t.allowed_values.clone(),
        synonym_form: SynonymFields::default(),
    };
    Ok(Html(page.render()?))
}

async fn save_test(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Form(form): Form<DefinitionForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    bench.require(Action::EditCatalog)?;
    let cat = s.lab.catalog();
    let base = cat
        .catalog
        .test(&code)
        .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?
        .clone();
    let outcome = match form.apply(&base) {
        Ok(def) => {
            s.lab.save_definition(&bench.actor, def, form.expected_version, &form.reason).await
        }
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/catalog/{code}")).into_response()),
        Err(AppError::Invalid(errors)) => rerender(&s, &bench, &base, form, errors).await,
        Err(AppError::Conflict(m)) => {
            rerender(&s, &bench, &base, form, vec![FieldError { field: "name".into(), message: m }])
                .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn rerender(
    s: &AppState,
    bench: &Bench,
    base: &TestDefinition,
    form: DefinitionForm,
    errors: Vec<FieldError>,
) -> Result<Response, WebError> {
    rerender_with(s, bench, base, form, errors, SynonymFields::default()).await
}

async fn rerender_with(
    s: &AppState,
    bench: &Bench,
    base: &TestDefinition,
    form: DefinitionForm,
    errors: Vec<FieldError>,
    synonym_form: SynonymFields,
) -> Result<Response, WebError> {
    let history = s.lab.definition_history(&bench.actor, &base.code).await?;
    let page = EditPage {
        page: Page::new(bench, format!("Edit {} ({})", base.name, base.code), "catalog")
            .with_errors(errors),
        code: base.code.clone(),
        result_type: format!("{:?}", base.result_type).to_lowercase(),
        calculated: base.is_calculated(),
        form,
        history: history_rows(s, &history),
        synonyms: synonym_rows(s, &base.code)?,
        values: base.allowed_values.clone(),
        synonym_form,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
}

/// Adds a synonym from the test's page; a refusal comes back on the page with what was
/// typed and the reason beside the field, and nothing stored.
async fn add_synonym(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Form(typed): Form<SynonymFields>,
) -> Result<Response, WebError> {
    bench.check_csrf(&typed.csrf)?;
    bench.require(Action::EditCatalog)?;
    let form = cuvette_app::SynonymForm {
        synonym: typed.synonym.clone(),
        coded_value: typed.coded_value.clone(),
    };
    match s.lab.add_coded_synonym(&bench.actor, &code, &form).await {
        Ok(_) => Ok(Redirect::to(&format!("/catalog/{code}#synonyms")).into_response()),
        Err(AppError::Invalid(errors)) => {
            let base = current_test(&s, &code)?;
            let version = s.lab.catalog().versions.get(&code).copied().unwrap_or(0);
            let form = DefinitionForm::from_definition(&base, version);
            rerender_with(&s, &bench, &base, form, errors, typed).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes a synonym from the test's page.
async fn remove_synonym(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Form(typed): Form<SynonymFields>,
) -> Result<Response, WebError> {
    bench.check_csrf(&typed.csrf)?;
    bench.require(Action::EditCatalog)?;
    s.lab.remove_coded_synonym(&bench.actor, &code, &typed.synonym).await?;
    Ok(Redirect::to(&format!("/catalog/{code}#synonyms")).into_response())
}

fn current_test(s: &AppState, code: &str) -> Result<TestDefinition, WebError> {
    Ok(s.lab
        .catalog()
        .catalog
        .test(code)
        .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?
        .clone())
}

/// The whole catalog as one TOML file, to keep, edit and import back.
async fn export_catalog(State(s): State<AppState>, bench: Bench) -> Result<Response, WebError> {
    let toml = s.lab.export_catalog(&bench.actor)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/toml; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"cuvette-catalog.toml\""),
        ],
        toml,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "catalog_diff.html")]
struct DiffPage {
    page: Page,
    code: String,
    name: String,
    from: (i64, String, String, String),
    to: (i64, String, String, String),
    fields: Vec<(String, String, String)>,
    limits: Vec<(String, String, String)>,
    intervals: Vec<(&'static str, String, String, String)>,
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// What changed between two versions of a test: fields, limits, intervals by partition.
async fn diff_page(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Html<String>, WebError> {
    bench.require(Action::EditCatalog)?;
    let current = s.lab.catalog().versions.get(&code).copied().unwrap_or(0);
    let to = q.to.unwrap_or(current);
    let from = q.from.unwrap_or(to - 1);
    let d = s.lab.definition_diff(&bench.actor, &code, from, to).await?;
    let shown = |v: &str| if v.is_empty() { "(none)".to_owned() } else { v.to_owned() };
    let changes = |list: &[definition_diff::Change]| {
        list.iter()
            .map(|c| (c.field.to_owned(), shown(&c.before), shown(&c.after)))
            .collect::<Vec<_>>()
    };
    let version = |v: &StoredDefinition| {
        (v.version, s.lab.format_time(v.created_at), v.created_by.clone(), v.reason.clone())
    };
    let page = DiffPage {
        page: Page::new(
            &bench,
            format!("{} ({}): version {from} → {to}", d.to.definition.name, code),
            "catalog",
        ),
        code: code.clone(),
        name: d.to.definition.name.clone(),
        from: version(&d.from),
        to: version(&d.to),
        fields: changes(&d.diff.fields),
        limits: changes(&d.diff.limits),
        intervals: d
            .diff
            .intervals
            .iter()
            .map(|c| match c {
                IntervalChange::Added { partition, interval } => {
                    ("added", partition.clone(), String::new(), interval.clone())
                }
                IntervalChange::Removed { partition, interval } => {
                    ("removed", partition.clone(), interval.clone(), String::new())
                }
                IntervalChange::Changed { partition, before, after } => {
                    ("changed", partition.clone(), before.clone(), after.clone())
                }
            })
            .collect(),
    };
    Ok(Html(page.render()?))
}

/// The import form, exactly as typed.
#[derive(Deserialize, Default)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    catalog: String,
    #[serde(default)]
    reason: String,
    /// `preview` or `apply`: which button was pressed.
    #[serde(default)]
    mode: String,
}

#[derive(Template)]
#[template(path = "catalog_import.html")]
struct ImportPage {
    page: Page,
    form: ImportForm,
    outcome: Option<ImportOutcome>,
}

/// What an import changed, or would change, as the page lists it.
struct ImportOutcome {
    applied: bool,
    tests: Vec<(String, String, String, Vec<String>)>,
    panels: Vec<String>,
    unchanged: usize,
}

impl From<&CatalogImport> for ImportOutcome {
    fn from(i: &CatalogImport) -> ImportOutcome {
        ImportOutcome {
            applied: i.applied,
            tests: i
                .tests
                .iter()
                .map(|t| {
                    let versions = match (t.replaces, t.version) {
                        (Some(old), Some(new)) => format!("{old} → {new}"),
                        (None, Some(new)) => format!("new, {new}"),
                        (Some(old), None) => format!("{old} → {}", old + 1),
                        (None, None) => "new".into(),
                    };
                    (t.code.clone(), t.name.clone(), versions, summary(&t.diff))
                })
                .collect(),
            panels: i.panels.clone(),
            unchanged: i.unchanged,
        }
    }
}

async fn import_page(State(_s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    bench.require(Action::EditCatalog)?;
    let page = ImportPage {
        page: Page::new(&bench, "Import a catalog", "catalog"),
        form: ImportForm::default(),
        outcome: None,
    };
    Ok(Html(page.render()?))
}

/// Previews or carries out an import; a refusal keeps what was pasted and names every gap.
async fn import_catalog(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<ImportForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    bench.require(Action::EditCatalog)?;
    let mode = match form.mode.as_str() {
        "apply" => ImportMode::Apply,
        _ => ImportMode::Preview,
    };
    let outcome = s.lab.import_catalog(&bench.actor, &form.catalog, &form.reason, mode).await;
    let (status, page, outcome) = match outcome {
        Ok(import) => (
            StatusCode::OK,
            Page::new(&bench, "Import a catalog", "catalog"),
            Some(ImportOutcome::from(&import)),
        ),
        Err(AppError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Page::new(&bench, "Import a catalog", "catalog").with_errors(errors),
            None,
        ),
        Err(AppError::Conflict(m)) => (
            StatusCode::CONFLICT,
            Page::new(&bench, "Import a catalog", "catalog")
                .with_errors(vec![FieldError { field: "catalog".into(), message: m }]),
            None,
        ),
        Err(e) => return Err(e.into()),
    };
    Ok((status, Html(ImportPage { page, form, outcome }.render()?)).into_response())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Page,
    users: Vec<UserRow>,
    roles: Vec<(&'static str, String)>,
    form: UserForm,
}

#[derive(Deserialize, Default)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

fn roles() -> Vec<(&'static str, String)> {
    ROLES.iter().map(|r| (r.code(), r.to_string())).collect()
}

async fn users(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    let users = s.lab.users(&bench.actor).await?;
    Ok(Html(
        UsersPage {
            page: Page::new(&bench, "Users", "users"),
            users,
            roles: roles(),
            form: UserForm::default(),
        }
        .render()?,
    ))
}

async fn add_user(
    State(s): State<AppState>,
    bench: Bench,
    Form(mut form): Form<UserForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let outcome = match Role::parse(&form.role) {
        Some(role) => {
            let new = NewUser {
                username: form.username.clone(),
                display_name: form.display_name.clone(),
                role,
                password: form.password.clone(),
            };
            s.lab.add_user(&bench.actor, new).await
        }
        None => Err(AppError::invalid("role", "choose a role")),
    };
    match outcome {
        Ok(_) => Ok(Redirect::to("/users").into_response()),
        Err(AppError::Invalid(errors)) => {
            let users = s.lab.users(&bench.actor).await?;
            form.password.clear(); // never echo a password back
            let page = UsersPage {
                page: Page::new(&bench, "Users", "users").with_errors(errors),
                users,
                roles: roles(),
                form,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(AppError::Conflict(m)) => {
            let users = s.lab.users(&bench.actor).await?;
            form.password.clear();
            let errors = vec![FieldError { field: "username".into(), message: m }];
            let page = UsersPage {
                page: Page::new(&bench, "Users", "users").with_errors(errors),
                users,
                roles: roles(),
                form,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct EditUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    active: Option<String>,
}

async fn edit_user(
    State(s): State<AppState>,
    bench: Bench,
    Path(username): Path<String>,
    Form(form): Form<EditUserForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let role = Role::parse(&form.role).ok_or_else(|| AppError::invalid("role", "choose a role"))?;
    match s.lab.update_user(&bench.actor, &username, role, form.active.is_some()).await {
        Ok(()) => Ok(Redirect::to("/users").into_response()),
        Err(AppError::Invalid(errors)) => {
            let users = s.lab.users(&bench.actor).await?;
            let page = UsersPage {
                page: Page::new(&bench, "Users", "users").with_errors(errors),
                users,
                roles: roles(),
                form: UserForm::default(),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "sign_in_delays.html")]
struct SignInDelaysPage {
    page: Page,
    rows: Vec<DelayRow>,
    account_free: u32,
    address_free: u32,
    delay_max_seconds: i64,
    form: DelayForm,
}

/// One slowed-down account or address, as shown.
struct DelayRow {
    kind: &'static str,
    label: String,
    key: String,
    failures: u32,
    last_failure_at: String,
    allowed_from: String,
    waiting: bool,
    refused: u32,
}

/// Which delay to clear, exactly as typed or sent by a row's button.
#[derive(Deserialize, Default)]
struct DelayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    key: String,
}

async fn delays_page(
    s: &AppState,
    bench: &Bench,
    form: DelayForm,
    errors: Vec<FieldError>,
    notice: Option<String>,
) -> Result<String, WebError> {
    let delays = s.lab.sign_in_delays(&bench.actor).await?;
    let time = |t: jiff::Timestamp| s.lab.format_time(t.into());
    let rows = delays
        .into_iter()
        .map(|d| DelayRow {
            kind: d.key.kind(),
            label: match &d.key {
                cuvette_app::SignInKey::Account(name) => format!("Account {name}"),
                cuvette_app::SignInKey::Address(ip) => format!("Address {ip}"),
            },
            key: d.key.value(),
            failures: d.failures,
            last_failure_at: time(d.last_failure_at),
            allowed_from: d
                .allowed_from
                .to_zoned_datetime(s.lab.config().time_zone.clone())
                .strftime("%H:%M:%S")
                .to_string(),
            waiting: d.waiting,
            refused: d.refused,
        })
        .collect();
    let config = s.lab.config();
    Ok(SignInDelaysPage {
        page: Page::new(bench, "Sign-in delays", "users").with_errors(errors).with_notice(notice),
        rows,
        account_free: config.throttle_account_free_failures,
        address_free: config.throttle_address_free_failures,
        delay_max_seconds: config.throttle_delay_max_seconds,
        form,
    }
    .render()?)
}

/// Accounts and addresses whose sign-ins are slowed down after failed attempts.
async fn sign_in_delays(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    bench.require(Action::ManageUsers)?;
    Ok(Html(delays_page(&s, &bench, DelayForm::default(), vec![], None).await?))
}

/// Clears one delay; a key that is not slowed down comes back on the field, as typed.
async fn clear_sign_in_delay(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<DelayForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    bench.require(Action::ManageUsers)?;
    let outcome = match cuvette_app::SignInKey::parse(&form.kind, &form.key) {
        Ok(key) => s.lab.clear_sign_in_delay(&bench.actor, &key).await.map(|()| key),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(key) => {
            let notice =
                Some(format!("Cleared the sign-in delay of {} {}", key.kind(), key.value()));
            Ok(Html(delays_page(&s, &bench, DelayForm::default(), vec![], notice).await?)
                .into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let body = delays_page(&s, &bench, form, errors, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// One cell of the privilege grid.
struct Cell {
    name: String,
    granted: bool,
    locked: bool,
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    page: Page,
    roles: Vec<String>,
    rows: Vec<(String, Vec<Cell>)>,
}

fn roles_grid(
    privileges: &cuvette_domain::role::Privileges,
) -> (Vec<String>, Vec<(String, Vec<Cell>)>) {
    let roles = ROLES.iter().map(|r| r.to_string()).collect();
    let rows = cuvette_domain::role::ACTIONS
        .iter()
        .map(|a| {
            let cells = ROLES
                .iter()
                .map(|r| Cell {
                    name: format!("{}.{}", r.code(), a.code()),
                    granted: privileges.may(*r, *a),
                    locked: *r == Role::Pathologist
                        || (*r == Role::Student
                            && matches!(a, Action::VerifyRoutine | Action::VerifyAbnormal)),
                })
                .collect();
            (a.to_string(), cells)
        })
        .collect();
    (roles, rows)
}

async fn roles_page(State(s): State<AppState>, bench: Bench) -> Result<Html<String>, WebError> {
    bench.require(Action::ManageUsers)?;
    let (roles, rows) = roles_grid(&s.lab.privileges());
    Ok(Html(
        RolesPage { page: Page::new(&bench, "Roles and privileges", "users"), roles, rows }
            .render()?,
    ))
}

async fn save_roles(
    State(s): State<AppState>,
    bench: Bench,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    bench.check_csrf(csrf)?;
    let granted: Vec<(Role, Action)> = fields
        .iter()
        .filter_map(|(k, _)| {
            let (r, a) = k.split_once('.')?;
            Some((Role::parse(r)?, Action::parse(a)?))
        })
        .collect();
    match s.lab.save_privileges(&bench.actor, &granted).await {
        Ok(()) => Ok(Redirect::to("/roles").into_response()),
        Err(AppError::Invalid(errors)) => {
            let (roles, rows) = roles_grid(&s.lab.privileges());
            let page = RolesPage {
                page: Page::new(&bench, "Roles and privileges", "users").with_errors(errors),
                roles,
                rows,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    entity_id: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    verify: String,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: Some(self.actor.trim().to_owned()).filter(|a| !a.is_empty()),
            action: AuditAction::parse(self.action.trim()),
            entity: Some(self.entity.trim().to_owned())
                .filter(|e| !e.is_empty())
                .map(|e| (e, self.entity_id.trim().to_owned())),
            patient_id: self.patient_id.trim().parse().ok(),
            before_seq: self.before.trim().parse().ok(),
        }
    }
}

struct AuditLine {
    seq: i64,
    at: String,
    actor: String,
    action: &'static str,
    action_label: &'static str,
    alarm: bool,
    entity: String,
    entity_id: String,
    /// What changed, field by field.
    changes: Vec<DiffLine>,
    /// The states as recorded (JSON), behind a disclosure for whoever needs the exact text.
    before: String,
    after: String,
}

/// Events an auditor looks for first: refused or failed attempts at the record, locked
/// accounts, and what the lab let slip (a message the EHR never got, a critical call past its
/// limit, a rejected QC run). Every action is named, so a new one is decided here.
fn calls_for_attention(action: AuditAction) -> bool {
    use AuditAction as A;
    match action {
        A::LoginFail
        | A::LoginLockout
        | A::LoginRefusedInactive
        | A::LoginRefusedLocked
        | A::LoginThrottle
        | A::SignatureFail
        | A::SpecimenReceiveRefused
        | A::OutboxGiveUp
        | A::CriticalEscalate
        | A::QcRunReject
        | A::AutoverifySuspend
        | A::StaffPrivilegeRefused => true,
        A::Login
        | A::LoginThrottleClear
        | A::SessionTimeout
        | A::Logout
        | A::ApiKeyCreate
        | A::UserAdd
        | A::UserEdit
        | A::PrivilegesEdit
        | A::CatalogSeed
        | A::CatalogEdit
        | A::CatalogSynonymAdd
        | A::CatalogSynonymRemove
        | A::CatalogImport
        | A::PatientRegister
        | A::PatientViewResults
        | A::ResultsViewList
        | A::OrderPlace
        | A::SpecimenView
        | A::Search
        | A::SpecimenCollect
        | A::SpecimenReceive
        | A::SpecimenReject
        | A::SpecimenRecollect
        | A::SpecimenCondition
        | A::ResultEnter
        | A::ResultCorrect
        | A::ResultRelease
        | A::ResultCosignRelease
        | A::ResultAutoverifyRelease
        | A::ResultSend
        | A::ResultAttachmentView
        | A::CriticalCall
        | A::CriticalAttempt
        | A::OutboxRetry
        | A::InstrumentAdd
        | A::InstrumentEdit
        | A::InstrumentMapCode
        | A::InstrumentQcPattern
        | A::InstrumentSpecimenIdComponent
        | A::InstrumentCharset
        | A::InstrumentIgnoreCode
        | A::InstrumentMapFlag
        | A::InstrumentUnmappedResults
        | A::InstrumentAllowedPeers
        | A::QuarantineDismiss
        | A::QuarantineReplay
        | A::AutoverifySave
        | A::AutoverifyApprove
        | A::QcMaterialAdd
        | A::QcTargetSet
        | A::QcTargetAdoptLab
        | A::QcRulesSet
        | A::QcRun
        | A::QcCorrectiveAction
        | A::QcMovingAverageSet
        | A::StaffRecordSave
        | A::StaffAuthorise
        | A::StaffCompetency
        | A::StaffPolicy
        | A::StaffRotation
        | A::StaffRotationSignOff => false,
    }
}

/// The choices of the action filter: every action, by its label.
struct ActionChoice {
    code: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    actions: Vec<ActionChoice>,
    q: AuditQuery,
    lines: Vec<AuditLine>,
    verification: Option<String>,
    next_before: Option<i64>,
}

fn lines(s: &AppState, events: &[AuditEvent]) -> Vec<AuditLine> {
    events
        .iter()
        .map(|e| AuditLine {
            seq: e.seq,
            at: s.lab.format_time(e.at),
            actor: e.actor.clone(),
            action: e.action.code(),
            action_label: e.action.label(),
            alarm: calls_for_attention(e.action),
            entity: e.entity.clone(),
            entity_id: e.entity_id.clone(),
            changes: diff(e.before.as_deref(), e.after.as_deref()),
            before: e.before.clone().unwrap_or_default(),
            after: e.after.clone().unwrap_or_default(),
        })
        .collect()
}

async fn audit(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, WebError> {
    let events = s.lab.audit_events(&bench.actor, &q.filter()).await?;
    let verification = if q.verify.is_empty() {
        None
    } else {
        Some(match s.lab.verify_audit(&bench.actor).await? {
            AuditVerification::Intact { events } => {
                format!("The audit chain is intact: {events} events verified.")
            }
            AuditVerification::Broken { seq, reason } => {
                format!("The audit chain is BROKEN at event {seq}: {reason}.")
            }
        })
    };
    let next_before = (events.len() as i64 == cuvette_app::records::AUDIT_PAGE_LEN)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let page = AuditPage {
        page: Page::new(&bench, "Audit log", "audit"),
        actions: AuditAction::ALL
            .iter()
            .map(|a| ActionChoice { code: a.code(), label: a.label() })
            .collect(),
        lines: lines(&s, &events),
        q,
        verification,
        next_before,
    };
    Ok(Html(page.render()?))
}

async fn audit_csv(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    let events = s.lab.audit_events(&bench.actor, &q.filter()).await?;
    let out = audit_csv_body(&events);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"cuvette-audit.csv\""),
        ],
        out,
    )
        .into_response())
}

/// The audit trail as CSV: an auditor opens it in a spreadsheet, so every text field (a patient
/// name inside `after`, a user name) is guarded against running as a formula.
fn audit_csv_body(events: &[AuditEvent]) -> String {
    use crate::csv_export::{Csv, Field};
    let mut out = Csv::new(&[
        "seq",
        "at_utc",
        "actor",
        "action",
        "action_label",
        "entity",
        "entity_id",
        "before",
        "after",
        "hash",
    ]);
    for e in events {
        let at = e.at.to_jiff().map(|t| t.to_string()).unwrap_or_default();
        out.row(&[
            Field::Value(&e.seq.to_string()),
            Field::Value(&at),
            Field::Text(&e.actor),
            Field::Value(e.action.code()),
            Field::Value(e.action.label()),
            Field::Text(&e.entity),
            Field::Text(&e.entity_id),
            Field::Text(e.before.as_deref().unwrap_or_default()),
            Field::Text(e.after.as_deref().unwrap_or_default()),
            Field::Text(&e.hash),
        ]);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(entity_id: &str, after: &str) -> AuditEvent {
        AuditEvent {
            seq: 7,
            at: cuvette_domain::time::Timestamp::from_micros(1_700_000_000_000_000),
            actor: "@admin".into(),
            action: AuditAction::PatientRegister,
            entity: "patient".into(),
            entity_id: entity_id.into(),
            patient_id: Some(3),
            before: None,
            after: Some(after.into()),
            prev_hash: "00".into(),
            hash: "ab12".into(),
        }
    }

    #[test]
    fn the_audit_export_never_hands_a_spreadsheet_a_formula() {
        let formula = "=HYPERLINK(\"http://x\",\"y\")";
        let body = audit_csv_body(&[event(formula, formula)]);
        let mut lines = body.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("seq,at_utc,actor,action,action_label,entity,entity_id,before,after,hash")
        );
        assert_eq!(
            lines.next(),
            Some(
                "7,2023-11-14T22:13:20Z,'@admin,patient.register,Patient registered,patient,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",ab12"
            )
        );
        assert_eq!(lines.next(), Some(""), "one row, CRLF-terminated");
    }
}
