//! The Levey-Jennings chart with its monthly statistics and sigma metric, and the same points
//! as CSV.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cuvette_app::qc::LeveyJenningsData;
use cuvette_app::records::QcPoint;
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::qc::{
    ControlStatistics, QcStatus, RUNS_TO_ESTABLISH_TARGET, RuleSet, SigmaRecommendation,
    TargetSource,
};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::format::{
    chart_href, decimals, error, fixed, iso_time, lab_today, lockout_href, number, render_with,
    signed, start_of, target_text, tick_label,
};
use super::moving_average::moving_average_svg;
use super::overview::done_notice;
use super::views::{status_words, unit_of};
use crate::AppState;
use crate::auth::Bench;
use crate::chart::{self, ChartPoint, LeveyJennings, LotChange};
use crate::error::WebError;
use crate::web::Page;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PeriodQuery {
    from: String,
    to: String,
    done: String,
}

/// The period asked for, as dates and as `[from, to)` in UTC microseconds.
pub(super) struct Period {
    from: Date,
    to: Date,
    from_us: i64,
    to_us: i64,
}

impl Period {
    /// The period's first instant.
    fn start(&self) -> cuvette_domain::time::Timestamp {
        cuvette_domain::time::Timestamp::from_micros(self.from_us)
    }

    /// The instant after the period (its end is exclusive).
    fn end(&self) -> cuvette_domain::time::Timestamp {
        cuvette_domain::time::Timestamp::from_micros(self.to_us)
    }
}

/// The longest period one chart covers.
pub(super) const PERIOD_DAYS_MAX: i64 = 731;

/// Reads `from`/`to` (dates in the lab's zone, both included); blank means the last 31 days.
/// A date that cannot be read is reported and the default used instead.
pub(super) fn period_of(q: &PeriodQuery, today: Date, tz: &TimeZone) -> (Period, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut read = |field: &str, text: &str, default: Date| {
        let text = text.trim();
        if text.is_empty() {
            return default;
        }
        text.parse::<Date>().unwrap_or_else(|_| {
            errors.push(error(field, "give the date as YYYY-MM-DD"));
            default
        })
    };
    let default_from = today.checked_sub(30.days()).unwrap_or(today);
    let mut to = read("to", &q.to, today);
    let mut from = read("from", &q.from, to.checked_sub(30.days()).unwrap_or(default_from));
    if from > to {
        errors.push(error("from", "the first day must not be after the last day"));
        (from, to) = (default_from, today);
    }
    let days = from.until(to).map(|span| i64::from(span.get_days())).unwrap_or(0);
    if days > PERIOD_DAYS_MAX {
        errors.push(error("from", format!("show at most {PERIOD_DAYS_MAX} days at once")));
        (from, to) = (default_from, today);
    }
    let from_us = start_of(from, tz).unwrap_or(0);
    let to_us = to.tomorrow().ok().and_then(|d| start_of(d, tz)).unwrap_or(i64::MAX);
    (Period { from, to, from_us, to_us }, errors)
}

/// A row of the statistics table.
pub(super) struct StatsRow {
    label: String,
    n: usize,
    mean: String,
    sd: String,
    cv: String,
    bias: String,
}

pub(super) fn stats_row(label: &str, st: &ControlStatistics, decimals: usize) -> StatsRow {
    StatsRow {
        label: label.to_owned(),
        n: st.n,
        mean: fixed(st.mean, decimals),
        sd: fixed(st.sd, decimals + 1),
        cv: fixed(st.cv_percent, 1),
        bias: st.bias_percent.map(|b| fixed(b, 1)).unwrap_or_default(),
    }
}

/// One control result in the tables under the chart.
pub(super) struct PointView {
    at: String,
    lot: String,
    value: String,
    z: String,
    rules: String,
    run_status: &'static str,
    rejected: bool,
    by: String,
}

pub(super) struct RecommendationView {
    rules: String,
    controls_per_run: u8,
    runs: u8,
    note: &'static str,
    /// Recommended rules the configured set lacks.
    missing: String,
}

pub(super) fn recommendation_view(
    rec: &SigmaRecommendation,
    configured: &RuleSet,
) -> RecommendationView {
    RecommendationView {
        rules: rec.rules.rules().iter().map(|r| r.code()).collect::<Vec<_>>().join(", "),
        controls_per_run: rec.controls_per_run,
        runs: rec.runs,
        note: rec.note,
        missing: rec
            .rules
            .rules()
            .iter()
            .filter(|r| !configured.contains(**r))
            .map(|r| r.code())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The other levels of the same test and instrument, for switching charts.
pub(super) struct LevelLink {
    pub(super) href: String,
    pub(super) label: String,
    pub(super) current: bool,
}

#[derive(Template)]
#[template(path = "qc_chart.html")]
pub(super) struct ChartPage {
    page: Page,
    target_id: i64,
    heading: String,
    test_code: String,
    instrument_name: String,
    unit: String,
    mean: String,
    sd: String,
    source: &'static str,
    is_lab_target: bool,
    manufacturer: String,
    svg: String,
    ma_svg: Option<String>,
    from: String,
    to: String,
    period_label: String,
    csv_href: String,
    lockout_href: String,
    months: Vec<StatsRow>,
    period: Option<StatsRow>,
    tea: String,
    sigma: String,
    recommendation: Option<RecommendationView>,
    configured_rules: String,
    runs_on_target: usize,
    runs_needed: usize,
    lab_target: Option<(String, String)>,
    may_adopt: bool,
    violations: Vec<PointView>,
    points: Vec<PointView>,
    levels: Vec<LevelLink>,
}

pub(super) fn point_views(s: &AppState, points: &[QcPoint], decimals: usize) -> Vec<PointView> {
    points
        .iter()
        .map(|p| PointView {
            at: s.lab.format_time(p.at),
            lot: p.lot.clone(),
            value: fixed(p.value, decimals),
            z: signed(p.z),
            rules: p.rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(", "),
            run_status: status_words(&p.run_status),
            rejected: is_rejection(p),
            by: p.entered_by.clone(),
        })
        .collect()
}

/// A point of a rejected run that violated a rule other than the 1-2s warning.
pub(super) fn is_rejection(p: &QcPoint) -> bool {
    p.run_status == QcStatus::Rejected && p.rules.iter().any(|r| !r.is_warning())
}

pub(super) async fn chart_page(
    s: &AppState,
    bench: &Bench,
    target_id: i64,
    q: &PeriodQuery,
    mut errors: Vec<FieldError>,
) -> Result<ChartPage, WebError> {
    let tz = s.lab.config().time_zone.clone();
    let (period, period_errors) = period_of(q, lab_today(s), &tz);
    errors.extend(period_errors);
    let data: LeveyJenningsData =
        s.lab.levey_jennings(&bench.actor, target_id, period.start(), period.end()).await?;
    let t = &data.target;
    let unit = unit_of(s, &t.test_code);
    let decimals = decimals(t.sd);
    let heading = format!(
        "{} · {} · level {} (lot {})",
        t.test_code, t.instrument_name, t.material.level, t.material.lot
    );
    let span = period.to_us.saturating_sub(period.from_us);
    let label = |us: i64| tick_label(us, &tz, span);
    let points: Vec<ChartPoint> = data
        .points
        .iter()
        .map(|p| ChartPoint {
            id: p.id,
            at: p.at.as_micros(),
            // A point of another lot is placed by the z it was judged with against its own
            // lot's target, so it stands against these lines where it stood against its
            // own; its note keeps the value measured.
            value: if p.target_id == data.target.id {
                p.value
            } else {
                data.target.mean + p.z * data.target.sd
            },
            rules: p.rules.iter().map(|r| r.code().to_owned()).collect(),
            rejected: is_rejection(p),
            note: format!(
                "{} · {} {unit} · {} SD · lot {} · {}",
                s.lab.format_time(p.at),
                fixed(p.value, decimals),
                signed(p.z),
                p.lot,
                p.entered_by
            ),
        })
        .collect();
    let lot_changes: Vec<LotChange> = data
        .lot_changes
        .iter()
        .map(|(at, label)| LotChange { at: at.as_micros(), label: label.clone() })
        .collect();
    let svg = chart::levey_jennings(&LeveyJennings {
        title: &heading,
        unit: &unit,
        mean: t.mean,
        sd: t.sd,
        points: &points,
        lot_changes: &lot_changes,
        from: period.from_us,
        to: period.to_us,
        time_label: &label,
    });
    let series =
        s.lab.moving_average_series(&bench.actor, t.instrument_id, &t.test_code, 500).await?;
    let ma_svg = series.map(|(rule, averages)| {
        let fallback = (period.from_us, period.to_us);
        moving_average_svg(s, &rule, &averages, &t.instrument_name, &unit, fallback)
    });
    let months = data.months.iter().map(|m| stats_row(&m.month, &m.stats, decimals)).collect();
    let levels = s
        .lab
        .qc_targets(&bench.actor, Some(t.instrument_id), Some(&t.test_code))
        .await?
        .into_iter()
        .map(|o| LevelLink {
            href: format!("{}?from={}&to={}", chart_href(o.id), period.from, period.to),
            label: format!("Level {} (lot {})", o.material.level, o.material.lot),
            current: o.id == t.id,
        })
        .collect();
    Ok(ChartPage {
        page: Page::new(bench, format!("QC chart · {heading}"), "qc")
            .with_errors(errors)
            .with_notice(done_notice(&q.done)),
        target_id,
        test_code: t.test_code.clone(),
        instrument_name: t.instrument_name.clone(),
        mean: target_text(t.mean, t.sd).0,
        sd: target_text(t.mean, t.sd).1,
        source: t.source.words(),
        is_lab_target: t.source == TargetSource::Lab,
        manufacturer: {
            let (mean, sd) = target_text(t.manufacturer_mean, t.manufacturer_sd);
            format!("{mean} ± {sd}")
        },
        svg,
        ma_svg,
        from: q_or(&q.from, period.from),
        to: q_or(&q.to, period.to),
        period_label: format!(
            "{} to {}",
            period.from.strftime("%d-%b-%Y"),
            period.to.strftime("%d-%b-%Y")
        ),
        csv_href: format!("{}.csv?from={}&to={}", chart_href(target_id), period.from, period.to),
        lockout_href: lockout_href(t.instrument_id, &t.test_code),
        months,
        period: data.period.as_ref().map(|p| stats_row("Period", p, decimals)),
        tea: data.tea_percent.map(|v| fixed(v, 1)).unwrap_or_default(),
        sigma: data.sigma.map(|v| fixed(v, 1)).unwrap_or_default(),
        recommendation: data.recommendation.as_ref().map(|r| recommendation_view(r, &data.rules)),
        configured_rules: data
            .rules
            .rules()
            .iter()
            .map(|r| r.code())
            .collect::<Vec<_>>()
            .join(", "),
        runs_on_target: data.runs_on_target,
        runs_needed: RUNS_TO_ESTABLISH_TARGET,
        lab_target: data.lab_target.map(|(m, sd)| (fixed(m, decimals), fixed(sd, decimals + 1))),
        may_adopt: bench.may(Action::ManageQc) && t.source == TargetSource::Manufacturer,
        violations: point_views(s, &data.points, decimals)
            .into_iter()
            .filter(|p| !p.rules.is_empty())
            .collect(),
        points: point_views(s, &data.points, decimals),
        levels,
        unit,
        heading,
    })
}

/// What goes back into the date field: what was typed, or the date used.
pub(super) fn q_or(typed: &str, used: Date) -> String {
    if typed.trim().is_empty() { used.to_string() } else { typed.trim().to_owned() }
}

pub(super) async fn chart_or_csv(
    State(s): State<AppState>,
    bench: Bench,
    Path(target): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    let not_found = || WebError::App(AppError::NotFound("no such QC chart".into()));
    if let Some(id) = target.strip_suffix(".csv") {
        let id = id.parse::<i64>().map_err(|_| not_found())?;
        return csv(&s, &bench, id, &q).await;
    }
    let id = target.parse::<i64>().map_err(|_| not_found())?;
    let page = chart_page(&s, &bench, id, &q, vec![]).await?;
    let status =
        if page.page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(render_with(status, page.render()?))
}

pub(super) async fn chart_csv(
    State(s): State<AppState>,
    bench: Bench,
    Path(target): Path<i64>,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    csv(&s, &bench, target, &q).await
}

/// The period's points of one chart as CSV.
pub(super) async fn csv(
    s: &AppState,
    bench: &Bench,
    target_id: i64,
    q: &PeriodQuery,
) -> Result<Response, WebError> {
    let tz = s.lab.config().time_zone.clone();
    let (period, errors) = period_of(q, lab_today(s), &tz);
    if let Some(e) = errors.first() {
        return Err(AppError::invalid(&e.field, e.message.clone()).into());
    }
    let data = s.lab.levey_jennings(&bench.actor, target_id, period.start(), period.end()).await?;
    let body = csv_body(&data.points, &tz);
    let t = &data.target;
    let name: String = format!(
        "qc-{}-{}-level{}-{}-{}.csv",
        t.test_code, t.instrument_name, t.material.level, period.from, period.to
    )
    .chars()
    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
    .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

pub(super) fn csv_body(points: &[QcPoint], tz: &TimeZone) -> String {
    use crate::csv_export::{Csv, Field};
    let mut out = Csv::new(&[
        "time",
        "level",
        "lot",
        "value",
        "mean",
        "sd",
        "z",
        "rules",
        "run_status",
        "entered_by",
    ]);
    for p in points {
        let rules = p.rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(" ");
        let z = if p.z.is_finite() { format!("{:.3}", p.z) } else { String::new() };
        out.row(&[
            Field::Value(&iso_time(p.at.as_micros(), tz)),
            Field::Value(&p.level.to_string()),
            Field::Text(&p.lot),
            Field::Value(&number(p.value)),
            Field::Value(&number(p.mean)),
            Field::Value(&number(p.sd)),
            Field::Value(&z),
            Field::Text(&rules),
            Field::Text(p.run_status.code()),
            Field::Text(&p.entered_by),
        ]);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use cuvette_domain::qc::WestgardRule;

    use super::*;

    #[test]
    fn csv_rows_carry_the_lab_zone_and_numbers_unquoted() {
        let tz = jiff::tz::offset(1).to_time_zone();
        let p = QcPoint {
            id: 1,
            run_id: 1,
            at: cuvette_domain::time::Timestamp::from_micros(1_700_000_000_000_000),
            entered_by: "=cmd".into(),
            target_id: 1,
            level: 2,
            lot: "L,1".into(),
            value: -1.5,
            mean: 0.5,
            sd: 0.25,
            z: -8.0,
            rules: vec![WestgardRule::OneThreeS],
            run_status: QcStatus::Rejected,
        };
        let body = csv_body(&[p], &tz);
        let mut lines = body.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("time,level,lot,value,mean,sd,z,rules,run_status,entered_by")
        );
        assert_eq!(
            lines.next(),
            Some("2023-11-14T23:13:20+01:00,2,\"L,1\",-1.5,0.5,0.25,-8.000,1-3s,rejected,'=cmd")
        );
    }

    #[test]
    fn the_period_defaults_to_31_days_and_reports_bad_dates() {
        let tz = TimeZone::UTC;
        let today: Date = "2026-03-15".parse().unwrap();
        let (p, errors) = period_of(&PeriodQuery::default(), today, &tz);
        assert!(errors.is_empty());
        assert_eq!(
            (p.from.to_string(), p.to.to_string()),
            ("2026-02-13".into(), "2026-03-15".into())
        );
        assert_eq!(p.to_us - p.from_us, 31 * 86_400_000_000);
        let q = PeriodQuery { from: "13/02/2026".into(), ..PeriodQuery::default() };
        let (_, errors) = period_of(&q, today, &tz);
        assert_eq!(errors[0].field, "from");
        let q = PeriodQuery {
            from: "2026-03-16".into(),
            to: "2026-03-01".into(),
            ..PeriodQuery::default()
        };
        let (p, errors) = period_of(&q, today, &tz);
        assert_eq!(errors.len(), 1);
        assert_eq!(p.to, today);
        let q = PeriodQuery { from: "2020-01-01".into(), ..PeriodQuery::default() };
        assert_eq!(period_of(&q, today, &tz).1.len(), 1);
    }
}
