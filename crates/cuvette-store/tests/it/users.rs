//! Staff accounts, their sessions, API keys and the privilege table.

use cuvette_domain::scope::Scopes;
use cuvette_domain::{Action, Role};
use cuvette_store::{ApiKeyRow, SessionRow, UserRow};

use crate::{AT, Db, at, same};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

#[tokio::test]
async fn a_user_reads_back_through_sign_in_the_user_list_and_a_session() {
    let db = Db::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let id =
        tx.insert_user("mls.nowak", "Agnieszka Nowak", Role::Technologist, PHC, AT).await.unwrap();
    tx.commit().await.unwrap();
    let new = UserRow {
        id,
        username: "mls.nowak".into(),
        display_name: "Agnieszka Nowak".into(),
        role: Role::Technologist,
        password_hash: PHC.into(),
        active: true,
        failed_logins: 0,
        locked_until: None,
    };
    same(&db.store.user_by_username("mls.nowak").await.unwrap().unwrap(), &new);

    // Two failures and a lockout, then a promotion and a deactivation.
    let mut tx = db.store.begin().await.unwrap();
    tx.record_failed_login(id, at(1)).await.unwrap();
    assert_eq!(tx.record_failed_login(id, at(2)).await.unwrap(), 2);
    tx.lock_user(id, at(900_000_000)).await.unwrap();
    tx.commit().await.unwrap();
    let locked = UserRow { failed_logins: 2, locked_until: Some(at(900_000_000)), ..new.clone() };
    same(&db.store.users().await.unwrap()[..], &[locked.clone()][..]);

    let changed = UserRow {
        display_name: "A. Nowak".into(),
        role: Role::Supervisor,
        active: false,
        ..locked
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.update_user(&changed).await.unwrap();
    tx.insert_session("f00d", id, "csrf-1", at(5)).await.unwrap();
    tx.commit().await.unwrap();
    db.store.touch_session("f00d", at(7)).await.unwrap();
    same(
        &db.store.session("f00d").await.unwrap().unwrap(),
        &SessionRow {
            token_hash: "f00d".into(),
            user: changed,
            csrf_token: "csrf-1".into(),
            created_at: at(5),
            last_seen_at: at(7),
        },
    );

    let mut tx = db.store.begin().await.unwrap();
    tx.end_session("f00d", at(8)).await.unwrap();
    tx.commit().await.unwrap();
    assert!(db.store.session("f00d").await.unwrap().is_none(), "an ended session is gone");
}

#[tokio::test]
async fn an_api_key_and_the_privilege_table_read_back_as_written() {
    let db = Db::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let scopes = Scopes::parse("system/Observation.read patient/*.read").unwrap();
    let id = tx
        .insert_api_key("ward-ehr", "beef", Role::Technician, &scopes, "director", AT)
        .await
        .unwrap();
    tx.replace_privileges(&[
        (Role::Student, Action::EnterResult),
        (Role::Technician, Action::VerifyRoutine),
        (Role::Technician, Action::RunQc),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    same(
        &db.store.api_key("beef").await.unwrap().unwrap(),
        &ApiKeyRow { id, name: "ward-ehr".into(), role: Role::Technician, scopes },
    );
    let mut granted = db.store.privileges().await.unwrap();
    granted.sort();
    assert_eq!(
        granted,
        [
            (Role::Technician, Action::VerifyRoutine),
            (Role::Technician, Action::RunQc),
            (Role::Student, Action::EnterResult),
        ]
    );
}
