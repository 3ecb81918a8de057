//! The bench's HTML pages, one module per screen family.

mod admin;
mod autoverify;
mod critical;
pub(crate) mod interfaces;
mod patients;
mod qc;
pub(crate) mod reports;
mod results;
mod session;
mod specimens;
mod staff;

use axum::Router;

use crate::AppState;

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
}
