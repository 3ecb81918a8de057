//! Signing in, lockout, session timeouts, signatures and API keys.

use cuvette_app::records::AuditFilter;
use cuvette_app::{API_KEY_PREFIX, Actor, NewUser};
use cuvette_domain::Role;

use crate::support::*;

async fn failed_sign_ins(lab: &TestLab, username: &str, n: usize) {
    for _ in 0..n {
        unauthenticated(lab.login(username, "not the password").await);
    }
}

async fn user_actions(lab: &TestLab, username: &str) -> Vec<String> {
    lab.audit_trail(AuditFilter {
        entity: Some(("user".into(), username.into())),
        ..Default::default()
    })
    .await
    .into_iter()
    .map(|e| e.action.code().to_owned())
    .collect()
}

#[tokio::test]
async fn a_user_signs_in_and_the_session_knows_who_they_are() {
    let lab = lab().await;
    let technologist = lab.technologist().await;

    let outcome = lab.login("  Technologist ", PASSWORD).await.unwrap();
    assert_eq!(outcome.actor, technologist);
    assert_eq!((outcome.token.len(), outcome.csrf_token.len()), (64, 64));
    assert_ne!(outcome.token, outcome.csrf_token);

    let (session, actor) = lab.session(&outcome.token).await.unwrap();
    assert_eq!(actor, technologist);
    assert_eq!(session.csrf_token, outcome.csrf_token);
    assert_ne!(session.token_hash, outcome.token, "only a hash of the token is kept");
    assert_eq!(user_actions(&lab, "technologist").await, ["user.add", "login"]);
    unauthenticated(lab.session("not-a-token").await);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let lab = lab().await;
    lab.technician().await;

    let wrong_password = unauthenticated(lab.login("technician", "not the password").await);
    let no_such_user = unauthenticated(lab.login("nobody", "not the password").await);
    assert_eq!(wrong_password, no_such_user);
    assert_eq!(user_actions(&lab, "technician").await, ["user.add", "login.fail"]);
    assert_eq!(user_actions(&lab, "nobody").await, ["login.fail"]);
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_account() {
    let lab = lab().await;
    lab.technician().await;

    failed_sign_ins(&lab, "technician", 5).await;
    let message = unauthenticated(lab.login("technician", PASSWORD).await);
    assert!(message.contains("locked until 24-Nov-2026 08:15"), "{message}");
    assert_eq!(
        user_actions(&lab, "technician").await,
        [
            "user.add",
            "login.fail",
            "login.fail",
            "login.fail",
            "login.fail",
            "login.lockout",
            "login.refused_locked"
        ]
    );

    lab.clock.advance(minutes(14));
    unauthenticated(lab.login("technician", PASSWORD).await);
    lab.clock.advance(minutes(1));
    lab.login("technician", PASSWORD).await.expect("the lockout lasts 15 minutes");
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_failures() {
    let lab = lab().await;
    lab.technician().await;

    failed_sign_ins(&lab, "technician", 4).await;
    lab.login("technician", PASSWORD).await.unwrap();
    failed_sign_ins(&lab, "technician", 4).await;
    lab.login("technician", PASSWORD).await.expect("four and four are not five in a row");
}

#[tokio::test]
async fn after_a_lockout_one_mistake_does_not_lock_the_account_again() {
    let lab = lab().await;
    lab.technician().await;
    failed_sign_ins(&lab, "technician", 5).await;
    lab.clock.advance(minutes(16));

    failed_sign_ins(&lab, "technician", 1).await;
    lab.login("technician", PASSWORD).await.expect("one typo after the lockout has expired");
}

#[tokio::test]
async fn an_idle_session_ends_after_fifteen_minutes() {
    let lab = lab().await;
    lab.technician().await;
    let token = lab.login("technician", PASSWORD).await.unwrap().token;

    lab.clock.advance(minutes(16));
    let message = unauthenticated(lab.session(&token).await);
    assert!(message.contains("sign in again"), "{message}");
    assert_eq!(
        user_actions(&lab, "technician").await.last().map(String::as_str),
        Some("session.timeout")
    );

    lab.clock.set(START.parse().unwrap());
    unauthenticated(lab.session(&token).await);
}

#[tokio::test]
async fn what_a_page_polls_on_its_own_does_not_keep_an_unattended_session_open() {
    let lab = lab().await;
    lab.technician().await;
    let token = lab.login("technician", PASSWORD).await.unwrap().token;

    for _ in 0..3 {
        lab.clock.advance(minutes(5));
        lab.peek_session(&token).await.expect("the banner may look while the session lives");
    }
    lab.clock.advance(minutes(1));
    unauthenticated(lab.peek_session(&token).await);
    unauthenticated(lab.session(&token).await);
}

#[tokio::test]
async fn a_session_in_use_stays_open() {
    let lab = lab().await;
    lab.technician().await;
    let token = lab.login("technician", PASSWORD).await.unwrap().token;

    for _ in 0..4 {
        lab.clock.advance(minutes(14));
        lab.session(&token).await.expect("used within 15 minutes");
    }
    lab.clock.advance(minutes(15));
    lab.session(&token).await.expect("exactly 15 minutes idle is not yet over");
}

#[tokio::test]
async fn a_session_ends_twelve_hours_after_sign_in_however_busy() {
    let lab = lab().await;
    lab.technician().await;
    let token = lab.login("technician", PASSWORD).await.unwrap().token;

    for _ in 0..72 {
        lab.clock.advance(minutes(10));
        lab.session(&token).await.expect("within the shift");
    }
    lab.clock.advance(minutes(10));
    unauthenticated(lab.session(&token).await);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let lab = lab().await;
    let technician = lab.technician().await;
    let token = lab.login("technician", PASSWORD).await.unwrap().token;

    lab.logout(&token, &technician).await.unwrap();
    unauthenticated(lab.session(&token).await);
    assert_eq!(user_actions(&lab, "technician").await.last().map(String::as_str), Some("logout"));
}

#[tokio::test]
async fn a_signature_is_the_signers_own_password() {
    let lab = lab().await;
    let technologist = lab.technologist().await;

    lab.check_signature(&technologist, PASSWORD).await.unwrap();
    invalid(lab.check_signature(&technologist, "correct horse battery stapl").await, "signature");
    let stranger =
        Actor { name: "nobody".into(), display_name: "Nobody".into(), role: Role::Technologist };
    invalid(lab.check_signature(&stranger, PASSWORD).await, "signature");
}

#[tokio::test]
async fn an_api_key_round_trip() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["K"]).await;

    let key = lab.create_api_key(&supervisor, " analyzer-1 ", Role::Technician).await.unwrap();
    assert!(key.starts_with(API_KEY_PREFIX) && key.len() == API_KEY_PREFIX.len() + 64, "{key}");
    let analyzer = lab.api_key_actor(&key).await.unwrap();
    assert_eq!(
        analyzer,
        Actor {
            name: "apikey:analyzer-1".into(),
            display_name: "analyzer-1".into(),
            role: Role::Technician
        }
    );

    lab.enter(&analyzer, &patient, "K", "4.1").await.unwrap();
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().entered_by, "apikey:analyzer-1");
    let trail = lab.audit_trail(AuditFilter::default()).await;
    assert!(trail.iter().any(|e| e.action.code() == "apikey.create" && e.actor == "supervisor"));
    let secret = &key[API_KEY_PREFIX.len()..];
    assert!(
        trail.iter().all(|e| !e.after.as_deref().unwrap_or("").contains(secret)),
        "the key itself is never recorded"
    );
}

#[tokio::test]
async fn a_forged_or_unknown_api_key_is_refused() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let key = lab.create_api_key(&supervisor, "middleware", Role::Technician).await.unwrap();

    let last = key.chars().last().unwrap();
    let forged = format!("{}{}", &key[..key.len() - 1], if last == '0' { '1' } else { '0' });
    unauthenticated(lab.api_key_actor(&forged).await);
    unauthenticated(lab.api_key_actor(&key[API_KEY_PREFIX.len()..]).await);
    unauthenticated(lab.api_key_actor("").await);
    lab.api_key_actor(&key).await.expect("the real key still works");
}

#[tokio::test]
async fn an_api_key_needs_a_unique_name() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    lab.create_api_key(&supervisor, "middleware", Role::Technician).await.unwrap();
    let events = lab.audit_count().await;

    conflict(lab.create_api_key(&supervisor, "middleware", Role::Technologist).await);
    invalid(lab.create_api_key(&supervisor, "  ", Role::Technician).await, "name");
    invalid(lab.create_api_key(&supervisor, &"k".repeat(65), Role::Technician).await, "name");
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn a_new_user_needs_a_valid_name_and_a_long_enough_password() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let events = lab.audit_count().await;
    let user = |username: &str, password: &str| NewUser {
        username: username.into(),
        display_name: "Ada Mensah".into(),
        role: Role::Technician,
        password: password.into(),
    };

    assert!(
        invalid(lab.add_user(&supervisor, user("amensah", "short")).await, "password")
            .contains("10")
    );
    invalid(lab.add_user(&supervisor, user("amensah", &"p".repeat(257))).await, "password");
    invalid(lab.add_user(&supervisor, user("a mensah!", PASSWORD)).await, "username");
    invalid(lab.add_user(&supervisor, user("", PASSWORD)).await, "username");
    invalid(
        lab.add_user(
            &supervisor,
            NewUser { display_name: " ".into(), ..user("amensah", PASSWORD) },
        )
        .await,
        "display_name",
    );
    assert_eq!(lab.audit_count().await, events);

    lab.add_user(&supervisor, user("AMensah", PASSWORD)).await.unwrap();
    conflict(lab.add_user(&supervisor, user("amensah", PASSWORD)).await);
    let users = lab.users(&supervisor).await.unwrap();
    assert!(users.iter().any(|u| u.username == "amensah" && u.role == Role::Technician));
    assert!(
        users.iter().all(|u| u.password_hash.starts_with("$argon2id$")),
        "passwords are stored as argon2id hashes"
    );
    lab.login("amensah", PASSWORD).await.expect("the new user signs in");
}
