//! Users, sign-in, sessions and API keys.
//!
//! Passwords are argon2id PHC strings (OWASP minimum: m=19 MiB, t=2, p=1). Session tokens and
//! API keys are 256-bit random values; only their SHA-256 is stored. Repeated failed sign-ins
//! lock the account for a while, and every sign-in, failure, lockout and sign-out is audited.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::{Action, Role};
use cuvette_store::{NewAuditEvent, SessionRow, UserRow};
use jiff::SignedDuration;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::{Actor, AppError, AppResult, Lab};

/// Every API key starts with this, so a leaked one is recognisable in logs and scanners.
pub const API_KEY_PREFIX: &str = "cuv_";
/// The shortest password accepted.
pub const PASSWORD_LEN_MIN: usize = 10;
/// The longest password accepted (argon2 takes any length; this bounds the work per request).
pub const PASSWORD_LEN_MAX: usize = 256;

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name.
    pub username: String,
    /// Full name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Password in clear (hashed here, never stored).
    pub password: String,
}

/// What a sign-in produced.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The session token for the cookie (shown once, stored only as a hash).
    pub token: String,
    /// The CSRF token for the session's forms.
    pub csrf_token: String,
    /// Who signed in.
    pub actor: Actor,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a secret, hex.
pub(crate) fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_password(password: &str) -> AppResult<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::invalid("password", format!("the password cannot be hashed: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Hashes off the async threads: each hash takes tens of milliseconds and 19 MiB.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Checks a new password; says what to change.
pub fn check_password(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < PASSWORD_LEN_MIN {
        return Err(AppError::invalid(
            "password",
            format!("use at least {PASSWORD_LEN_MIN} characters"),
        ));
    }
    if n > PASSWORD_LEN_MAX {
        return Err(AppError::invalid(
            "password",
            format!("use at most {PASSWORD_LEN_MAX} characters"),
        ));
    }
    Ok(())
}

impl Lab {
    /// Adds a user (by a supervisor, or by the CLI as the system).
    pub async fn add_user(&self, actor: &Actor, user: NewUser) -> AppResult<i64> {
        self.require(actor, Action::ManageUsers)?;
        let username = user.username.trim().to_ascii_lowercase();
        if username.is_empty()
            || username.len() > 64
            || !username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(AppError::invalid(
                "username",
                "use 1 to 64 letters, digits, dots, hyphens or underscores",
            ));
        }
        let display_name = user.display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 100 {
            return Err(AppError::invalid(
                "display_name",
                "enter the person's full name (up to 100 characters)",
            ));
        }
        check_password(&user.password)?;
        let password = user.password.clone();
        let phc = blocking(move || hash_password(&password)).await?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_user(&username, display_name, user.role, &phc, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::UserAdd,
            entity: "user",
            entity_id: username.clone(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::UserAdded {
                username: &username,
                display_name,
                role: user.role.code(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes a user's role or active flag, or unlocks a locked account.
    pub async fn update_user(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        active: bool,
        unlock: bool,
    ) -> AppResult<()> {
        self.require(actor, Action::ManageUsers)?;
        let mut user = self
            .store
            .user_by_username(username)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user {username:?}")))?;
        if user.username == actor.name && (!active || role != actor.role) {
            return Err(AppError::invalid(
                "role",
                "you cannot change your own role or disable yourself: ask another supervisor",
            ));
        }
        let before = audit::state(&audit::UserBefore {
            role: user.role.code(),
            active: user.active,
            failed_logins: user.failed_logins,
        });
        user.role = role;
        user.active = active;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.update_user(&user).await?;
        if unlock {
            tx.unlock_user(user.id).await?;
        }
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::UserEdit,
            entity: "user",
            entity_id: user.username.clone(),
            patient_id: None,
            before,
            after: audit::state(&audit::UserAfter {
                role: user.role.code(),
                active: user.active,
                unlocked: unlock,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every user (for the user administration page).
    pub async fn users(&self, actor: &Actor) -> AppResult<Vec<UserRow>> {
        self.require(actor, Action::ManageUsers)?;
        Ok(self.store.users().await?)
    }

    /// Signs in. Wrong passwords count towards a lockout; the message never says whether the
    /// username exists.
    pub async fn login(&self, username: &str, password: &str) -> AppResult<LoginOutcome> {
        const REFUSED: &str = "the username or password is not right";
        // No username is longer than 64; a longer one is kept to that in the audit log.
        let username: String = username.trim().to_ascii_lowercase().chars().take(64).collect();
        let now = self.now_at();
        let Some(user) = self.store.user_by_username(&username).await? else {
            // Spend the same time as a real check, so timing does not reveal valid usernames.
            let pw = password.to_owned();
            blocking(move || password_matches(&pw, DUMMY_HASH)).await;
            self.audit_plain(AuditAction::LoginFail, "user", &username, None).await?;
            return Err(AppError::Unauthenticated(REFUSED.into()));
        };
        if !user.active {
            self.audit_plain(AuditAction::LoginRefusedInactive, "user", &username, None).await?;
            return Err(AppError::Unauthenticated(
                "this account is disabled: ask a supervisor".into(),
            ));
        }
        if let Some(until) = user.locked_until.filter(|u| *u > now) {
            self.audit_plain(AuditAction::LoginRefusedLocked, "user", &username, None).await?;
            return Err(AppError::Unauthenticated(format!(
                "too many failed sign-ins: this account is locked until {}; a supervisor can unlock it",
                self.format_time(until)
            )));
        }
        let pw = password.to_owned();
        let phc = user.password_hash.clone();
        if !blocking(move || password_matches(&pw, &phc)).await {
            let mut tx = self.store.begin().await?;
            let failures = tx.record_failed_login(user.id, now).await?;
            let lock = (failures >= self.config.lockout_failures)
                .then(|| now + SignedDuration::from_mins(self.config.lockout_minutes));
            if let Some(until) = lock {
                tx.lock_user(user.id, until).await?;
            }
            tx.audit(NewAuditEvent {
                at: now,
                actor: &username,
                action: if lock.is_some() {
                    AuditAction::LoginLockout
                } else {
                    AuditAction::LoginFail
                },
                entity: "user",
                entity_id: username.clone(),
                patient_id: None,
                before: None,
                after: audit::state(&audit::FailedLogins { failed_logins: failures }),
            })
            .await?;
            tx.commit().await?;
            return Err(AppError::Unauthenticated(REFUSED.into()));
        }
        let role = user.role;
        let token = random_hex(32);
        let csrf_token = random_hex(32);
        let mut tx = self.store.begin().await?;
        tx.record_successful_login(user.id).await?;
        tx.insert_session(&digest(&token), user.id, &csrf_token, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &username,
            action: AuditAction::Login,
            entity: "user",
            entity_id: username.clone(),
            patient_id: None,
            before: None,
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(LoginOutcome {
            token,
            csrf_token,
            actor: Actor { name: user.username, display_name: user.display_name, role },
        })
    }

    /// The session behind a cookie token, if it is live; ends it (audited) when it has idled
    /// out or grown too old.
    pub async fn session(&self, token: &str) -> AppResult<(SessionRow, Actor)> {
        self.live_session(token, true).await
    }

    /// Like [`Lab::session`], without counting as activity: for what a page asks on its own
    /// (the critical-call banner polls every 30 s), which must not keep an unattended
    /// workstation signed in past the automatic logoff.
    pub async fn peek_session(&self, token: &str) -> AppResult<(SessionRow, Actor)> {
        self.live_session(token, false).await
    }

    async fn live_session(&self, token: &str, activity: bool) -> AppResult<(SessionRow, Actor)> {
        let gone = || AppError::Unauthenticated("your session has ended: sign in again".into());
        let hash = digest(token);
        let session = self.store.session(&hash).await?.ok_or_else(gone)?;
        let now = self.now_at();
        let idle = now.since(session.last_seen_at)
            > SignedDuration::from_mins(self.config.session_idle_minutes);
        let old = now.since(session.created_at)
            > SignedDuration::from_hours(self.config.session_max_hours);
        if idle || old || !session.user.active {
            let mut tx = self.store.begin().await?;
            tx.end_session(&hash, now).await?;
            tx.audit(NewAuditEvent {
                at: now,
                actor: &session.user.username,
                action: AuditAction::SessionTimeout,
                entity: "user",
                entity_id: session.user.username.clone(),
                patient_id: None,
                before: None,
                after: None,
            })
            .await?;
            tx.commit().await?;
            return Err(gone());
        }
        if activity {
            self.store.touch_session(&hash, now).await?;
        }
        let role = session.user.role;
        let actor = Actor {
            name: session.user.username.clone(),
            display_name: session.user.display_name.clone(),
            role,
        };
        Ok((session, actor))
    }

    /// Signs out.
    pub async fn logout(&self, token: &str, actor: &Actor) -> AppResult<()> {
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.end_session(&digest(token), now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::Logout,
            entity: "user",
            entity_id: actor.name.clone(),
            patient_id: None,
            before: None,
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks a signature: the actor re-enters their password for an action that changes what
    /// a physician already saw (a correction).
    pub async fn check_signature(&self, actor: &Actor, password: &str) -> AppResult<()> {
        let user = self.store.user_by_username(&actor.name).await?;
        let ok = match user {
            Some(u) => {
                let pw = password.to_owned();
                blocking(move || password_matches(&pw, &u.password_hash)).await
            }
            None => false,
        };
        if ok {
            Ok(())
        } else {
            self.audit_plain(AuditAction::SignatureFail, "user", &actor.name, None).await?;
            Err(AppError::invalid("signature", "your password is not right: re-enter it to sign"))
        }
    }

    /// Creates an API key acting with `role`; the key is returned once and stored as a hash.
    pub async fn create_api_key(&self, actor: &Actor, name: &str, role: Role) -> AppResult<String> {
        self.require(actor, Action::ManageUsers)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(AppError::invalid(
                "name",
                "name the key (1 to 64 characters), for example the system using it",
            ));
        }
        let key = format!("{API_KEY_PREFIX}{}", random_hex(32));
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.insert_api_key(name, &digest(&key), role, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::ApiKeyCreate,
            entity: "api_key",
            entity_id: name.to_owned(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::ApiKeyCreated { name, role: role.code() }),
        })
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The actor behind a bearer API key.
    pub async fn api_key_actor(&self, key: &str) -> AppResult<Actor> {
        let refused =
            || AppError::Unauthenticated("the API key is not valid or was revoked".into());
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(refused());
        }
        let row = self.store.api_key(&digest(key)).await?.ok_or_else(refused)?;
        let role = row.role;
        Ok(Actor { name: format!("apikey:{}", row.name), display_name: row.name, role })
    }

    /// Records an event that changes nothing else (failed sign-ins, views).
    pub(crate) async fn audit_plain(
        &self,
        action: AuditAction,
        entity: &str,
        entity_id: &str,
        patient_id: Option<i64>,
    ) -> AppResult<()> {
        self.audit_as(entity_id, action, entity, entity_id, patient_id).await
    }

    /// Records an event by `actor` that changes nothing else (a view of a patient's results).
    pub(crate) async fn audit_as(
        &self,
        actor: &str,
        action: AuditAction,
        entity: &str,
        entity_id: &str,
        patient_id: Option<i64>,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        tx.audit(NewAuditEvent {
            at: self.now_at(),
            actor,
            action,
            entity,
            entity_id: entity_id.to_owned(),
            patient_id,
            before: None,
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A valid argon2id hash of a random password, verified against when the username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0R0xlfzqvW3Yg0mKxm1bVlKc3o0G8V8Cq9YlT3l2f0M";
