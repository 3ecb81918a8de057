//! What can go wrong in a use case, in words a user can act on.

use cuvette_store::StoreError;

/// A field of a form and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The form field's name.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Not signed in, or the session or key is no longer valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but the role is not privileged for this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input is wrong; each field says why. Nothing was saved.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// Someone else changed it first; reload.
    #[error("{0}")]
    Conflict(String),
    /// A lab rule refuses the step (a rejected specimen, a critical without a call, …).
    #[error("{0}")]
    Refused(String),
    /// The database cannot do the work for now (unreachable, disk full, locked, restarting);
    /// nothing was saved and the same request may succeed once the fault clears.
    #[error(
        "the database is not answering for now: nothing was saved; try again in a minute, and tell the system administrator if it lasts"
    )]
    Unavailable(StoreError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Store(StoreError),
}

impl AppError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(vec![FieldError { field: field.into(), message: message.into() }])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => AppError::Conflict(why),
            other if other.is_unavailable() => AppError::Unavailable(other),
            other => AppError::Store(other),
        }
    }
}

/// Result alias for use cases.
pub type AppResult<T> = Result<T, AppError>;
