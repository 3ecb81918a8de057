//! The audit view and its export know every kind of event the lab records.

use axum::http::{Method, StatusCode};
use cuvette_domain::Role;
use cuvette_domain::audit::AuditAction;

use crate::fixtures;
use crate::support::app;

#[tokio::test]
async fn the_audit_view_and_export_show_every_action_by_its_label_and_code() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "audit").await;
    fixtures::an_audit_event_of_every_action(&app, "every-action").await;

    let page = app.get(&supervisor, "/audit?actor=every-action").await;
    assert_eq!(page.status, StatusCode::OK);
    let csv = app.get(&supervisor, "/audit.csv?actor=every-action").await;
    assert_eq!(csv.status, StatusCode::OK);
    for action in AuditAction::ALL {
        let (code, label) = (action.code(), action.label());
        assert!(
            page.body.contains(&format!("{label} <code class=\"muted\">{code}</code>")),
            "the view shows {code} as {label:?}"
        );
        assert!(
            page.body.contains(&format!("<option value=\"{code}\">{label}</option>")),
            "the action filter offers {code}"
        );
        assert!(csv.body.contains(&format!(",{code},{label},probe,")), "the export has {code}");
    }

    let api = app
        .api(
            &supervisor,
            Method::GET,
            "/api/v1/audit?actor=every-action&action=qc.run.reject",
            None,
        )
        .await;
    let events = api.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{}", api.body);
    assert_eq!(events[0]["action"], "qc.run.reject");
    let unknown =
        app.api(&supervisor, Method::GET, "/api/v1/audit?action=result.erase", None).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.body);
    assert!(
        unknown.json()["error"]["fields"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("\"result.erase\" is not an audit action")),
        "{}",
        unknown.body
    );

    let only = app.get(&supervisor, "/audit?actor=every-action&action=qc.run.reject").await;
    assert!(only.body.contains("<code class=\"muted\">qc.run.reject</code>"));
    assert!(!only.body.contains("<code class=\"muted\">qc.run</code>"), "one action is chosen");
}

#[tokio::test]
async fn the_audit_view_shows_a_catalog_edit_as_the_field_that_changed_from_old_to_new() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "diff").await;
    let r = app.api(&supervisor, Method::GET, "/api/v1/catalog/tests/K", None).await;
    let current = r.json();
    let old = current["definition"]["critical_high"].clone();
    assert!(!old.is_null(), "potassium has a critical high limit: {}", r.body);
    let mut definition = current["definition"].clone();
    definition["critical_high"] = serde_json::json!("7.5");
    let save = serde_json::json!({
        "expected_version": current["version"].as_i64().unwrap_or(0),
        "definition": definition,
        "reason": "critical limits from the medical staff policy",
    });
    let put = app.api(&supervisor, Method::PUT, "/api/v1/catalog/tests/K", Some(save)).await;
    assert!(put.status.is_success(), "{}", put.body);

    let page = app.get(&supervisor, "/audit?action=catalog.edit").await;
    assert_eq!(page.status, StatusCode::OK);
    let old = old.as_str().map(str::to_owned).unwrap_or_else(|| old.to_string());
    let line = format!(
        "<span class=\"diff-field\">critical high</span>: <del>{old}</del> → <ins>7.5</ins>"
    );
    assert!(page.body.contains(&line), "the change reads {line}:\n{}", page.body);
    assert!(
        page.body.contains("<span class=\"diff-field\">reason</span>: <span class=\"muted\">(not set)</span> → <ins>critical limits from the medical staff policy</ins>"),
        "{}",
        page.body
    );
    // Fields the edit did not touch are not listed as changes.
    for untouched in ["code", "unit", "critical low", "name"] {
        let line = format!("<span class=\"diff-field\">{untouched}</span>");
        assert!(!page.body.contains(&line), "{untouched} did not change:\n{}", page.body);
    }
}
