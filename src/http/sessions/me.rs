//! `GET /me`: the authenticated caller, and for a user every tenant they belong to.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Actor, Environment, Principal},
    db::tenant::begin_platform,
    domain::scope::Scope,
    http::{
        error::{ApiError, Problem},
        json::ApiJson,
    },
    state::AppState,
};

/// The caller, as this API sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub tenant_id: String,
    /// The tenant's name, e.g. for an integration's connection label ("Acme Ltd (test)").
    pub tenant_name: String,
    pub environment: Environment,
    /// `api_key`, `oauth_client` or `user`.
    pub actor_type: String,
    pub actor_id: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// For users: who they are.
    pub user: Option<MeUser>,
    /// For users: every tenant they belong to.
    pub memberships: Vec<MeMembership>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct MeUser {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct MeMembership {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: String,
}

/// Who am I
///
/// The authenticated caller: its tenant, identity and scopes; for a user, also their details and
/// every tenant they belong to. Needs no particular scope.
#[utoipa::path(
    get,
    path = "/me",
    tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn me(State(state): State<AppState>, principal: Principal) -> Result<ApiJson<Me>, ApiError> {
    let (mut user, mut memberships) = (None, Vec::new());
    let mut tx = begin_platform(&state.db).await?;
    let tenant_name: String = sqlx::query_scalar("select name from tenants where id = $1")
        .bind(principal.tenant.id.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if let Actor::User(id, _) = &principal.actor {
        user = sqlx::query_as("select id, email, name from users where id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        memberships = sqlx::query_as(
            "select m.tenant_id, t.name as tenant_name, m.role from memberships m join tenants t on t.id = m.tenant_id
             where m.user_id = $1 order by t.name",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(ApiJson(Me {
        tenant_id: principal.tenant.id.to_string(),
        tenant_name,
        environment: principal.tenant.environment,
        actor_type: principal.actor.kind().to_owned(),
        actor_id: principal.actor.id().to_owned(),
        scopes: principal.scopes.to_strings(),
        user,
        memberships,
    }))
}
