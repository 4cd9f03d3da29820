//! What a job is: the row a worker claims, and the request to enqueue one.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row, postgres::PgRow};

use crate::domain::{ids::TenantId, states::JobStatus};

/// A job's id: its row's `bigserial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A job as claimed by a worker. `locked_by` and `attempts` identify this claim: completing or
/// failing it acts only while the row still carries both.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    /// `None` for platform-level work.
    pub tenant_id: Option<TenantId>,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    /// The worker holding the lease.
    pub locked_by: String,
    /// When the lease ends; after that any worker may claim the job again.
    pub locked_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// `running` for a claimed job; `dead` for one a claim declared dead instead.
    pub status: JobStatus,
    /// Why its last attempt failed, when one did: what a dead-job handler can tell the user.
    pub last_error: Option<String>,
}

impl FromRow<'_, PgRow> for Job {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            tenant_id: row.try_get::<Option<String>, _>("tenant_id")?.map(TenantId::from_db),
            payload: row.try_get("payload")?,
            dedup_key: row.try_get("dedup_key")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            locked_by: row.try_get::<Option<String>, _>("locked_by")?.unwrap_or_default(),
            locked_until: row.try_get::<Option<DateTime<Utc>>, _>("locked_until")?.unwrap_or_default(),
            created_at: row.try_get("created_at")?,
            status: row.try_get("status")?,
            last_error: row.try_get("last_error").unwrap_or(None),
        })
    }
}

/// A job to enqueue. Built with [`NewJob::new`] and the setters for what is not the default.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub tenant_id: Option<TenantId>,
    pub payload: serde_json::Value,
    /// Not before this time; `None` means now (the database's clock).
    pub run_at: Option<DateTime<Utc>>,
    /// While a job of the same kind and key is queued or running, enqueueing this one does
    /// nothing: periodic work scheduled by every instance runs once.
    pub dedup_key: Option<String>,
    pub max_attempts: i32,
}

impl NewJob {
    /// The default number of attempts before a job is declared dead.
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 8;

    /// A platform-level job of `kind`, due now, not deduplicated.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            tenant_id: None,
            payload,
            run_at: None,
            dedup_key: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Work on behalf of `tenant`.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Not before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// At most one pending job of this kind with `key`.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Declared dead after `n` failed attempts.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }
}
