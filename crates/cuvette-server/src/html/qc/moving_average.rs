//! Patient moving averages: the rule's form, and the chart of the averages against its limits.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::records::MovingAverageRow;
use cuvette_app::{AppError, FieldError};
use serde::Deserialize;

use super::format::{decimals, error, fixed, padded, parse_decimal, prefixed, tick_label};
use super::overview::{Typed, refused_overview};
use super::views::{Choice, test_choices};
use crate::AppState;
use crate::auth::Bench;
use crate::chart::{self, ChartPoint, MovingAverageChart};
use crate::error::WebError;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MaInput {
    csrf: String,
    pub(super) instrument_id: String,
    pub(super) test_code: String,
    pub(super) window_size: String,
    pub(super) truncate_low: String,
    pub(super) truncate_high: String,
    pub(super) target: String,
    pub(super) lower_limit: String,
    pub(super) upper_limit: String,
}

/// Reads the moving-average form into a rule, or says what is wrong with each field.
pub(super) fn moving_average_rule(
    form: &MaInput,
    tests: &[Choice],
) -> Result<MovingAverageRow, Vec<FieldError>> {
    let mut errors = Vec::new();
    let instrument_id = form.instrument_id.trim().parse::<i64>().ok();
    if instrument_id.is_none() {
        errors.push(error("instrument_id", "choose the instrument"));
    }
    let test_code = form.test_code.trim();
    if !tests.iter().any(|t| t.value == test_code) {
        errors.push(error("test_code", "choose a numeric test from the catalog"));
    }
    let window_size = form.window_size.trim().parse::<i64>().ok();
    if window_size.is_none() {
        errors.push(error("window_size", "give the number of results to average, 5 to 500"));
    }
    let mut optional = |field: &str, text: &str| match parse_decimal(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(error(field, e.to_string()));
            None
        }
    };
    let truncate_low = optional("truncate_low", &form.truncate_low);
    let truncate_high = optional("truncate_high", &form.truncate_high);
    let target = optional("target", &form.target);
    let lower_limit = optional("lower_limit", &form.lower_limit);
    let upper_limit = optional("upper_limit", &form.upper_limit);
    for (field, value, what) in [
        ("target", target, "the target average"),
        ("lower_limit", lower_limit, "the lower control limit"),
        ("upper_limit", upper_limit, "the upper control limit"),
    ] {
        if value.is_none() && !errors.iter().any(|e| e.field == field) {
            errors.push(error(field, format!("give {what}")));
        }
    }
    if let (Some(low), Some(high)) = (truncate_low, truncate_high)
        && low >= high
    {
        errors.push(error("truncate_high", "the upper truncation limit must be above the lower"));
    }
    match (instrument_id, window_size, target, lower_limit, upper_limit) {
        (Some(instrument_id), Some(window_size), Some(target), Some(lower), Some(upper))
            if errors.is_empty() =>
        {
            Ok(MovingAverageRow {
                instrument_id,
                test_code: test_code.to_owned(),
                window_size,
                truncate_low,
                truncate_high,
                target,
                lower_limit: lower,
                upper_limit: upper,
            })
        }
        _ => Err(errors),
    }
}

pub(super) async fn set_moving_average(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<MaInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let outcome = match moving_average_rule(&form, &test_choices(&s)) {
        Ok(rule) => s.lab.set_moving_average(&bench.actor, &rule).await,
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/qc?done=ma").into_response()),
        Err(AppError::Invalid(errors)) => {
            let typed = Typed { ma: form, ..Typed::default() };
            refused_overview(&s, &bench, prefixed(errors, "ma-"), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn moving_average_svg(
    s: &AppState,
    rule: &MovingAverageRow,
    averages: &[cuvette_app::qc::AveragePoint],
    instrument_name: &str,
    unit: &str,
    fallback: (i64, i64),
) -> String {
    let tz = s.lab.config().time_zone.clone();
    let decimals = decimals((rule.upper_limit - rule.lower_limit) / 2.0);
    let points: Vec<ChartPoint> = averages
        .iter()
        .enumerate()
        .map(|(i, a)| ChartPoint {
            id: i as i64 + 1,
            at: a.at,
            value: a.average,
            rules: if !a.out_of_control {
                Vec::new()
            } else if a.average > rule.upper_limit {
                vec!["above upper limit".to_owned()]
            } else {
                vec!["below lower limit".to_owned()]
            },
            rejected: a.out_of_control,
            note: format!(
                "{} · average {} {unit}",
                s.lab.format_time(a.at),
                fixed(a.average, decimals)
            ),
        })
        .collect();
    // The series is the newest results, whenever they were: its own span, or `fallback`.
    let (from, to) = match (averages.first(), averages.last()) {
        (Some(first), Some(last)) => padded(first.at, last.at),
        _ => fallback,
    };
    let span = to.saturating_sub(from);
    let label = |us: i64| tick_label(us, &tz, span);
    let title = format!(
        "{} · {instrument_name} · moving average of {} patient results",
        rule.test_code, rule.window_size
    );
    chart::moving_average_chart(&MovingAverageChart {
        title: &title,
        unit,
        target: rule.target,
        lower_limit: rule.lower_limit,
        upper_limit: rule.upper_limit,
        points: &points,
        from,
        to,
        time_label: &label,
    })
}
