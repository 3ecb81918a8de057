//! Sign-in, sessions, CSRF and the public surface.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cuvette_domain::Role;

use crate::support::{PASSWORD, app, enc};

#[tokio::test]
async fn healthz_answers_when_the_database_does() {
    let app = app().await;
    let r = app.send(Request::builder().uri("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn pages_without_a_session_send_you_to_sign_in_and_back() {
    let app = app().await;
    let r = app.send(Request::builder().uri("/review?x=1").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/login?next=/review%3Fx%3D1"));
}

#[tokio::test]
async fn the_api_without_credentials_is_401() {
    let app = app().await;
    let r = app.send(Request::builder().uri("/api/v1/worklist").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Bearer"));
    let r = app.api_key("cuv_not-a-key", Method::GET, "/api/v1/worklist", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_sets_a_strict_httponly_cookie_and_lands_on_the_bench() {
    let app = app().await;
    app.sign_in(Role::LabAssistant, "a").await;
    let body = format!("username=lab-assistant-a&password={}&next=", enc(PASSWORD));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let res = tower::ServiceExt::oneshot(
        cuvette_server::router(cuvette_server::AppState {
            lab: app.lab.clone(),
            config: Default::default(),
        }),
        req,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/receive");
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_password_keeps_the_user_id_and_says_so() {
    let app = app().await;
    let body = "username=nobody&password=wrong-password&next=%2Freview";
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("value=\"nobody\""));
    assert!(r.body.contains("the username or password is not right"));
    assert!(r.body.contains("<title>Error: Sign in"));
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let app = app().await;
    let mut s = app.sign_in(Role::Supervisor, "c").await;
    s.csrf = "forged".into();
    let r = app
        .post_form(
            &s,
            "/users",
            &[
                ("username", "x"),
                ("display_name", "X"),
                ("role", "technician"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let users = app.lab.users(&cuvette_app::Actor::system()).await.unwrap();
    assert!(users.iter().all(|u| u.username != "x"), "no user was added");
}

#[tokio::test]
async fn a_json_call_with_the_cookie_but_no_csrf_header_is_refused() {
    let app = app().await;
    let s = app.sign_in(Role::Phlebotomist, "j").await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/patients")
        .header(header::COOKIE, &s.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"mrn":"A1","family_name":"X","birth_date":"1990-01-01","sex":"F"}"#))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_cross_site_post_is_refused_before_anything_runs() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "x").await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/logout")
        .header(header::COOKIE, &s.cookie)
        .header("sec-fetch-site", "cross-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={}", s.csrf)))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::FORBIDDEN);
    // Still signed in.
    assert!(app.lab.session(s.cookie.trim_start_matches("cuvette_session=")).await.is_ok());
}

#[tokio::test]
async fn the_openapi_document_names_every_api_route() {
    let app = app().await;
    let r =
        app.send(Request::builder().uri("/api/openapi.json").body(Body::empty()).unwrap()).await;
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/orders",
        "/api/v1/specimens/{accession}",
        "/api/v1/specimens/{accession}/results",
        "/api/v1/release",
        "/api/v1/patients",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
}

#[tokio::test]
async fn an_order_through_the_api_returns_accession_numbers_and_the_specimen_reads_back() {
    let app = app().await;
    let key = app
        .lab
        .create_api_key(&cuvette_app::Actor::system(), "ehr", Role::Technologist)
        .await
        .unwrap();
    let order = serde_json::json!({
        "patient": { "mrn": "E100", "family_name": "Apiorder", "given_name": "Ida", "birth_date": "1961-05-05", "sex": "F" },
        "provider": "Dr. B. Mensah", "priority": "stat", "tests": ["BMP", "CBC"]
    });
    let r = app.api_key(&key, Method::POST, "/api/v1/orders", Some(order)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let placed = r.json();
    let accessions = placed["accessions"].as_array().unwrap();
    assert!(accessions.len() >= 2, "chemistry and hematology tubes: {placed}");
    let acc = accessions[0].as_str().unwrap();
    let s = app.api_key(&key, Method::GET, &format!("/api/v1/specimens/{acc}"), None).await.json();
    assert_eq!(s["accession"], acc);
    assert_eq!(s["patient"]["mrn"], "E100");
    let k = s["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test_code"] == "K")
        .expect("potassium on the SST tube");
    assert_eq!(k["loinc"], "2823-3");
    assert_eq!(k["status"], "ordered");
}

#[tokio::test]
async fn an_unknown_accession_is_a_clear_404_and_a_malformed_one_a_422() {
    let app = app().await;
    let key =
        app.lab.create_api_key(&cuvette_app::Actor::system(), "k", Role::Technician).await.unwrap();
    let r = app.api_key(&key, Method::GET, "/api/v1/specimens/26-0000999-3", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.api_key(&key, Method::GET, "/api/v1/specimens/26-0000999-1", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("check digit"));
}

#[tokio::test]
async fn every_page_in_each_roles_navigation_opens() {
    let app = app().await;
    for role in cuvette_domain::role::ROLES {
        let s = app.sign_in(role, "nav").await;
        let home = app.get(&s, "/").await;
        assert_eq!(home.status, StatusCode::SEE_OTHER, "{role}");
        let landing = app.get(&s, home.location.as_deref().unwrap()).await;
        assert_eq!(landing.status, StatusCode::OK, "{role} lands on {:?}", home.location);
        let nav = landing
            .body
            .split("<nav")
            .nth(1)
            .and_then(|n| n.split("</nav>").next())
            .unwrap_or("")
            .to_owned();
        let links: Vec<&str> =
            nav.split("href=\"").skip(1).filter_map(|h| h.split('"').next()).collect();
        assert!(!links.is_empty(), "{role} has a navigation");
        for href in links {
            let page = app.get(&s, href).await;
            assert_eq!(
                page.status,
                StatusCode::OK,
                "{role} opens {href}: {}",
                page.body.chars().take(300).collect::<String>()
            );
            assert!(page.body.contains(&s.csrf), "{href} carries the session's CSRF token");
        }
    }
}

#[tokio::test]
async fn an_idle_session_ends_and_the_next_page_asks_to_sign_in_again() {
    let app = app().await;
    let s = app.sign_in(Role::Technician, "idle").await;
    assert_eq!(app.get(&s, "/worklist").await.status, StatusCode::OK);
    app.clock.advance(jiff::SignedDuration::from_mins(16));
    let r = app.get(&s, "/worklist").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/login?next=/worklist"));
}

#[tokio::test]
async fn the_instruments_screen_shows_each_conversion_and_refuses_a_unit_it_cannot_convert() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "units").await;
    let id = app.lab.add_instrument(&s.actor, "Chem-1", "hl7", "CHEM-SI").await.unwrap();
    let uri = format!("/interfaces/instruments/{id}/codes");

    let r = app
        .post_form(
            &s,
            &uri,
            &[("instrument_code", "2345-7"), ("test_code", "GLU"), ("unit", "mmol/L")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = app.get(&s, "/interfaces").await.body;
    assert!(
        page.contains("mmol/L → mg/dL × 18.016 (glucose, C6H12O6, 180.156 g/mol; IUPAC 2021 standard atomic weights; PubChem CID 5793)"),
        "{page}"
    );

    let r = app
        .post_form(
            &s,
            &uri,
            &[("instrument_code", "2823-3"), ("test_code", "K"), ("unit", "mg/dL")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Potassium is reported in mmol/L and Cuvette cannot convert mg/dL to it"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<td>2823-3</td>"), "nothing mapped");
}

#[tokio::test]
async fn an_instruments_addresses_are_set_on_the_interfaces_page_and_a_host_name_is_refused_as_typed()
 {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "peers").await;
    let id = app.lab.add_instrument(&s.actor, "Chem-1", "hl7", "CHEM-1").await.unwrap();
    let uri = format!("/interfaces/instruments/{id}/peers");

    let r = app.post_form(&s, &uri, &[("allowed_peers", "10.20.1.31 chem-1.lab")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("&#34;chem-1.lab&#34; is not an IP address"), "{}", r.body);
    assert!(r.body.contains(r#"value="10.20.1.31 chem-1.lab""#), "what was typed is kept");
    let page = app.get(&s, "/interfaces").await.body;
    assert!(
        page.contains(r#"name="allowed_peers" placeholder="any address" value="""#),
        "nothing saved"
    );

    let r = app.post_form(&s, &uri, &[("allowed_peers", "10.20.1.32, 10.20.1.31")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = app.get(&s, "/interfaces").await.body;
    assert!(page.contains(r#"value="10.20.1.31 10.20.1.32""#), "{page}");

    let technician = app.sign_in(Role::Technician, "peers").await;
    let r = app.post_form(&technician, &uri, &[("allowed_peers", "")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = app.get(&technician, "/interfaces").await.body;
    assert!(page.contains("Sends only from: 10.20.1.31 10.20.1.32"), "{page}");
}

#[tokio::test]
async fn the_api_and_the_catalog_form_refuse_a_decimal_comma_in_the_same_words() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "comma").await;
    let words = "use a point, not a comma: 7.5";

    let r = app.api(&supervisor, Method::GET, "/api/v1/catalog/tests/K", None).await;
    let current = r.json();
    let mut definition = current["definition"].clone();
    definition["critical_high"] = serde_json::json!("7,5");
    let save = serde_json::json!({
        "expected_version": current["version"].as_i64().unwrap_or(0),
        "definition": definition,
        "reason": "critical limits from the medical staff's policy",
    });
    let api = app.api(&supervisor, Method::PUT, "/api/v1/catalog/tests/K", Some(save)).await;
    assert!(api.status.is_client_error(), "{}", api.body);
    assert!(api.body.contains(words), "the API says {}", api.body);

    let form = app.post_form(&supervisor, "/catalog/K", &[("critical_high", "7,5")]).await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains(words), "the form says why beside the field");
}

#[tokio::test]
async fn a_message_log_filter_that_is_no_direction_or_outcome_is_refused_not_ignored() {
    let app = app().await;
    let s = app.sign_in(Role::Technologist, "log").await;
    assert_eq!(
        app.get(&s, "/interfaces/messages?direction=in&outcome=quarantined").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&s, "/interfaces/messages?direction=&outcome=").await.status,
        StatusCode::OK
    );
    let sideways = app.get(&s, "/interfaces/messages?direction=sideways").await;
    assert_eq!(sideways.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(sideways.body.contains("is not a direction: choose in or out"), "{}", sideways.body);
    let lost = app.get(&s, "/interfaces/messages?outcome=lost").await;
    assert_eq!(lost.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        lost.body.contains("is not an outcome: choose one of accepted, quarantined"),
        "{}",
        lost.body
    );
}
