//! Signing in, password rules, sign-in delays, session timeouts, signatures and API keys.

use cuvette_app::records::AuditFilter;
use std::net::IpAddr;

use cuvette_app::{API_KEY_PREFIX, Actor, NewUser, SignInKey};
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

fn seconds(n: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(n)
}

fn address(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[tokio::test]
async fn after_five_failed_sign_ins_each_attempt_waits_longer_and_no_one_is_locked_out() {
    let lab = lab().await;
    lab.technician().await;

    failed_sign_ins(&lab, "technician", 5).await;
    let message = unauthenticated(lab.login("technician", PASSWORD).await);
    assert!(message.contains("try again at 08:00:01 (in 1 s)"), "{message}");
    lab.clock.advance(seconds(1));
    failed_sign_ins(&lab, "technician", 1).await;
    let message = unauthenticated(lab.login("technician", PASSWORD).await);
    assert!(message.contains("try again at 08:00:03 (in 2 s)"), "{message}");
    lab.clock.advance(seconds(2));
    lab.login("technician", PASSWORD).await.expect("the owner signs in after two seconds");
    assert_eq!(
        user_actions(&lab, "technician").await,
        [
            "user.add",
            "login.fail",
            "login.fail",
            "login.fail",
            "login.fail",
            "login.fail",
            "login.throttle",
            "login.fail",
            "login",
        ],
        "attempts refused while waiting are counted, not logged one by one"
    );
}

#[tokio::test]
async fn a_right_password_within_the_delay_is_refused_like_a_wrong_one() {
    let lab = lab().await;
    lab.technician().await;
    failed_sign_ins(&lab, "technician", 5).await;

    let right = unauthenticated(lab.login("technician", PASSWORD).await);
    let wrong = unauthenticated(lab.login("technician", "not the password").await);
    assert_eq!(right, wrong, "nothing tells a guesser that the password was right");
    let unknown_failed = {
        failed_sign_ins(&lab, "nobody", 5).await;
        unauthenticated(lab.login("nobody", PASSWORD).await)
    };
    assert_eq!(unknown_failed, right, "an unknown user ID is slowed down alike");
}

#[tokio::test]
async fn the_delay_doubles_up_to_half_a_minute_so_a_guesser_never_keeps_the_owner_out_longer() {
    let lab = lab().await;
    lab.technician().await;

    let supervisor = lab.supervisor().await;
    let mut waits = Vec::new();
    for _ in 0..12 {
        failed_sign_ins(&lab, "technician", 1).await;
        let delays = lab.sign_in_delays(&supervisor).await.unwrap();
        let wait = delays.first().map_or(0, |d| d.allowed_from.duration_since(lab.now()).as_secs());
        waits.push(wait);
        lab.clock.advance(seconds(wait));
    }
    assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30]);
    lab.login("technician", PASSWORD).await.expect("thirty seconds later the owner is in");
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
async fn failures_are_forgotten_an_hour_after_the_last_one() {
    let lab = lab().await;
    lab.technician().await;
    failed_sign_ins(&lab, "technician", 5).await;
    lab.clock.advance(minutes(60));

    failed_sign_ins(&lab, "technician", 1).await;
    lab.login("technician", PASSWORD).await.expect("one typo an hour later is not a sixth");
}

#[tokio::test]
async fn guessing_many_accounts_from_one_address_slows_that_address_only() {
    let lab = lab().await;
    lab.technician().await;
    let guesser = address("10.20.30.40");

    for i in 0..20 {
        let who = format!("user{}", i % 5);
        unauthenticated(lab.login_from(&who, "not the password", guesser).await);
    }
    let message = unauthenticated(lab.login_from("technician", PASSWORD, guesser).await);
    assert!(message.contains("(in 1 s)"), "{message}");
    lab.login_from("technician", PASSWORD, address("10.20.30.41"))
        .await
        .expect("the bench next door signs in");
    let slowed = user_actions(&lab, "user4").await;
    assert_eq!(slowed.iter().filter(|a| *a == "login.fail").count(), 4);
    let trail = lab.audit_trail(AuditFilter::default()).await;
    let throttle = trail
        .iter()
        .find(|e| e.action.code() == "login.throttle" && e.entity == "address")
        .expect("the address's delay is audited");
    assert_eq!(throttle.entity_id, "10.20.30.40");
    assert_eq!(throttle.after.as_deref(), Some(r#"{"failures":20,"wait_seconds":1}"#));
    let fail = trail.iter().find(|e| e.action.code() == "login.fail").unwrap();
    assert!(fail.after.as_deref().unwrap().contains(r#""address":"10.20.30.40""#), "{fail:?}");
}

#[tokio::test]
async fn a_supervisor_sees_slowed_accounts_and_addresses_and_clears_them() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let technician = lab.technician().await;
    let ward = address("10.9.8.7");
    for _ in 0..5 {
        unauthenticated(lab.login_from("technician", "not the password", ward).await);
    }
    unauthenticated(lab.login_from("technician", PASSWORD, ward).await);

    let delays = lab.sign_in_delays(&supervisor).await.unwrap();
    assert_eq!(delays.len(), 1, "five failures slow the account, not yet the address");
    let delay = &delays[0];
    assert_eq!(delay.key, SignInKey::Account("technician".into()));
    assert_eq!((delay.failures, delay.refused, delay.waiting), (5, 1, true));
    forbidden(lab.sign_in_delays(&technician).await);
    forbidden(lab.clear_sign_in_delay(&technician, &delay.key).await);

    let events = lab.audit_count().await;
    let key = SignInKey::parse("account", " Technician ").unwrap();
    lab.clear_sign_in_delay(&supervisor, &key).await.unwrap();
    lab.login_from("technician", PASSWORD, ward).await.expect("cleared: signs in at once");
    let cleared = lab.audit_trail(AuditFilter::default()).await;
    let clear = cleared.iter().find(|e| e.action.code() == "login.throttle_clear").unwrap();
    assert_eq!((clear.actor.as_str(), clear.entity_id.as_str()), ("supervisor", "technician"));
    assert_eq!(clear.before.as_deref(), Some(r#"{"failures":5,"refused":1}"#));
    assert_eq!(lab.audit_count().await, events + 2, "the clearing and the sign-in");

    let events = lab.audit_count().await;
    assert!(
        invalid(lab.clear_sign_in_delay(&supervisor, &key).await, "key")
            .contains("cleared already")
    );
    invalid(SignInKey::parse("address", "10.9.8"), "key");
    invalid(SignInKey::parse("account", "  "), "key");
    invalid(SignInKey::parse("everyone", "technician"), "kind");
    assert_eq!(lab.audit_count().await, events, "a refused clearing records nothing");
}

#[tokio::test]
async fn a_password_set_before_the_rules_still_signs_in() {
    use argon2::password_hash::PasswordHasher;
    let lab = lab().await;
    let phc = argon2::Argon2::default()
        .hash_password_with_salt(b"tech-pass", b"saltsaltsaltsalt")
        .unwrap()
        .to_string();
    let mut tx = lab.store().begin().await.unwrap();
    tx.insert_user(
        "oldtimer",
        "Old Timer",
        Role::Technician,
        &phc,
        cuvette_domain::time::Timestamp::EPOCH,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    lab.login("oldtimer", "tech-pass").await.expect("only new passwords meet the new rules");
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

    let (lab_ref, by) = (&lab, &supervisor);
    let refusal = |password: &str| {
        let user = user("amensah", password);
        async move { invalid(lab_ref.add_user(by, user).await, "password") }
    };
    assert!(refusal("eleven char").await.contains("at least 12 characters"));
    assert!(refusal(&"pipette ".repeat(17)).await.contains("at most 128 characters"));
    assert!(refusal("LeaveMeAlone").await.contains("common and breached passwords"));
    assert!(refusal("AMensah at the bench").await.contains("contains the user ID"));
    assert!(refusal("aaaaaaaaaaaa").await.contains("repeated"));
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
    let twelve_characters = NewUser { password: "Größenmaß äö".into(), ..user("bkoch", "") };
    lab.add_user(&supervisor, twelve_characters).await.expect("characters are counted, not bytes");
    lab.login("bkoch", "Größenmaß äö").await.unwrap();
}
