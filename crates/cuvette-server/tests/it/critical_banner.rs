//! The critical-call banner is part of the page the server draws, so a bench whose browser
//! runs no script still sees that a critical result waits for its call.

use cuvette_app::{Actor, EnteredResult, RegisterPatient};
use cuvette_domain::Role;

use crate::support::app;

fn patient(mrn: &str) -> RegisterPatient {
    RegisterPatient {
        mrn: mrn.into(),
        family_name: "Bannerman".into(),
        given_name: "Ada".into(),
        birth_date: "1950-03-01".into(),
        sex: "F".into(),
    }
}

#[tokio::test]
async fn every_page_of_a_role_that_sees_results_carries_the_waiting_critical_in_its_html() {
    let app = app().await;
    let (_, acc) = app.a_received_specimen("cb", patient("CB-1"), "Dr. Call", &["K"]).await;
    let technologist = app.sign_in(Role::Technologist, "cb").await;
    let phlebotomist = app.sign_in(Role::Phlebotomist, "cb2").await;

    // Nothing waits: the container is there, empty, for the script to refresh.
    let page = app.get(&technologist, "/patients").await;
    assert!(
        page.body.contains(
            r#"<div id="critical-banner" data-src="/critical/banner" aria-live="assertive"></div>"#
        ),
        "{}",
        page.body
    );

    let sys = Actor::system();
    let test = app.lab.specimen_view(&sys, &acc).await.unwrap().tests[0].item.test.clone();
    let entry = EnteredResult {
        ordered_test_id: test.id,
        row_version: test.row_version,
        text: "7.9".into(),
    };
    app.lab.enter_results(&sys, &[entry], None).await.unwrap();

    for uri in ["/patients", "/review", "/worklist", &format!("/specimens/{acc}")] {
        let page = app.get(&technologist, uri).await;
        assert!(
            page.body.contains("1 critical result waiting for a call"),
            "{uri} draws the banner:\n{}",
            page.body
        );
    }
    // A role that sees no results has no banner at all, not even an empty one.
    let page = app.get(&phlebotomist, "/collect").await;
    assert!(!page.body.contains("critical-banner"), "{}", page.body);
    assert!(!page.body.contains("waiting for a call"), "{}", page.body);
}
