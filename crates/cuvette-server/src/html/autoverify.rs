//! Autoverification set-up (CLSI AUTO10/AUTO15, DOMAIN §6): every measured test's rule set,
//! the form a director approves one with, a dry run over the lab's own results before it is
//! switched on, and the switch that suspends autoverification everywhere at once.
//!
//! Nothing is judged here: `cuvette_domain::autoverify` decides, `cuvette_app` stores the rules
//! and checks who may approve them. This module reads what was typed, keeps it when a save is
//! refused, and draws the outcome.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::autoverify::{DryRun, RuleSetForm, RuleSetView};
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::autoverify::{AutoverifyRules, AvRule};
use cuvette_domain::delta::DELTA_WINDOW_HOURS_MAX;
use cuvette_domain::role::ROLES;
use cuvette_domain::workflow::SpecimenCondition;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::critical::{DayRange, day_range, default_days};
use crate::AppState;
use crate::auth::{Bench, urlencode};
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/autoverify", get(list))
        .route("/autoverify/suspend", post(suspend))
        .route("/autoverify/{test_code}", get(show).post(save))
        .route("/autoverify/{test_code}/dry-run", get(dry_run_query).post(dry_run_form))
}

/// The store reads at most this many results for a dry run.
const DRY_RUN_RESULTS_MAX: usize = 5000;

/// The roles this lab lets approve rule sets, in words.
fn approvers(bench: &Bench) -> String {
    let roles: Vec<String> = ROLES
        .iter()
        .filter(|r| bench.privileges.may(**r, Action::ApproveAutoverification))
        .map(|r| r.to_string())
        .collect();
    if roles.is_empty() { "no role in this lab yet".into() } else { roles.join(", ") }
}

/// Status chip of a rule set: CSS class and text.
fn state_of(v: &RuleSetView) -> (&'static str, &'static str) {
    match (v.stored, v.rules.enabled) {
        (true, true) => ("on", "✓ Enabled"),
        (true, false) => ("off", "Stored, switched off"),
        (false, _) => ("default", "Default, not set up"),
    }
}

fn updated_text(s: &AppState, v: &RuleSetView) -> String {
    v.updated
        .as_ref()
        .map(|(who, at)| format!("{who} · {}", s.lab.format_time(*at)))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// GET /autoverify, POST /autoverify/suspend

struct RuleLine {
    code: String,
    name: String,
    state: &'static str,
    state_label: &'static str,
    fingerprint: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "autoverify.html")]
struct ListPage {
    page: Page,
    lines: Vec<RuleLine>,
    enabled_count: usize,
    may_approve: bool,
    approvers: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    suspended: String,
}

async fn list(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let sets = s.lab.autoverify_rule_sets(&bench.actor).await?;
    let notice = q.suspended.parse::<usize>().ok().map(|n| match n {
        0 => "Autoverification was already off for every test: nothing was suspended.".to_owned(),
        n => format!(
            "Autoverification suspended for {n} {}: every result now waits for a person. The \
             rules are kept; switch each test on again from its page.",
            if n == 1 { "test" } else { "tests" }
        ),
    });
    let lines: Vec<RuleLine> = sets
        .iter()
        .map(|v| {
            let (state, state_label) = state_of(v);
            RuleLine {
                code: v.test_code.clone(),
                name: v.test_name.clone(),
                state,
                state_label,
                fingerprint: v.fingerprint.clone(),
                updated: updated_text(&s, v),
            }
        })
        .collect();
    let page = ListPage {
        page: Page::new(&bench, "Autoverification", "autoverify").with_notice(notice),
        enabled_count: sets.iter().filter(|v| v.stored && v.rules.enabled).count(),
        lines,
        may_approve: bench.may(Action::ApproveAutoverification),
        approvers: approvers(&bench),
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn suspend(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let n = s.lab.suspend_autoverification(&bench.actor).await?;
    Ok(Redirect::to(&format!("/autoverify?suspended={n}")).into_response())
}

// ---------------------------------------------------------------------------------------------
// The rule set form.

/// The form as typed: text for every number, so a refused save shows exactly what was sent.
#[derive(Debug, Clone, Default)]
struct RuleForm {
    enabled: bool,
    require_qc: bool,
    block_instrument_flags: bool,
    hemolysis_max: String,
    icterus_max: String,
    lipemia_max: String,
    check_measurement_range: bool,
    hold_critical: bool,
    delta_absolute: String,
    delta_percent: String,
    delta_rate: String,
    delta_window: String,
    delta_require_all: bool,
    autoverify_low: String,
    autoverify_high: String,
    hold_outside_reference: bool,
    hold_codes: Vec<String>,
    /// The dry run's period.
    from: String,
    to: String,
}

/// What a POST (or a dry run's query) carried.
struct Posted {
    csrf: String,
    /// Whether the rule fields were sent at all: a read-only page disables them, and its dry
    /// run then runs the stored rules.
    typed: bool,
    form: RuleForm,
}

fn opt_text(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl RuleForm {
    fn of(rules: &AutoverifyRules) -> RuleForm {
        let delta = rules.delta.as_ref();
        RuleForm {
            enabled: rules.enabled,
            require_qc: rules.require_qc,
            block_instrument_flags: rules.block_instrument_flags,
            hemolysis_max: opt_text(rules.hemolysis_max),
            icterus_max: opt_text(rules.icterus_max),
            lipemia_max: opt_text(rules.lipemia_max),
            check_measurement_range: rules.check_measurement_range,
            hold_critical: rules.hold_critical,
            delta_absolute: opt_text(delta.and_then(|d| d.absolute)),
            delta_percent: opt_text(delta.and_then(|d| d.percent)),
            delta_rate: opt_text(delta.and_then(|d| d.rate_per_day)),
            delta_window: opt_text(delta.map(|d| d.window_hours)),
            delta_require_all: delta.is_some_and(|d| d.require_all),
            autoverify_low: opt_text(rules.autoverify_low),
            autoverify_high: opt_text(rules.autoverify_high),
            hold_outside_reference: rules.hold_outside_reference,
            hold_codes: rules.hold_comment_codes.clone(),
            from: String::new(),
            to: String::new(),
        }
    }

    /// Reads posted fields. A checkbox is on when it was sent at all.
    fn read(fields: Vec<(String, String)>) -> Posted {
        let mut f = RuleForm::default();
        let mut csrf = String::new();
        let mut typed = false;
        for (key, value) in fields {
            match key.as_str() {
                "csrf" => csrf = value,
                "rules" => typed = true,
                "enabled" => f.enabled = true,
                "require_qc" => f.require_qc = true,
                "block_instrument_flags" => f.block_instrument_flags = true,
                "hemolysis_max" => f.hemolysis_max = value,
                "icterus_max" => f.icterus_max = value,
                "lipemia_max" => f.lipemia_max = value,
                "check_measurement_range" => f.check_measurement_range = true,
                "hold_critical" => f.hold_critical = true,
                "delta_absolute" => f.delta_absolute = value,
                "delta_percent" => f.delta_percent = value,
                "delta_rate" => f.delta_rate = value,
                "delta_window" => f.delta_window = value,
                "delta_require_all" => f.delta_require_all = true,
                "autoverify_low" => f.autoverify_low = value,
                "autoverify_high" => f.autoverify_high = value,
                "hold_outside_reference" => f.hold_outside_reference = true,
                "hold_codes" => f.hold_codes.push(value),
                "from" => f.from = value,
                "to" => f.to = value,
                _ => {}
            }
        }
        Posted { csrf, typed, form: f }
    }

    /// The rule fields as typed, for the app to read.
    fn typed(&self) -> RuleSetForm {
        RuleSetForm {
            enabled: self.enabled,
            require_qc: self.require_qc,
            block_instrument_flags: self.block_instrument_flags,
            hemolysis_max: self.hemolysis_max.clone(),
            icterus_max: self.icterus_max.clone(),
            lipemia_max: self.lipemia_max.clone(),
            check_measurement_range: self.check_measurement_range,
            hold_critical: self.hold_critical,
            delta_absolute: self.delta_absolute.clone(),
            delta_percent: self.delta_percent.clone(),
            delta_rate: self.delta_rate.clone(),
            delta_window: self.delta_window.clone(),
            delta_require_all: self.delta_require_all,
            autoverify_low: self.autoverify_low.clone(),
            autoverify_high: self.autoverify_high.clone(),
            hold_outside_reference: self.hold_outside_reference,
            hold_codes: self.hold_codes.clone(),
        }
    }

    /// The rules as typed, or what to fix in each field (read by the app).
    fn parse(&self) -> Result<AutoverifyRules, Vec<FieldError>> {
        self.typed().rules()
    }
}

/// One condition-code checkbox.
struct CodeChoice {
    code: String,
    label: String,
    checked: bool,
}

/// The lab's condition codes, plus any code the rule set holds on that the list lacks (a rule
/// set stored through the API), so saving the form never drops it unseen.
fn code_choices(checked: &[String]) -> Vec<CodeChoice> {
    let is_checked = |code: &str| checked.iter().any(|c| c.trim().eq_ignore_ascii_case(code));
    let mut choices: Vec<CodeChoice> = SpecimenCondition::ALL
        .into_iter()
        .map(|condition| CodeChoice {
            code: condition.code().to_owned(),
            label: condition.words().to_owned(),
            checked: is_checked(condition.code()),
        })
        .collect();
    for c in checked {
        let c = c.trim();
        if !c.is_empty() && !choices.iter().any(|k| k.code.eq_ignore_ascii_case(c)) {
            choices.push(CodeChoice {
                code: c.to_owned(),
                label: "not in the lab's condition list".into(),
                checked: true,
            });
        }
    }
    choices
}

/// The dry run's report as the page shows it.
struct DryView {
    from: String,
    to: String,
    /// "as typed above" or "as stored".
    source: &'static str,
    /// Typed rules that differ from the stored ones.
    unsaved: bool,
    fingerprint: String,
    evaluated: usize,
    would_release: usize,
    would_hold: usize,
    release_percent: String,
    /// (rule, results it held, results it alone held).
    by_rule: Vec<(&'static str, usize, usize)>,
    examples: Vec<(String, String, String)>,
    capped: bool,
}

fn dry_view(run: DryRun, range: &DayRange, typed: bool, unsaved: bool) -> DryView {
    let r = &run.report;
    let by_rule = AvRule::ALL
        .iter()
        .map(|rule| {
            let held = r.held_by_rule.get(rule).copied().unwrap_or(0);
            let only = r.held_only_by_rule.get(rule).copied().unwrap_or(0);
            (rule.label(), held, only)
        })
        .filter(|(_, held, _)| *held > 0)
        .collect();
    DryView {
        from: range.from.clone(),
        to: range.to.clone(),
        source: if typed { "as typed above" } else { "as stored" },
        unsaved,
        fingerprint: r.fingerprint.clone(),
        evaluated: r.evaluated,
        would_release: r.would_release,
        would_hold: r.would_hold,
        release_percent: if r.evaluated == 0 {
            "–".into()
        } else {
            format!("{:.1}%", r.would_release as f64 * 100.0 / r.evaluated as f64)
        },
        by_rule,
        capped: r.evaluated >= DRY_RUN_RESULTS_MAX,
        examples: run.held_examples,
    }
}

#[derive(Template)]
#[template(path = "autoverify_edit.html")]
struct RulePage {
    page: Page,
    code: String,
    name: String,
    state: &'static str,
    state_label: &'static str,
    fingerprint: String,
    updated: String,
    /// What the catalog says about the test, as (label, text).
    facts: Vec<(&'static str, String)>,
    may_approve: bool,
    approvers: String,
    form: RuleForm,
    codes: Vec<CodeChoice>,
    window_hint: String,
    dry: Option<DryView>,
}

fn range_text(low: Option<Decimal>, high: Option<Decimal>, unit: &str) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{l}–{h} {unit}"),
        (Some(l), None) => format!("from {l} {unit}"),
        (None, Some(h)) => format!("up to {h} {unit}"),
        (None, None) => "none in the catalog".into(),
    }
}

fn rule_page(
    s: &AppState,
    bench: &Bench,
    view: &RuleSetView,
    form: RuleForm,
    errors: Vec<FieldError>,
) -> RulePage {
    let (state, state_label) = state_of(view);
    let catalog = s.lab.catalog();
    let facts = catalog
        .catalog
        .test(&view.test_code)
        .map(|d| {
            let critical_text = |low, high| match (low, high) {
                (None, None) => "none in the catalog".to_owned(),
                (Some(l), Some(h)) => format!("below {l} or above {h} {}", d.unit),
                (Some(l), None) => format!("below {l} {}", d.unit),
                (None, Some(h)) => format!("above {h} {}", d.unit),
            };
            let critical = critical_text(d.critical_low, d.critical_high);
            // The rule set reads the limits in force for each patient's age.
            let critical = if d.critical_by_age.is_empty() {
                critical
            } else {
                let by_age: Vec<String> = d
                    .critical_by_age
                    .iter()
                    .map(|r| {
                        let ages = cuvette_domain::partition::Band::of(r)
                            .map(|b| b.to_string())
                            .unwrap_or_default();
                        format!("{ages}: {}", critical_text(r.low, r.high))
                    })
                    .collect();
                format!("{critical} (other ages); {}", by_age.join("; "))
            };
            let delta = match (d.delta_abs, d.delta_percent) {
                (None, None) => "none in the catalog".to_owned(),
                (abs, pct) => {
                    let mut parts = Vec::new();
                    if let Some(a) = abs {
                        parts.push(format!("{a} {}", d.unit));
                    }
                    if let Some(p) = pct {
                        parts.push(format!("{p}%"));
                    }
                    let window =
                        d.delta_window_hours.map(|h| format!(" within {h} h")).unwrap_or_default();
                    format!("{}{window}", parts.join(" or "))
                }
            };
            vec![
                ("Unit", if d.unit.is_empty() { "none".into() } else { d.unit.clone() }),
                ("Measurement range", range_text(d.amr_low, d.amr_high, &d.unit)),
                ("Critical limits", critical),
                ("Catalog delta limits", delta),
            ]
        })
        .unwrap_or_default();
    let mut form = form;
    if form.from.trim().is_empty() && form.to.trim().is_empty() {
        (form.from, form.to) = default_days(&s.lab);
    }
    RulePage {
        page: Page::new(bench, format!("Autoverification · {}", view.test_code), "autoverify")
            .with_errors(errors),
        code: view.test_code.clone(),
        name: view.test_name.clone(),
        state,
        state_label,
        fingerprint: view.fingerprint.clone(),
        updated: updated_text(s, view),
        facts,
        may_approve: bench.may(Action::ApproveAutoverification),
        approvers: approvers(bench),
        codes: code_choices(&form.hold_codes),
        form,
        window_hint: format!(
            "Results further apart are not compared; 1 to {DELTA_WINDOW_HOURS_MAX} h"
        ),
        dry: None,
    }
}

fn render(status: StatusCode, page: &RulePage) -> Result<Response, WebError> {
    Ok((status, Html(page.render()?)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShowQuery {
    saved: String,
}

async fn show(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, WebError> {
    let view = s.lab.autoverify_rule_set(&bench.actor, &code).await?;
    let mut page = rule_page(&s, &bench, &view, RuleForm::of(&view.rules), Vec::new());
    page.page.notice = match q.saved.as_str() {
        "on" => Some(format!(
            "Saved and switched on ({}): results of {code} that pass every rule are now released \
             automatically.",
            view.fingerprint
        )),
        "off" => Some(format!(
            "Saved ({}). Autoverification of {code} is off: every result waits for a person.",
            view.fingerprint
        )),
        _ => None,
    };
    render(StatusCode::OK, &page)
}

async fn save(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let posted = RuleForm::read(fields);
    bench.check_csrf(&posted.csrf)?;
    bench.require(Action::ApproveAutoverification)?;
    let view = s.lab.autoverify_rule_set(&bench.actor, &code).await?;
    let form = posted.form;
    match s.lab.save_autoverify_form(&bench.actor, &view.test_code, &form.typed()).await {
        Ok(_) => {
            let saved = if form.enabled { "on" } else { "off" };
            let to = format!("/autoverify/{}?saved={saved}", urlencode(&view.test_code));
            Ok(Redirect::to(&to).into_response())
        }
        Err(AppError::Invalid(errors)) => {
            render(StatusCode::UNPROCESSABLE_ENTITY, &rule_page(&s, &bench, &view, form, errors))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// GET/POST /autoverify/{test_code}/dry-run

async fn dry_run_query(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Query(fields): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    // A dry run changes nothing, so a link may start one (with the stored rules, or with
    // rule fields in the query).
    dry_run(&s, &bench, &code, RuleForm::read(fields)).await
}

async fn dry_run_form(
    State(s): State<AppState>,
    bench: Bench,
    Path(code): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let posted = RuleForm::read(fields);
    bench.check_csrf(&posted.csrf)?;
    dry_run(&s, &bench, &code, posted).await
}

/// Runs the rules as typed (or, when none were sent, as stored) over the period and draws
/// the form again, with what was typed, above the report.
async fn dry_run(
    s: &AppState,
    bench: &Bench,
    code: &str,
    posted: Posted,
) -> Result<Response, WebError> {
    let view = s.lab.autoverify_rule_set(&bench.actor, code).await?;
    let form = if posted.typed {
        posted.form
    } else {
        RuleForm { from: posted.form.from, to: posted.form.to, ..RuleForm::of(&view.rules) }
    };
    let mut errors = Vec::new();
    let rules = form.parse().map_err(|e| errors.extend(e)).ok();
    let range = day_range(&s.lab, &form.from, &form.to).map_err(|e| errors.extend(e)).ok();
    let (Some(rules), Some(range)) = (rules, range) else {
        return render(StatusCode::UNPROCESSABLE_ENTITY, &rule_page(s, bench, &view, form, errors));
    };
    let run = s
        .lab
        .autoverify_dry_run(&bench.actor, &view.test_code, &rules, range.start, range.end)
        .await?;
    let unsaved = posted.typed && rules != view.rules;
    let form = RuleForm { from: range.from.clone(), to: range.to.clone(), ..form };
    let mut page = rule_page(s, bench, &view, form, Vec::new());
    page.dry = Some(dry_view(run, &range, posted.typed, unsaved));
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cuvette_domain::catalog::Catalog;

    fn k_rules() -> AutoverifyRules {
        AutoverifyRules::default_for(Catalog::bundled().test("K").unwrap())
    }

    fn fields(form: &RuleForm) -> Vec<(String, String)> {
        let mut f = vec![("csrf".to_owned(), "t".to_owned()), ("rules".into(), "typed".into())];
        let mut on = |k: &str, v: bool| {
            if v {
                f.push((k.into(), "yes".into()));
            }
        };
        on("enabled", form.enabled);
        on("require_qc", form.require_qc);
        on("block_instrument_flags", form.block_instrument_flags);
        on("check_measurement_range", form.check_measurement_range);
        on("hold_critical", form.hold_critical);
        on("delta_require_all", form.delta_require_all);
        on("hold_outside_reference", form.hold_outside_reference);
        for (k, v) in [
            ("hemolysis_max", &form.hemolysis_max),
            ("icterus_max", &form.icterus_max),
            ("lipemia_max", &form.lipemia_max),
            ("delta_absolute", &form.delta_absolute),
            ("delta_percent", &form.delta_percent),
            ("delta_rate", &form.delta_rate),
            ("delta_window", &form.delta_window),
            ("autoverify_low", &form.autoverify_low),
            ("autoverify_high", &form.autoverify_high),
        ] {
            f.push((k.into(), v.clone()));
        }
        for c in &form.hold_codes {
            f.push(("hold_codes".into(), c.clone()));
        }
        f
    }

    #[test]
    fn a_rule_set_survives_the_form() {
        let mut rules = k_rules();
        rules.hemolysis_max = Some(50);
        rules.autoverify_high = Some("5.8".parse().unwrap());
        rules.enabled = true;
        let posted = RuleForm::read(fields(&RuleForm::of(&rules)));
        assert!(posted.typed);
        assert_eq!(posted.csrf, "t");
        assert_eq!(posted.form.parse().unwrap(), rules);
    }

    #[test]
    fn no_delta_limit_means_no_delta_check() {
        let form = RuleForm {
            delta_absolute: " ".into(),
            delta_window: "48".into(),
            ..RuleForm::of(&k_rules())
        };
        assert_eq!(form.parse().unwrap().delta, None);
    }

    #[test]
    fn each_bad_field_gets_its_own_error() {
        let form = RuleForm {
            hemolysis_max: "fifty".into(),
            delta_absolute: "-1".into(),
            delta_window: "0".into(),
            autoverify_low: "3,5".into(),
            autoverify_high: "x".into(),
            ..RuleForm::of(&k_rules())
        };
        let errors = form.parse().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "hemolysis_max",
                "delta_absolute",
                "autoverify_low",
                "autoverify_high",
                "delta_window"
            ]
        );
        assert_eq!(
            errors[2].message,
            "The autoverification low limit: use a point, not a comma: 3.5, or leave it empty"
        );
    }

    #[test]
    fn an_inverted_range_and_a_bad_code_are_refused_on_their_fields() {
        let form = RuleForm {
            autoverify_low: "6".into(),
            autoverify_high: "3".into(),
            ..RuleForm::of(&k_rules())
        };
        assert_eq!(form.parse().unwrap_err()[0].field, "autoverify_low");
        let form = RuleForm { hold_codes: vec!["HEM OLY".into()], ..RuleForm::of(&k_rules()) };
        assert_eq!(form.parse().unwrap_err()[0].field, "hold_codes");
    }

    #[test]
    fn stored_codes_outside_the_list_stay_visible() {
        let choices = code_choices(&["hem".into(), "ODD".into()]);
        assert!(choices.iter().any(|c| c.code == "HEM" && c.checked));
        assert!(choices.iter().any(|c| c.code == "ODD" && c.checked));
        assert!(choices.iter().any(|c| c.code == "CLOT" && !c.checked));
    }
}
