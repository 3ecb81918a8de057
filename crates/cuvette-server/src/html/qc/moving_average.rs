//! Patient moving averages: the rule's form, and the chart of the averages against its limits.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::AppError;
use cuvette_app::qc::MovingAverageForm;
use cuvette_app::records::MovingAverageRow;
use serde::Deserialize;

use super::format::{decimals, fixed, padded, prefixed, tick_label};
use super::overview::{Typed, refused_overview};
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

impl MaInput {
    /// The rule's fields as typed, for the app to read.
    fn typed(&self) -> MovingAverageForm {
        MovingAverageForm {
            instrument_id: self.instrument_id.clone(),
            test_code: self.test_code.clone(),
            window_size: self.window_size.clone(),
            truncate_low: self.truncate_low.clone(),
            truncate_high: self.truncate_high.clone(),
            target: self.target.clone(),
            lower_limit: self.lower_limit.clone(),
            upper_limit: self.upper_limit.clone(),
        }
    }
}

pub(super) async fn set_moving_average(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<MaInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.set_moving_average_as_typed(&bench.actor, &form.typed()).await {
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
            at: a.at.as_micros(),
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
        (Some(first), Some(last)) => padded(first.at.as_micros(), last.at.as_micros()),
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
