//! The search field every page carries (a scan or a typed accession opens the specimen, an
//! MRN the patient, anything else searches names) and the order search page.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use cuvette_app::search::{Found, OrderSearchForm};
use cuvette_app::{AppError, FieldError};
use cuvette_domain::workflow::{Priority, TestStatus};
use serde::Deserialize;

use super::patients::{Banner, render_with};
use crate::AppState;
use crate::auth::{Bench, urlencode};
use crate::error::WebError;
use crate::web::{Page, when};

pub fn routes() -> Router<AppState> {
    Router::new().route("/search", get(find)).route("/orders", get(orders))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FindQuery {
    q: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    page: Page,
    q: String,
}

/// GET /search?q=: opens what the text names; what names nothing is said beside the field,
/// with the text kept.
async fn find(
    State(s): State<AppState>,
    bench: Bench,
    Query(query): Query<FindQuery>,
) -> Result<Response, WebError> {
    let (status, errors) = match s.lab.find(&bench.actor, &query.q).await {
        Ok(Found::Specimen { accession }) => {
            return Ok(
                Redirect::to(&format!("/specimens/{}", urlencode(&accession))).into_response()
            );
        }
        Ok(Found::Patient { patient_id }) => {
            return Ok(Redirect::to(&format!("/patients/{patient_id}")).into_response());
        }
        Ok(Found::Names { query }) => {
            return Ok(Redirect::to(&format!("/patients?q={}", urlencode(&query))).into_response());
        }
        Err(AppError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(AppError::NotFound(message)) => {
            (StatusCode::NOT_FOUND, vec![FieldError { field: "q".into(), message }])
        }
        Err(e) => return Err(e.into()),
    };
    let page = Page::new(&bench, "Search", "").with_errors(errors);
    render_with(status, &SearchPage { page, q: query.q })
}

/// One row of the order search: the test with its order and the patient's identifiers.
struct OrderRowView {
    ordered: String,
    accession: String,
    banner: Banner,
    test: String,
    status: String,
    status_label: String,
    stat: bool,
    provider: String,
}

struct Choice {
    code: &'static str,
    label: String,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    page: Page,
    form: OrderSearchForm,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    rows: Vec<OrderRowView>,
    searched: bool,
    page_no: i64,
    prev_href: Option<String>,
    next_href: Option<String>,
}

impl OrdersPage {
    fn new(bench: &Bench, form: OrderSearchForm) -> OrdersPage {
        OrdersPage {
            page: Page::new(bench, "Orders", "orders"),
            form,
            statuses: TestStatus::ALL
                .iter()
                .map(|s| Choice { code: s.code(), label: s.to_string() })
                .collect(),
            priorities: Priority::ALL
                .iter()
                .map(|p| Choice {
                    code: p.code(),
                    label: match p {
                        Priority::Stat => "STAT".into(),
                        Priority::Routine => "Routine".into(),
                    },
                })
                .collect(),
            rows: vec![],
            searched: false,
            page_no: 1,
            prev_href: None,
            next_href: None,
        }
    }
}

fn page_href(form: &OrderSearchForm, page: i64) -> String {
    format!(
        "/orders?mrn={}&provider={}&from={}&to={}&status={}&priority={}&test={}&page={page}",
        urlencode(form.mrn.trim()),
        urlencode(form.provider.trim()),
        urlencode(form.from.trim()),
        urlencode(form.to.trim()),
        urlencode(form.status.trim()),
        urlencode(form.priority.trim()),
        urlencode(form.test.trim()),
    )
}

/// GET /orders: the search form, and a page of what it finds, newest order first.
async fn orders(
    State(s): State<AppState>,
    bench: Bench,
    Query(form): Query<OrderSearchForm>,
) -> Result<Response, WebError> {
    let lab = &s.lab;
    let mut view = OrdersPage::new(&bench, form.clone());
    let search = match form.read(lab) {
        Ok(search) => search,
        Err(errors) => {
            view.page = view.page.with_errors(errors);
            return render_with(StatusCode::UNPROCESSABLE_ENTITY, &view);
        }
    };
    let found = match lab.search_orders(&bench.actor, &search).await {
        Ok(found) => found,
        Err(AppError::Invalid(errors)) => {
            view.page = view.page.with_errors(errors);
            return render_with(StatusCode::UNPROCESSABLE_ENTITY, &view);
        }
        Err(e) => return Err(e.into()),
    };
    view.searched = true;
    view.page_no = found.page;
    view.prev_href = (found.page > 1).then(|| page_href(&form, found.page - 1));
    view.next_href = found.more.then(|| page_href(&form, found.page + 1));
    view.rows = found
        .items
        .iter()
        .map(|i| OrderRowView {
            ordered: when(lab, Some(i.order.ordered_at)),
            accession: i.specimen.accession.clone(),
            banner: Banner::of(lab, &i.patient),
            test: i.test.test_code.clone(),
            status: i.test.status.code().to_owned(),
            status_label: i.test.status.to_string(),
            stat: i.order.priority == Priority::Stat,
            provider: i.order.provider.clone(),
        })
        .collect();
    render_with(StatusCode::OK, &view)
}
