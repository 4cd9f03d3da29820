//! Platform operations: what the admin API and the `payymo` CLI do to any tenant, one function
//! each for both, audited as `platform_admin` and announced like the tenant's own changes.

use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::{ApiKey, KeySpec, Member, NewTenant, TenancyError, Tenant};
use crate::{
    audit,
    auth::Environment,
    domain::{ids::TenantId, scope::Role},
    events,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminNewMember {
    pub email: String,
    /// Required when no user with this email exists yet.
    pub password: Option<String>,
    pub name: Option<String>,
    pub role: Role,
}

/// Where a platform change came from: an admin API request, or the `payymo` CLI on the server.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// An admin API request, by its request id.
    Api(&'a str),
    Cli,
}

fn admin_entry(action: &str, resource_type: &str, resource_id: &str, via: Via<'_>) -> audit::Entry {
    let (request_id, status, detail) = match via {
        Via::Api(request_id) => (Some(request_id.to_owned()), Some(201), serde_json::json!({})),
        Via::Cli => (None, None, serde_json::json!({"via": "cli"})),
    };
    audit::Entry {
        actor_type: "platform_admin".into(),
        action: action.into(),
        resource_type: Some(resource_type.into()),
        resource_id: Some(resource_id.into()),
        request_id,
        status,
        detail,
        ..audit::Entry::default()
    }
}

/// Creates a tenant as the platform (admin API or CLI); its audit log starts with its creation.
/// `conn` is a platform transaction.
pub async fn create_tenant_as_platform(
    conn: &mut PgConnection,
    new: NewTenant,
    via: Via<'_>,
) -> Result<Tenant, TenancyError> {
    let tenant = super::create_tenant(conn, new).await?;
    let id = TenantId::from_db(tenant.id.clone());
    audit::append_in(conn, &id, admin_entry("admin.tenants.create", "tenant", &tenant.id, via)).await?;
    Ok(tenant)
}

/// Adds a user (created when the email is new) to a tenant as the platform (admin API or CLI):
/// audited, and announced with `member.added` as when a member is added through the API. `conn`
/// is bound to the tenant.
pub async fn add_member_as_platform(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: AdminNewMember,
    via: Via<'_>,
) -> Result<Member, TenancyError> {
    let user = super::ensure_user(conn, &new.email, new.name.as_deref(), new.password).await?;
    super::add_member(conn, tenant, &user.id, new.role).await?;
    audit::append_in(conn, tenant, admin_entry("admin.members.add", "member", &user.id, via)).await?;
    let member =
        Member { user_id: user.id, email: user.email, name: user.name, role: new.role, created_at: user.created_at };
    events::record(conn, tenant, "member.added", &member).await?;
    Ok(member)
}

/// Creates an API key for a tenant as the platform (admin API or CLI): audited, and announced
/// with `api_key.created`. Returns the key and its secret. `conn` is bound to the tenant.
pub async fn create_api_key_as_platform(
    conn: &mut PgConnection,
    tenant: &TenantId,
    environment: Environment,
    spec: &KeySpec,
    via: Via<'_>,
) -> Result<(ApiKey, String), TenancyError> {
    let created_by = match via {
        Via::Api(_) => "platform_admin",
        Via::Cli => "cli",
    };
    let (key, secret) = super::create_api_key(conn, tenant, environment, spec, Some(created_by)).await?;
    audit::append_in(conn, tenant, admin_entry("admin.api_keys.create", "api_key", &key.id, via)).await?;
    events::record(conn, tenant, "api_key.created", &key).await?;
    Ok((key, secret))
}
