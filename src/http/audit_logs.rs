//! The audit log, read-only: list with filters, CSV export, and chain verification.

use axum::{extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Needs, scopes::AuditLogsRead},
    error::{ApiError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::ApiQuery,
};
use crate::{
    audit::{self, ChainReport},
    auth::Principal,
    db::tenant::begin_tenant,
    domain::ids::TenantId,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(export)).routes(routes!(verify))
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct AuditLog {
    #[schema(example = "aud_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub id: String,
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    /// `api_key`, `oauth_client`, `user`, `credential` (a failed authentication) or `platform_admin`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub credential_id: Option<String>,
    /// `METHOD /route/template` for API calls, or an event such as `auth.login`.
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `success`, `failure`, `denied` or `security_incident`.
    pub outcome: String,
    /// The HTTP status answered.
    pub status: Option<i32>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// SHA-256 chaining this entry to the previous one, hex.
    pub hash: String,
}

const COLUMNS: &str = "id, seq, occurred_at, actor_type, actor_id, credential_id, action, resource_type, resource_id,
    outcome, status, ip, request_id, detail, encode(hash, 'hex') as hash";

/// Filters shared by the list and the export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// Exact action, e.g. `POST /api/v1/api_keys` or `auth.login`.
    pub action: Option<String>,
    /// `success`, `failure`, `denied` or `security_incident`.
    pub outcome: Option<String>,
    /// The acting key, client or user.
    pub actor_id: Option<String>,
    pub resource_id: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 25). List only.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page. List only.
    pub cursor: Option<String>,
}

impl Filters {}

impl super::query::QueryParams for Filters {
    fn problems(&self) -> Vec<super::error::FieldError> {
        let mut problems = Vec::new();
        if let Some(outcome) = &self.outcome
            && !["success", "failure", "denied", "security_incident"].contains(&outcome.as_str())
        {
            let message = "must be success, failure, denied or security_incident".into();
            problems.push(super::error::FieldError { field: "outcome".into(), message });
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            problems.push(super::error::FieldError { field: "until".into(), message: "must be after since".into() });
        }
        problems
    }
}

const FILTER_SQL: &str = "tenant_id = $1
    and ($2::text is null or action = $2) and ($3::text is null or outcome = $3)
    and ($4::text is null or actor_id = $4) and ($5::text is null or resource_id = $5)
    and ($6::timestamptz is null or occurred_at >= $6) and ($7::timestamptz is null or occurred_at < $7)
    and ($8::bigint is null or seq < $8)";

async fn fetch(
    state: &AppState,
    tenant: &TenantId,
    f: &Filters,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditLog>, sqlx::Error> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let rows =
        sqlx::query_as(&format!("select {COLUMNS} from audit_logs where {FILTER_SQL} order by seq desc limit $9"))
            .bind(tenant.as_str())
            .bind(&f.action)
            .bind(&f.outcome)
            .bind(&f.actor_id)
            .bind(&f.resource_id)
            .bind(f.since)
            .bind(f.until)
            .bind(before_seq)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(rows)
}

/// List audit log entries
///
/// Newest first. One entry per mutating API call, authentication failure of a known credential,
/// sign-in, and security incident (an attempt on another tenant's resource, a reused refresh
/// token).
#[utoipa::path(
    get,
    path = "/audit_logs",
    tag = "audit_logs",
    params(Filters),
    responses((status = 200, body = Page<AuditLog>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["audit_logs:read"]), ("bearer" = ["audit_logs:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<AuditLogsRead>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Result<ApiJson<Page<AuditLog>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(filters.limit);
    let before = cursors.after(filters.cursor.as_deref(), |s| s.parse::<i64>().ok().filter(|n| *n > 0))?;
    let rows = fetch(&state, &principal.tenant.id, &filters, before, i64::from(limit) + 1).await?;
    Ok(ApiJson(cursors.page(rows, limit, |r| r.seq.to_string())))
}

/// Export audit log entries as CSV
///
/// The same filters as the list, newest first, streamed in pages so memory stays flat whatever
/// the size. Columns: `seq, id, occurred_at, actor_type, actor_id, credential_id, action,
/// resource_type, resource_id, outcome, status, ip, request_id, detail, hash`.
#[utoipa::path(
    get,
    path = "/audit_logs/export",
    tag = "audit_logs",
    params(Filters),
    responses((status = 200, description = "RFC 4180 CSV with a header row", content_type = "text/csv", body = String)),
    security(("api_key" = ["audit_logs:read"]), ("bearer" = ["audit_logs:read"]))
)]
async fn export(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<AuditLogsRead>,
    ApiQuery(filters): ApiQuery<Filters>,
) -> Result<Response, ApiError> {
    const PAGE: i64 = 1000;
    let header_row = super::csv::text_row(&[
        "seq",
        "id",
        "occurred_at",
        "actor_type",
        "actor_id",
        "credential_id",
        "action",
        "resource_type",
        "resource_id",
        "outcome",
        "status",
        "ip",
        "request_id",
        "detail",
        "hash",
    ]);
    let tenant = principal.tenant.id.clone();
    // State: (next page starts before this seq, finished?, header written?)
    let stream = futures_util::stream::unfold((None::<i64>, false, false), move |(before, done, started)| {
        let (state, tenant, filters) = (state.clone(), tenant.clone(), clone_filters(&filters));
        let header_row = header_row.clone();
        async move {
            if !started {
                return Some((Ok::<_, std::io::Error>(header_row.into_bytes()), (before, false, true)));
            }
            if done {
                return None;
            }
            match fetch(&state, &tenant, &filters, before, PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map(|r| r.seq);
                    let finished = (rows.len() as i64) < PAGE;
                    let mut chunk = super::csv::CsvWriter::default();
                    for r in &rows {
                        chunk.text_row(&[
                            &r.seq.to_string(),
                            &r.id,
                            &r.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                            &r.actor_type,
                            r.actor_id.as_deref().unwrap_or(""),
                            r.credential_id.as_deref().unwrap_or(""),
                            &r.action,
                            r.resource_type.as_deref().unwrap_or(""),
                            r.resource_id.as_deref().unwrap_or(""),
                            &r.outcome,
                            &r.status.map(|s| s.to_string()).unwrap_or_default(),
                            r.ip.as_deref().unwrap_or(""),
                            r.request_id.as_deref().unwrap_or(""),
                            &r.detail.to_string(),
                            &r.hash,
                        ]);
                    }
                    Some((Ok(chunk.take()), (last, finished, true)))
                }
                Err(error) => {
                    tracing::error!(%error, "audit log export failed mid-stream");
                    Some((Err(std::io::Error::other("export interrupted")), (before, true, true)))
                }
            }
        }
    });
    Ok(super::csv::download("audit_logs.csv", stream))
}

fn clone_filters(f: &Filters) -> Filters {
    Filters {
        action: f.action.clone(),
        outcome: f.outcome.clone(),
        actor_id: f.actor_id.clone(),
        resource_id: f.resource_id.clone(),
        since: f.since,
        until: f.until,
        limit: None,
        cursor: None,
    }
}

/// Verify the audit log's hash chain
///
/// Recomputes every entry's hash from its content and its predecessor. `valid: false` names the
/// first entry that was changed, inserted or removed.
#[utoipa::path(
    get,
    path = "/audit_logs/verify",
    tag = "audit_logs",
    responses((status = 200, body = ChainReport)),
    security(("api_key" = ["audit_logs:read"]), ("bearer" = ["audit_logs:read"]))
)]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<AuditLogsRead>,
) -> Result<ApiJson<ChainReport>, ApiError> {
    Ok(ApiJson(audit::verify(&state.db, &principal.tenant.id).await?))
}
