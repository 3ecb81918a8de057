//! The search field on every page and the order search page, as the bench uses them.

use axum::http::StatusCode;
use cuvette_app::RegisterPatient;
use cuvette_domain::Role;

use crate::support::{app, enc};

fn patient(mrn: &str, family: &str) -> RegisterPatient {
    RegisterPatient {
        mrn: mrn.into(),
        family_name: family.into(),
        given_name: "Jo".into(),
        birth_date: "1961-02-03".into(),
        sex: "M".into(),
    }
}

#[tokio::test]
async fn the_search_field_on_every_page_opens_the_scanned_specimen_the_patient_or_a_name_search() {
    let app = app().await;
    let (patient_id, acc) =
        app.a_received_specimen("gs", patient("GS-1", "Scanwell"), "Dr. Find", &["K"]).await;
    let tech = app.sign_in(Role::Technician, "gs").await;

    let page = app.get(&tech, "/worklist").await;
    assert!(
        page.body.contains(
            r#"<form class="global-search" method="get" action="/search" role="search">"#
        )
    );
    assert!(page.body.contains(r#"id="global-q""#));

    let scanned: String = acc.chars().filter(|c| *c != '-').collect();
    let r = app.get(&tech, &format!("/search?q={scanned}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some(format!("/specimens/{acc}").as_str()));
    let r = app.get(&tech, "/search?q=GS-1").await;
    assert_eq!(r.location.as_deref(), Some(format!("/patients/{patient_id}").as_str()));
    let r = app.get(&tech, &format!("/search?q={}", enc("scanwell,jo"))).await;
    assert_eq!(r.location.as_deref(), Some("/patients?q=scanwell%2Cjo"));

    // Nothing typed: said beside the field.
    let r = app.get(&tech, "/search?q=").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Scan or type an accession number, an MRN or a patient"), "{}", r.body);
    assert!(r.body.contains(r#"aria-invalid="true""#));
}

#[tokio::test]
async fn the_order_search_page_filters_pages_and_keeps_what_was_typed_when_a_field_is_wrong() {
    let app = app().await;
    let (_, acc) =
        app.a_received_specimen("os", patient("OS-1", "Orderly"), "Dr. Quill", &["K"]).await;
    let (_, other) =
        app.a_received_specimen("os2", patient("OS-2", "Different"), "Dr. Other", &["NA"]).await;
    let mls = app.sign_in(Role::Technologist, "os").await;

    let page = app.get(&mls, "/orders").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&acc) && page.body.contains(&other), "the last 30 days by default");
    assert!(page.body.contains("MRN OS-1") && page.body.contains("03-Feb-1961"), "{}", page.body);

    let page = app.get(&mls, &format!("/orders?provider={}&test=K", enc("Dr. Quill"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&acc), "{}", page.body);
    assert!(!page.body.contains(&other), "{}", page.body);

    let page =
        app.get(&mls, &format!("/orders?mrn=OS-2&test=GLUCOSEX&provider={}", enc("Dr. <b>"))).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("No test has the code"), "{}", page.body);
    assert!(page.body.contains(r#"value="GLUCOSEX""#), "what was typed stays");
    assert!(
        page.body.contains(r#"value="Dr. &#60;b&#62;""#)
            || page.body.contains(r#"value="Dr. &lt;b&gt;""#),
        "escaped and kept: {}",
        page.body
    );
    assert!(!page.body.contains(&other), "nothing is searched while a field is wrong");

    let api = app.api(&mls, axum::http::Method::GET, "/api/v1/orders?status=done", None).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.json()["error"]["fields"][0]["field"], "status", "{}", api.body);
}
