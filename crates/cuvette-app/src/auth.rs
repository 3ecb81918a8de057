//! Users, sign-in, sessions and API keys.
//!
//! Passwords are argon2id PHC strings (OWASP minimum: m=19 MiB, t=2, p=1); a new one must pass
//! `cuvette_domain::password` (NIST SP 800-63B). Session tokens and API keys are 256-bit random
//! values; only their SHA-256 is stored. Failed sign-ins slow further attempts on the account
//! and from the source address (`cuvette_domain::throttle`) instead of locking anyone out; a
//! supervisor sees and clears the delays. Every sign-in, failure, delay, clearing and sign-out
//! is audited.

use std::net::IpAddr;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::password::check_new_password;
use cuvette_domain::scope::Scopes;
use cuvette_domain::throttle::{Admission, Standing, Throttle, ThrottlePolicy};
use cuvette_domain::{Action, Role};
use cuvette_store::{NewAuditEvent, SessionRow, UserRow};
use jiff::SignedDuration;
use jiff::Timestamp;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::audit;
use crate::{Actor, AppError, AppResult, Lab, LabConfig};

/// Every API key starts with this, so a leaked one is recognisable in logs and scanners.
pub const API_KEY_PREFIX: &str = "cuv_";
/// Accounts and addresses whose failures are remembered at most, each (memory stays bounded
/// whatever user IDs a guesser invents).
const THROTTLE_KEYS_MAX: usize = 10_000;
/// Failures are forgotten this long after the last one (microseconds: an hour).
const THROTTLE_FORGET_AFTER_US: i64 = 3_600_000_000;

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

/// Checks a new password for `username`; the refusal names the rule it breaks.
pub fn check_password(password: &str, username: &str) -> AppResult<()> {
    check_new_password(password, username).map_err(|r| AppError::invalid("password", r.to_string()))
}

/// A wait in microseconds as the whole seconds a person is told (rounded up: never "in 0 s").
fn whole_seconds(us: i64) -> i64 {
    (us.max(0) + 999_999) / 1_000_000
}

/// Where failed sign-ins come from: the account tried, or the address it was tried from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignInKey {
    /// A user ID as typed (lowercased), whether or not such a user exists.
    Account(String),
    /// The network address of the browser (or of the proxy in front of it).
    Address(IpAddr),
}

impl SignInKey {
    /// Reads a key from a form's `kind` (`account` or `address`) and `key` fields.
    pub fn parse(kind: &str, key: &str) -> AppResult<SignInKey> {
        let key = key.trim();
        match kind {
            "account" if !key.is_empty() => Ok(SignInKey::Account(key.to_ascii_lowercase())),
            "account" => Err(AppError::invalid("key", "enter the user ID whose delay to clear")),
            "address" => key.parse().map(SignInKey::Address).map_err(|_| {
                AppError::invalid(
                    "key",
                    format!("{key:?} is not a network address (like 10.1.2.3)"),
                )
            }),
            _ => Err(AppError::invalid("kind", "choose an account or an address")),
        }
    }

    /// `account` or `address`, as the form sends it.
    pub fn kind(&self) -> &'static str {
        match self {
            SignInKey::Account(_) => "account",
            SignInKey::Address(_) => "address",
        }
    }

    /// The user ID or the address, as text.
    pub fn value(&self) -> String {
        match self {
            SignInKey::Account(name) => name.clone(),
            SignInKey::Address(ip) => ip.to_string(),
        }
    }

    /// The audit log's entity kind for it.
    fn entity(&self) -> &'static str {
        match self {
            SignInKey::Account(_) => "user",
            SignInKey::Address(_) => "address",
        }
    }
}

/// An account or address whose sign-ins are slowed down, for the supervisor's screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInDelay {
    /// Which.
    pub key: SignInKey,
    /// Consecutive failed sign-ins.
    pub failures: u32,
    /// The last one.
    pub last_failure_at: Timestamp,
    /// The next attempt is looked at from this time on.
    pub allowed_from: Timestamp,
    /// Whether it must still wait now.
    pub waiting: bool,
    /// Attempts refused while waiting.
    pub refused: u32,
}

/// The failed sign-ins the lab remembers, per account and per source address.
pub(crate) struct SignInThrottle {
    accounts: Throttle<String>,
    addresses: Throttle<IpAddr>,
}

impl SignInThrottle {
    pub(crate) fn new(config: &LabConfig) -> Mutex<SignInThrottle> {
        let policy = |free_failures| ThrottlePolicy {
            free_failures,
            delay_first_us: 1_000_000,
            delay_max_us: config.throttle_delay_max_seconds.max(1) * 1_000_000,
            forget_after_us: THROTTLE_FORGET_AFTER_US,
            keys_max: THROTTLE_KEYS_MAX,
        };
        Mutex::new(SignInThrottle {
            accounts: Throttle::new(policy(config.throttle_account_free_failures)),
            addresses: Throttle::new(policy(config.throttle_address_free_failures)),
        })
    }
}

impl Lab {
    fn sign_ins(&self) -> std::sync::MutexGuard<'_, SignInThrottle> {
        // A panic while holding it cannot leave a map torn (each change is one insert or
        // remove), so a poisoned lock is still usable.
        self.sign_ins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a wrong password (or an unknown user ID) for the account and the address, and
    /// audits it with the delays it starts.
    async fn record_failed_sign_in(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: cuvette_domain::time::Timestamp,
    ) -> AppResult<()> {
        let now_us = now.as_micros();
        let (account, from, account_free, address_free) = {
            let mut t = self.sign_ins();
            let account = t.accounts.fail(&username.to_owned(), now_us);
            let from = address.map(|ip| (ip, t.addresses.fail(&ip, now_us)));
            (account, from, t.accounts.policy().free_failures, t.addresses.policy().free_failures)
        };
        let mut tx = self.store.begin().await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: username,
            action: AuditAction::LoginFail,
            entity: "user",
            entity_id: username.to_owned(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::FailedLogins {
                failed_logins: i64::from(account.failures),
                address: address.map(|ip| ip.to_string()),
            }),
        })
        .await?;
        // A delay is audited when it starts; the failures after it are in `login.fail`.
        let started = |s: &Standing, free: u32| s.failures == free.max(1) && s.waiting(now_us);
        let mut slowed = Vec::new();
        if started(&account, account_free) {
            slowed.push((SignInKey::Account(username.to_owned()), account));
        }
        if let Some((ip, s)) = from.filter(|(_, s)| started(s, address_free)) {
            slowed.push((SignInKey::Address(ip), s));
        }
        for (key, s) in slowed {
            tx.audit(NewAuditEvent {
                at: now,
                actor: username,
                action: AuditAction::LoginThrottle,
                entity: key.entity(),
                entity_id: key.value(),
                patient_id: None,
                before: None,
                after: audit::state(&audit::Throttled {
                    failures: s.failures,
                    wait_seconds: whole_seconds(s.allowed_from - now_us),
                }),
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Accounts and addresses whose sign-ins are slowed down, accounts first.
    pub async fn sign_in_delays(&self, actor: &Actor) -> AppResult<Vec<SignInDelay>> {
        self.require(actor, Action::ManageUsers)?;
        let now = self.now_at().as_micros();
        let at = |us: i64| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
        let delay = |key: SignInKey, s: Standing| SignInDelay {
            key,
            failures: s.failures,
            last_failure_at: at(s.last_failure_at),
            allowed_from: at(s.allowed_from),
            waiting: s.waiting(now),
            refused: s.refused,
        };
        let t = self.sign_ins();
        let accounts =
            t.accounts.slowed(now).into_iter().map(|(k, s)| delay(SignInKey::Account(k), s));
        let addresses =
            t.addresses.slowed(now).into_iter().map(|(k, s)| delay(SignInKey::Address(k), s));
        Ok(accounts.chain(addresses).collect())
    }

    /// Clears the failed sign-ins of an account or an address (a supervisor's decision, when a
    /// colleague is kept waiting), audited with what was cleared.
    pub async fn clear_sign_in_delay(&self, actor: &Actor, key: &SignInKey) -> AppResult<()> {
        self.require(actor, Action::ManageUsers)?;
        let now = self.now_at().as_micros();
        let cleared = {
            let mut t = self.sign_ins();
            let standing = match key {
                SignInKey::Account(name) => t.accounts.standing(name, now),
                SignInKey::Address(ip) => t.addresses.standing(ip, now),
            };
            if standing.is_some() {
                match key {
                    SignInKey::Account(name) => t.accounts.clear(name),
                    SignInKey::Address(ip) => t.addresses.clear(ip),
                };
            }
            standing
        };
        let Some(before) = cleared else {
            return Err(AppError::invalid(
                "key",
                format!(
                    "no failed sign-ins are remembered for the {} {}: it may have been cleared already",
                    key.kind(),
                    key.value()
                ),
            ));
        };
        let mut tx = self.store.begin().await?;
        tx.audit(NewAuditEvent {
            at: cuvette_domain::time::Timestamp::from_micros(now),
            actor: &actor.name,
            action: AuditAction::LoginThrottleClear,
            entity: key.entity(),
            entity_id: key.value(),
            patient_id: None,
            before: audit::state(&audit::ThrottleCleared {
                failures: before.failures,
                refused: before.refused,
            }),
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
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
        check_password(&user.password, &username)?;
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

    /// Changes a user's role or active flag.
    pub async fn update_user(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        active: bool,
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
        let before =
            audit::state(&audit::UserBefore { role: user.role.code(), active: user.active });
        user.role = role;
        user.active = active;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.update_user(&user).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::UserEdit,
            entity: "user",
            entity_id: user.username.clone(),
            patient_id: None,
            before,
            after: audit::state(&audit::UserAfter { role: user.role.code(), active: user.active }),
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

    /// Signs in from an unknown address (the CLI, tests): see [`Lab::login_from`].
    pub async fn login(&self, username: &str, password: &str) -> AppResult<LoginOutcome> {
        self.login_from(username, password, None).await
    }

    /// Signs in from `address`. Wrong passwords slow down further attempts on the account and
    /// from the address; an attempt made while either must wait is refused without the
    /// password being looked at. The message never says whether the username exists.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> AppResult<LoginOutcome> {
        const REFUSED: &str = "the username or password is not right";
        // No username is longer than 64; a longer one is kept to that in the audit log.
        let username: String = username.trim().to_ascii_lowercase().chars().take(64).collect();
        let now = self.now_at();
        let now_us = now.as_micros();
        let wait = {
            let mut t = self.sign_ins();
            let account = t.accounts.admit(&username, now_us);
            let from = address.map_or(Admission::Check, |ip| t.addresses.admit(&ip, now_us));
            [account, from]
                .into_iter()
                .filter_map(|a| match a {
                    Admission::Wait { until } => Some(until),
                    Admission::Check => None,
                })
                .max()
        };
        if let Some(until) = wait {
            // Not audited one by one: a refusal here costs a guesser nothing, so it must cost
            // the log nothing either. The count shows on the supervisor's screen.
            tracing::info!(username = %username, "sign-in refused: waiting after failed attempts");
            let seconds = whole_seconds(until - now_us);
            let time = Timestamp::from_microsecond(until)
                .map(|t| {
                    t.to_zoned_datetime(self.config.time_zone.clone())
                        .strftime("%H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            return Err(AppError::Unauthenticated(format!(
                "too many failed sign-ins: try again at {time} (in {seconds} s); a supervisor can clear the delay"
            )));
        }
        let Some(user) = self.store.user_by_username(&username).await? else {
            // Spend the same time as a real check, so timing does not reveal valid usernames.
            let pw = password.to_owned();
            blocking(move || password_matches(&pw, DUMMY_HASH)).await;
            self.record_failed_sign_in(&username, address, now).await?;
            return Err(AppError::Unauthenticated(REFUSED.into()));
        };
        if !user.active {
            self.audit_plain(AuditAction::LoginRefusedInactive, "user", &username, None).await?;
            return Err(AppError::Unauthenticated(
                "this account is disabled: ask a supervisor".into(),
            ));
        }
        let pw = password.to_owned();
        let phc = user.password_hash.clone();
        if !blocking(move || password_matches(&pw, &phc)).await {
            self.record_failed_sign_in(&username, address, now).await?;
            return Err(AppError::Unauthenticated(REFUSED.into()));
        }
        {
            let mut t = self.sign_ins();
            t.accounts.succeed(&username);
            if let Some(ip) = address {
                // One person signing in from a shared workstation or proxy ends the run of
                // failures from it; the accounts guessed at keep theirs.
                t.addresses.succeed(&ip);
            }
        }
        let role = user.role;
        let token = random_hex(32);
        let csrf_token = random_hex(32);
        let mut tx = self.store.begin().await?;
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
    /// It holds no FHIR scopes: [`Lab::create_api_key_with_scopes`] gives it some.
    pub async fn create_api_key(&self, actor: &Actor, name: &str, role: Role) -> AppResult<String> {
        self.create_api_key_with_scopes(actor, name, role, &Scopes::default()).await
    }

    /// Creates an API key acting with `role` and reading through FHIR what `scopes` allow.
    pub async fn create_api_key_with_scopes(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        scopes: &Scopes,
    ) -> AppResult<String> {
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
        tx.insert_api_key(name, &digest(&key), role, scopes, &actor.name, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::ApiKeyCreate,
            entity: "api_key",
            entity_id: name.to_owned(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::ApiKeyCreated {
                name,
                role: role.code(),
                scopes: &scopes.to_string(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The actor behind a bearer API key.
    pub async fn api_key_actor(&self, key: &str) -> AppResult<Actor> {
        Ok(self.api_key_access(key).await?.0)
    }

    /// The actor behind a bearer API key, with the FHIR scopes the key holds.
    pub async fn api_key_access(&self, key: &str) -> AppResult<(Actor, Scopes)> {
        let refused =
            || AppError::Unauthenticated("the API key is not valid or was revoked".into());
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(refused());
        }
        let row = self.store.api_key(&digest(key)).await?.ok_or_else(refused)?;
        let role = row.role;
        let actor = Actor { name: format!("apikey:{}", row.name), display_name: row.name, role };
        Ok((actor, row.scopes))
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
