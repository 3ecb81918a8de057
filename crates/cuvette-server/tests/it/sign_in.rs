//! Sign-in delays and password rules at the browser: the sign-in form says when to try again,
//! the supervisor sees and clears delays, and a weak password is refused on its field.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use cuvette_domain::Role;

use crate::support::*;

/// A sign-in from the browser at `from`.
async fn sign_in_from(app: &App, username: &str, password: &str, from: &str) -> Reply {
    let body = format!("username={}&password={}&next=", enc(username), enc(password));
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let peer: SocketAddr = format!("{from}:51000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    app.send(req).await
}

async fn five_wrong_passwords(app: &App, username: &str, from: &str) {
    for _ in 0..5 {
        let r = sign_in_from(app, username, "not the password", from).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_sign_in_form_says_when_to_try_again_and_keeps_the_user_id() {
    let app = app().await;
    app.sign_in(Role::Technician, "t").await;
    five_wrong_passwords(&app, "technician-t", "10.1.2.3").await;

    let r = sign_in_from(&app, "technician-t", PASSWORD, "10.1.2.3").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the right password waits too");
    assert!(r.body.contains("try again at 08:00:01 (in 1 s)"), "{}", r.body);
    assert!(r.body.contains("value=\"technician-t\""));
    assert!(!r.body.contains(PASSWORD), "the password is never echoed");

    app.clock.advance(jiff::SignedDuration::from_secs(1));
    let r = sign_in_from(&app, "technician-t", PASSWORD, "10.1.2.3").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "a second later the owner is in");
}

#[tokio::test]
async fn a_supervisor_sees_a_colleagues_delay_and_clears_it() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "s").await;
    app.sign_in(Role::Technician, "t").await;
    five_wrong_passwords(&app, "technician-t", "10.1.2.3").await;

    let page = app.get(&supervisor, "/sign-in-delays").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Account technician-t"), "{}", page.body);
    assert!(page.body.contains("<strong>08:00:01</strong>"), "{}", page.body);
    assert!(!page.body.contains("Address 10.1.2.3"), "five failures do not slow the address");
    let users = app.get(&supervisor, "/users").await;
    assert!(users.body.contains("href=\"/sign-in-delays\""));

    let r = app
        .post_form(&supervisor, "/sign-in-delays", &[("kind", "account"), ("key", "technician-t")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Cleared the sign-in delay of account technician-t"), "{}", r.body);
    assert!(r.body.contains("No account or address is slowed down."));
    let r = sign_in_from(&app, "technician-t", PASSWORD, "10.1.2.3").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "cleared: in at once");

    let audit = app.get(&supervisor, "/audit?action=login.throttle_clear").await;
    assert!(audit.body.contains("Sign-in delay cleared"), "{}", audit.body);
}

#[tokio::test]
async fn clearing_a_delay_that_is_not_there_is_refused_on_the_field_as_typed() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "s").await;
    let technician = app.sign_in(Role::Technician, "t").await;
    let events = app.lab.audit_events(&supervisor.actor, &Default::default()).await.unwrap().len();

    let r = app
        .post_form(&supervisor, "/sign-in-delays", &[("kind", "account"), ("key", "nobody-here")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Error: no failed sign-ins are remembered for the account nobody-here")
    );
    assert!(r.body.contains("value=\"nobody-here\""), "what was typed is kept");
    assert!(r.body.contains("<option value=\"account\" selected>"));
    let r = app
        .post_form(&supervisor, "/sign-in-delays", &[("kind", "address"), ("key", "10.1.2")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("is not a network address"), "{}", r.body);
    let r = app.post_form(&supervisor, "/sign-in-delays", &[("kind", ""), ("key", "x")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Error: choose an account or an address"));
    let after = app.lab.audit_events(&supervisor.actor, &Default::default()).await.unwrap().len();
    assert_eq!(after, events, "nothing is recorded for a refused clearing");

    let r = app.get(&technician, "/sign-in-delays").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post_form(&technician, "/sign-in-delays", &[("kind", "account"), ("key", "supervisor-s")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_new_user_with_a_breached_password_is_refused_on_the_password_field() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "s").await;
    let fields = [
        ("username", "amensah"),
        ("display_name", "Ada Mensah"),
        ("role", "technician"),
        ("password", "LeaveMeAlone"),
    ];
    let r = app.post_form(&supervisor, "/users", &fields).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Error: this password is on the list of common and breached passwords")
    );
    assert!(r.body.contains("value=\"amensah\""), "the user ID is kept");
    assert!(!r.body.contains("LeaveMeAlone"), "the password is not echoed");
    let users = app.lab.users(&supervisor.actor).await.unwrap();
    assert!(users.iter().all(|u| u.username != "amensah"), "no one was added");
}

#[tokio::test]
async fn every_page_carries_strict_security_headers() {
    let app = app().await;
    let req = Request::builder().uri("/login").body(Body::empty()).unwrap();
    let router = cuvette_server::router(cuvette_server::AppState {
        lab: app.lab.clone(),
        config: Default::default(),
    });
    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
    let h = res.headers();
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::CACHE_CONTROL], "no-store", "pages with patient data are never cached");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
}
