//! Quality control at the bench (UX.md §1.11): the overview of every test × instrument with
//! its control levels and lockout standing, QC entry with the Westgard verdict shown at once,
//! QC set-up (materials, targets, rules, moving averages), the Levey-Jennings chart with its
//! monthly statistics and sigma metric (and the same points as CSV), and the lockout screen:
//! the patient results to re-run, the corrective action, and the run history.
//!
//! Standing is always written as text ("LOCKED", "1-2s warning"), never colour alone.

mod chart;
mod format;
mod lockout;
mod materials;
mod moving_average;
mod overview;
mod rules;
mod runs;
mod views;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;
use chart::{chart_csv, chart_or_csv};
use lockout::{corrective_action, lockout};
use materials::{add_material, adopt_target, set_target};
use moving_average::set_moving_average;
use overview::overview;
use rules::{set_pattern, set_rules};
use runs::record_run;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/qc", get(overview))
        .route("/qc/runs", post(record_run))
        .route("/qc/materials", post(add_material))
        .route("/qc/targets", post(set_target))
        .route("/qc/targets/{id}/adopt", post(adopt_target))
        .route("/qc/rules", post(set_rules))
        .route("/qc/sample-pattern", post(set_pattern))
        .route("/qc/moving-averages", post(set_moving_average))
        // `{target}` is "12" (the page) or "12.csv" (its points as CSV).
        .route("/qc/chart/{target}", get(chart_or_csv))
        .route("/qc/chart/{target}/csv", get(chart_csv))
        .route("/qc/lockout/{instrument_id}/{test_code}", get(lockout))
        .route("/qc/lockout/{instrument_id}/{test_code}/action", post(corrective_action))
}
