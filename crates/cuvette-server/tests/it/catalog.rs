//! The catalog as data the lab owns, through HTTP: every change with its reason, the whole
//! catalog exported and imported back, a gap refused by name, and what changed between two
//! versions of a test shown readably.

use axum::http::{Method, StatusCode};
use cuvette_domain::Role;
use serde_json::{Value, json};

use crate::support::{App, Session, app};

const REASON: &str = "intervals verified on 120 healthy donors (CLSI EP28)";

/// Potassium as the API gives it, changed by `edit`, saved with `reason`.
async fn save_potassium(
    app: &App,
    s: &Session,
    reason: &str,
    edit: impl Fn(&mut Value),
) -> (StatusCode, String) {
    let current = app.api(s, Method::GET, "/api/v1/catalog/tests/K", None).await.json();
    let mut definition = current["definition"].clone();
    edit(&mut definition);
    let body = json!({ "expected_version": current["version"], "definition": definition, "reason": reason });
    let r = app.api(s, Method::PUT, "/api/v1/catalog/tests/K", Some(body)).await;
    (r.status, r.body)
}

/// A change to a definition as the API gives it.
type Edit = fn(&mut Value);

fn versions(app: &App) -> Vec<i64> {
    app.lab.catalog().versions.values().copied().collect()
}

#[tokio::test]
async fn each_kind_of_gap_is_refused_with_its_words_and_nothing_is_stored() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "gaps").await;
    let cases: [(&str, Edit); 3] = [
        ("Potassium: no reference interval from 17 years to 18 years", |d| {
            d["reference"][2]["age_max"] = json!("P17Y")
        }),
        ("Potassium: partitions 1 month–2 years and 1 year–18 years overlap", |d| {
            d["reference"][1]["age_max"] = json!("P2Y")
        }),
        (
            // The test's own limits apply from 18 years: children have theirs (Kost 1991).
            "Potassium, 18 years and over: critical low 3.6 mmol/L is inside the reference interval 3.5–5.1 mmol/L",
            |d| d["critical_low"] = json!("3.6"),
        ),
    ];
    for (words, edit) in cases {
        let (status, body) = save_potassium(&app, &s, REASON, edit).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains(words), "expected {words:?} in {body}");
    }
    assert!(versions(&app).iter().all(|v| *v == 1), "nothing stored");

    // The same gap in an imported file, on the import form, in the same words.
    let file = app.lab.export_catalog(&s.actor).unwrap().replacen(
        "age_min = \"P1Y\"\nage_max = \"P18Y\"",
        "age_min = \"P1Y\"\nage_max = \"P17Y\"",
        1,
    );
    let r = app
        .post_form(
            &s,
            "/catalog/import",
            &[("catalog", &file), ("reason", REASON), ("mode", "apply")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("no reference interval from 17 years to 18 years"), "{}", r.body);
    assert!(versions(&app).iter().all(|v| *v == 1), "nothing stored");
}

#[tokio::test]
async fn a_save_without_a_reason_is_refused_by_the_api_and_the_form_in_the_same_words() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "why").await;
    let words = "give the reason for the change, such as the verification or source it follows";
    let (status, body) =
        save_potassium(&app, &s, " ", |d| d["name"] = json!("Potassium, serum")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains(words), "{body}");
    let form = app
        .post_form(&s, "/catalog/K", &[("expected_version", "1"), ("name", "Potassium, serum")])
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains(words), "the form says why beside the field");
    assert!(form.body.contains("Potassium, serum"), "what was typed is kept");
    assert!(versions(&app).iter().all(|v| *v == 1));
}

#[tokio::test]
async fn an_exported_catalog_imported_back_unchanged_makes_no_new_version() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "roundtrip").await;
    let (status, file) = app.get_bytes(&s, "/catalog.toml").await;
    assert_eq!(status, StatusCode::OK);
    let file = String::from_utf8(file).unwrap();
    assert!(file.contains("[[test]]") && file.contains("[[calc]]") && file.contains("[[panel]]"));
    let r = app
        .post_form(
            &s,
            "/catalog/import",
            &[("catalog", &file), ("reason", REASON), ("mode", "apply")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("0 test(s) changed"), "{}", r.body);
    assert!(versions(&app).iter().all(|v| *v == 1), "no new version");
}

#[tokio::test]
async fn an_import_with_a_change_is_previewed_then_stored_as_one_version_with_reason_and_actor() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "import").await;
    let file = app.api(&s, Method::GET, "/api/v1/catalog/export", None).await.json()["toml"]
        .as_str()
        .unwrap()
        .replacen("critical_high = 6.2", "critical_high = 6.5", 1);

    let preview = json!({ "toml": file, "dry_run": true });
    let r = app.api(&s, Method::POST, "/api/v1/catalog/import", Some(preview)).await.json();
    assert_eq!((r["applied"].clone(), r["tests"][0]["code"].clone()), (json!(false), json!("K")));
    assert_eq!(
        r["tests"][0]["diff"]["limits"][0],
        json!({ "field": "critical high", "before": "6.2", "after": "6.5" })
    );
    assert!(versions(&app).iter().all(|v| *v == 1), "a preview stores nothing");

    let apply = json!({ "toml": file, "reason": REASON });
    let r = app.api(&s, Method::POST, "/api/v1/catalog/import", Some(apply)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["tests"][0]["version"], 2);
    assert_eq!(versions(&app).iter().filter(|v| **v == 2).count(), 1, "one new version");
    let diff =
        app.api(&s, Method::GET, "/api/v1/catalog/tests/K/diff?from=1&to=2", None).await.json();
    assert_eq!(
        (diff["to_saved_by"].as_str(), diff["to_reason"].as_str()),
        (Some("supervisor-import"), Some(REASON))
    );

    // The test's page links its versions to the diff, which shows the change readably.
    let page = app.get(&s, "/catalog/K").await.body;
    assert!(page.contains(REASON) && page.contains("/catalog/K/diff?from=1&amp;to=2"), "{page}");
    let diff = app.get(&s, "/catalog/K/diff?from=1&to=2").await;
    assert_eq!(diff.status, StatusCode::OK);
    for shown in ["Limits changed", "critical high", "6.2", "6.5", REASON] {
        assert!(diff.body.contains(shown), "{shown} not on the diff page");
    }
    assert!(!diff.body.contains("Reference intervals"), "no interval changed");
}

#[tokio::test]
async fn the_diff_page_lists_intervals_added_removed_and_changed_by_partition() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "diff").await;
    let (status, body) = save_potassium(&app, &s, REASON, |d| {
        d["reference"][3]["high"] = json!("5.3");
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = app.get(&s, "/catalog/K/diff").await.body;
    for shown in
        ["Reference intervals", "changed", "both sexes, 18 years and over", "3.5–5.1", "3.5–5.3"]
    {
        assert!(page.contains(shown), "{shown} not on the diff page: {page}");
    }
    let missing = app.get(&s, "/catalog/K/diff?from=1&to=7").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_result_entered_before_a_catalog_change_keeps_the_version_and_flags_it_was_judged_by() {
    let app = app().await;
    let bench = app.sign_in(Role::Technologist, "bench").await;
    let supervisor = app.sign_in(Role::Supervisor, "edit").await;
    let patient = json!({ "mrn": "CV100", "family_name": "Version", "given_name": "Ada", "birth_date": "1960-03-02", "sex": "F" });
    let id =
        app.api(&bench, Method::POST, "/api/v1/patients", Some(patient)).await.json()["id"].clone();
    let order = json!({ "patient_id": id, "provider": "Dr. O. Contract", "priority": "routine", "tests": ["K"] });
    let placed = app.api(&bench, Method::POST, "/api/v1/orders", Some(order)).await.json();
    let acc = placed["accessions"][0].as_str().unwrap().to_owned();
    app.api(&bench, Method::POST, &format!("/api/v1/specimens/{acc}/collect"), None).await;
    let label = json!({ "mrn": "CV100", "birth_date": "1960-03-02" });
    app.api(&bench, Method::POST, &format!("/api/v1/specimens/{acc}/receive"), Some(label)).await;
    let entry = json!({ "results": [{ "test_code": "K", "value": "5.2" }] });
    let r = app
        .api(&bench, Method::POST, &format!("/api/v1/specimens/{acc}/results"), Some(entry))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The adult upper limit is raised to 5.3 after the result was judged high against 5.1.
    let (status, body) = save_potassium(&app, &supervisor, REASON, |d| {
        d["reference"][3]["high"] = json!("5.3");
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let specimen =
        app.api(&bench, Method::GET, &format!("/api/v1/specimens/{acc}"), None).await.json();
    let result = &specimen["tests"][0]["result"];
    assert_eq!(
        (
            result["definition_version"].clone(),
            result["flags"].clone(),
            result["reference_interval"].clone()
        ),
        (json!(1), json!(["H"]), json!("3.5–5.1")),
        "judged by version 1 and not recomputed with version 2"
    );
}
