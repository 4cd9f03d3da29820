//! Members: the users of a tenant and their roles. Owners and admins manage them; only an owner
//! can make or unmake an owner, and the last owner cannot be removed or demoted.

use super::path_id::PathId;
use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{MembersRead, MembersWrite},
    },
    error::{ApiError, ErrorCode, Problem},
    json::ApiJson,
    pagination::{self, Page, PageParams},
    query::ApiQuery,
};
use crate::{
    auth::{Actor, Principal},
    db::tenant::begin_tenant,
    domain::{
        ids::{TenantId, UserId},
        scope::Role,
    },
    events,
    state::AppState,
    tenancy,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add, list)).routes(routes!(update, remove))
}

pub use crate::tenancy::Member;

#[derive(FromRow)]
struct MemberRow {
    user_id: String,
    email: String,
    name: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Member {
            user_id: r.user_id,
            email: r.email,
            name: r.name,
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            created_at: r.created_at,
        }
    }
}

const MEMBER_SELECT: &str = "select m.user_id, u.email, u.name, m.role, m.created_at
    from memberships m join users u on u.id = m.user_id";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub email: String,
    pub role: Role,
    pub name: Option<String>,
    /// Required when no user with this email exists yet (at least 12 characters).
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: Role,
}

/// Add a member
///
/// Adds an existing user by email, or creates the user (a `password` is then required).
#[utoipa::path(
    post,
    path = "/members",
    tag = "members",
    request_body = AddMember,
    responses(
        (status = 201, body = Member),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["members:write"]), ("bearer" = ["members:write"]))
)]
async fn add(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<MembersWrite>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<impl IntoResponse, ApiError> {
    only_owners_touch_owners(&principal, body.role)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let user = tenancy::ensure_user(&mut tx, &body.email, body.name.as_deref(), body.password).await?;
    tenancy::add_member(&mut tx, &principal.tenant.id, &user.id, body.role).await?;
    let member = fetch(&mut tx, &principal.tenant.id, &user.id).await?.ok_or_else(ApiError::not_found)?;
    events::record(&mut tx, &principal.tenant.id, "member.added", &member).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Extension(AuditResource::new("member", &member.user_id)), ApiJson(member)))
}

/// List members
#[utoipa::path(
    get,
    path = "/members",
    tag = "members",
    params(PageParams),
    responses((status = 200, body = Page<Member>)),
    security(("api_key" = ["members:read"]), ("bearer" = ["members:read"]))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<MembersRead>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Member>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(params.limit);
    let after = cursors.after(params.cursor.as_deref(), UserId::parse)?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let rows: Vec<MemberRow> = sqlx::query_as(&format!(
        "{MEMBER_SELECT} where m.tenant_id = $1 and ($2::text is null or m.user_id < $2) order by m.user_id desc limit $3"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(after.as_ref().map(UserId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ApiJson(cursors.page(rows.into_iter().map(Member::from).collect(), limit, |m| m.user_id.clone())))
}

/// Change a member's role
#[utoipa::path(
    patch,
    path = "/members/{user_id}",
    tag = "members",
    params(("user_id" = String, Path, description = "The member's user id (`usr_…`)")),
    request_body = UpdateMember,
    responses(
        (status = 200, body = Member),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave the tenant without an owner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["members:write"]), ("bearer" = ["members:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<MembersWrite>,
    PathId(user): PathId<UserId>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let Some(current) = fetch(&mut tx, &principal.tenant.id, user.as_str()).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::Memberships, user.as_str()));
    };
    only_owners_touch_owners(&principal, current.role)?;
    only_owners_touch_owners(&principal, body.role)?;
    if current.role == Role::Owner && body.role != Role::Owner {
        keep_an_owner(&mut tx, &principal.tenant.id).await?;
    }
    sqlx::query("update memberships set role = $3 where tenant_id = $1 and user_id = $2")
        .bind(principal.tenant.id.as_str())
        .bind(user.as_str())
        .bind(body.role.as_str())
        .execute(&mut *tx)
        .await?;
    let member = fetch(&mut tx, &principal.tenant.id, user.as_str()).await?.ok_or_else(ApiError::not_found)?;
    // A role set to what it already was changes nothing, so it announces nothing.
    if member.role != current.role {
        let mut changed = serde_json::to_value(&member).map_err(anyhow::Error::from)?;
        changed["previous_role"] = serde_json::to_value(current.role).map_err(anyhow::Error::from)?;
        events::record(&mut tx, &principal.tenant.id, "member.updated", changed).await?;
    }
    tx.commit().await?;
    state.auth.forget_cached_credentials();
    Ok((Extension(AuditResource::new("member", &member.user_id)), ApiJson(member)))
}

/// Remove a member
///
/// Ends the user's access to this tenant (their sessions stop working within seconds). The user
/// and their other memberships remain.
#[utoipa::path(
    delete,
    path = "/members/{user_id}",
    tag = "members",
    params(("user_id" = String, Path, description = "The member's user id (`usr_…`)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be removed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["members:write"]), ("bearer" = ["members:write"]))
)]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<MembersWrite>,
    PathId(user): PathId<UserId>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let Some(current) = fetch(&mut tx, &principal.tenant.id, user.as_str()).await? else {
        drop(tx);
        return Err(ApiError::not_found_in(Probe::Memberships, user.as_str()));
    };
    only_owners_touch_owners(&principal, current.role)?;
    if current.role == Role::Owner {
        keep_an_owner(&mut tx, &principal.tenant.id).await?;
    }
    sqlx::query("delete from memberships where tenant_id = $1 and user_id = $2")
        .bind(principal.tenant.id.as_str())
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
    events::record(&mut tx, &principal.tenant.id, "member.removed", &current).await?;
    tx.commit().await?;
    state.auth.forget_cached_credentials();
    Ok((StatusCode::NO_CONTENT, Extension(AuditResource::new("member", user.as_str()))))
}

async fn fetch(conn: &mut PgConnection, tenant: &TenantId, user: &str) -> Result<Option<Member>, sqlx::Error> {
    let row: Option<MemberRow> = sqlx::query_as(&format!("{MEMBER_SELECT} where m.tenant_id = $1 and m.user_id = $2"))
        .bind(tenant.as_str())
        .bind(user)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Member::from))
}

/// Only an owner (or a credential holding `*`) may grant, change or remove the owner role.
fn only_owners_touch_owners(principal: &Principal, role: Role) -> Result<(), ApiError> {
    let is_owner = match &principal.actor {
        Actor::User(_, r) => *r == Role::Owner,
        _ => principal.scopes.grants(crate::domain::scope::Scope::All),
    };
    if role == Role::Owner && !is_owner {
        return Err(ApiError::insufficient_scope(crate::domain::scope::Scope::All));
    }
    Ok(())
}

/// Refuses a change that would leave no owner. Locks the owners' rows so two concurrent
/// demotions cannot both pass.
async fn keep_an_owner(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), ApiError> {
    let owners: Vec<String> =
        sqlx::query_scalar("select user_id from memberships where tenant_id = $1 and role = 'owner' for update")
            .bind(tenant.as_str())
            .fetch_all(conn)
            .await?;
    if owners.len() <= 1 {
        return Err(ApiError::new(ErrorCode::Conflict, "a tenant must keep at least one owner"));
    }
    Ok(())
}
