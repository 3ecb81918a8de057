//! The bench's HTML pages, one module per screen family.

mod admin;
mod audit_diff;
mod autoverify;
mod critical;
pub(crate) mod interfaces;
mod patients;
mod qc;
pub(crate) mod reports;
mod results;
mod search;
mod session;
mod specimens;
mod staff;
mod students;

pub(crate) use students::{logbook_csv_body, logbook_filename};

use axum::Router;

use crate::AppState;

pub(crate) use critical::critical_banner;
pub(crate) use patients::list_ids;

/// Every HTML route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(session::routes())
        .merge(patients::routes())
        .merge(specimens::routes())
        .merge(results::routes())
        .merge(reports::routes())
        .merge(admin::routes())
        .merge(interfaces::routes())
        .merge(qc::routes())
        .merge(autoverify::routes())
        .merge(critical::routes())
        .merge(staff::routes())
        .merge(search::routes())
        .merge(students::routes())
}
