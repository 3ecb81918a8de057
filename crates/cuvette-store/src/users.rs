//! Users, sessions and API keys. Secrets are never stored: passwords as argon2id PHC strings
//! (hashed by the caller), session tokens and API keys as SHA-256 hex digests.

use sqlx::Row;
use sqlx::any::AnyRow;

use cuvette_domain::{Action, Role};

use crate::{Store, StoreError, StoreResult, Timestamp, Tx, code, opt_time, time};

/// A user account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Internal id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Name shown on screens and reports.
    pub display_name: String,
    /// Role code.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Whether the account may sign in.
    pub active: bool,
    /// Consecutive failed sign-ins.
    pub failed_logins: i64,
    /// Locked until this time after too many failures.
    pub locked_until: Option<Timestamp>,
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// SHA-256 of the cookie's token.
    pub token_hash: String,
    /// The user.
    pub user: UserRow,
    /// The synchronizer token every form must carry.
    pub csrf_token: String,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Last request.
    pub last_seen_at: Timestamp,
}

/// An API key.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// Internal id.
    pub id: i64,
    /// Its name, used as the actor in the audit log (`apikey:NAME`).
    pub name: String,
    /// The role it acts in.
    pub role: Role,
    /// The SMART scopes it holds for the FHIR API.
    pub scopes: cuvette_domain::scope::Scopes,
}

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.password_hash, u.active, u.failed_logins, u.locked_until";

fn user_from_row(r: &AnyRow) -> StoreResult<UserRow> {
    Ok(UserRow {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: code(r, "app_user", "id", "role", Role::parse)?,
        password_hash: r.try_get("password_hash")?,
        active: r.try_get::<i64, _>("active")? != 0,
        failed_logins: r.try_get("failed_logins")?,
        locked_until: opt_time(r, "locked_until")?,
    })
}

impl Tx {
    /// Adds a user; a taken username is a conflict.
    pub async fn insert_user(
        &mut self,
        username: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO app_user (username, display_name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(username)
        .bind(display_name)
        .bind(role.code())
        .bind(password_hash)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, &format!("the username {username:?} is taken")))
    }

    /// Changes a user's role, name, password hash or active flag.
    pub async fn update_user(&mut self, user: &UserRow) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE app_user SET display_name = $1, role = $2, password_hash = $3, active = $4 WHERE id = $5",
        )
        .bind(&user.display_name)
        .bind(user.role.code())
        .bind(&user.password_hash)
        .bind(i64::from(user.active))
        .bind(user.id)
        .execute(self.conn())
        .await?
        .rows_affected();
        if n == 0 { Err(StoreError::NotFound("user")) } else { Ok(()) }
    }

    /// Records a failed sign-in and returns the consecutive failures so far. A lockout that
    /// has expired starts the count again.
    pub async fn record_failed_login(&mut self, user_id: i64, now: Timestamp) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE app_user SET \
               failed_logins = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 ELSE failed_logins + 1 END, \
               locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN NULL ELSE locked_until END \
             WHERE id = $2 RETURNING failed_logins",
        )
        .bind(now.as_micros())
        .bind(user_id)
        .fetch_one(self.conn())
        .await?)
    }

    /// Locks an account until a time.
    pub async fn lock_user(&mut self, user_id: i64, until: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE app_user SET locked_until = $1 WHERE id = $2")
            .bind(until.as_micros())
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Clears the failure count after a successful sign-in.
    pub async fn record_successful_login(&mut self, user_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE app_user SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Starts a session.
    pub async fn insert_session(
        &mut self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO session (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now.as_micros())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Ends a session (sign-out or timeout).
    pub async fn end_session(&mut self, token_hash: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE session SET ended_at = $1 WHERE token_hash = $2 AND ended_at IS NULL")
            .bind(now.as_micros())
            .bind(token_hash)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Adds an API key (its hash).
    pub async fn insert_api_key(
        &mut self,
        name: &str,
        key_hash: &str,
        role: Role,
        scopes: &cuvette_domain::scope::Scopes,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO api_key (name, key_hash, role, scopes, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(key_hash)
        .bind(role.code())
        .bind(scopes.to_string())
        .bind(now.as_micros())
        .bind(by)
        .fetch_one(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, &format!("an API key named {name:?} exists")))
    }
}

impl Tx {
    /// Replaces the privilege table with the `pairs` granted.
    pub async fn replace_privileges(&mut self, pairs: &[(Role, Action)]) -> StoreResult<()> {
        sqlx::query("DELETE FROM role_privilege").execute(self.conn()).await?;
        for (role, action) in pairs {
            sqlx::query("INSERT INTO role_privilege (role, action) VALUES ($1, $2)")
                .bind(role.code())
                .bind(action.code())
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// Unlocks an account and clears its failure count.
    pub async fn unlock_user(&mut self, user_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE app_user SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

impl Store {
    /// The stored privilege table as the (role, action) pairs granted. A code that does not
    /// parse is corrupt data: a privilege is never silently dropped or read as another.
    pub async fn privileges(&self) -> StoreResult<Vec<(Role, Action)>> {
        let rows = sqlx::query("SELECT role, action FROM role_privilege ORDER BY role, action")
            .fetch_all(self.reader())
            .await?;
        let corrupt = |column: &'static str, value: String| StoreError::Corrupt {
            table: "role_privilege",
            row: 0,
            column,
            value,
        };
        rows.iter()
            .map(|r| {
                let (role, action): (String, String) = (r.try_get("role")?, r.try_get("action")?);
                let role_code = Role::parse(&role).ok_or_else(|| corrupt("role", role))?;
                let action_code =
                    Action::parse(&action).ok_or_else(|| corrupt("action", action))?;
                Ok((role_code, action_code))
            })
            .collect()
    }

    /// A user by sign-in name.
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.username = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> StoreResult<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM app_user u ORDER BY u.username");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// A live session by token hash, with its user.
    pub async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.token_hash, s.csrf_token, s.created_at, s.last_seen_at \
             FROM session s JOIN app_user u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.ended_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| {
            Ok(SessionRow {
                token_hash: r.try_get("token_hash")?,
                user: user_from_row(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: time(&r, "created_at")?,
                last_seen_at: time(&r, "last_seen_at")?,
            })
        })
        .transpose()
    }

    /// Marks a session as used now (idle timeout counts from here). Not audited: it is not a
    /// change to the record, and runs outside any transaction.
    pub async fn touch_session(&self, token_hash: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE session SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now.as_micros())
            .bind(token_hash)
            .execute(self.reader())
            .await?;
        Ok(())
    }

    /// A live API key by its hash.
    pub async fn api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "SELECT id, name, role, scopes FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(ApiKeyRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                role: code(&r, "api_key", "id", "role", Role::parse)?,
                scopes: code(&r, "api_key", "id", "scopes", |s| {
                    cuvette_domain::scope::Scopes::parse(s).ok()
                })?,
            })
        })
        .transpose()
    }
}
