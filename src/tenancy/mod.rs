//! Tenants, users, memberships and API keys: the operations the API, the admin API and the CLI
//! share, so each rule (validation, hashing, what a key looks like) lives in one place.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

pub mod platform;
pub mod revocation;

pub use platform::{
    AdminNewMember, Via, add_member_as_platform, create_api_key_as_platform, create_tenant_as_platform,
};

use crate::{
    auth::{Environment, Plan, keys, password},
    domain::{
        ids::{ApiKeyId, TenantId, UserId},
        scope::{Role, Scope, Scopes},
        validation::FieldError,
    },
};

/// Why a tenancy operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The input breaks a rule; each entry names the field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The change conflicts with what exists (the user is already a member).
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl TenancyError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// A tenant, as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, FromRow)]
pub struct Tenant {
    #[schema(example = "ten_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub id: String,
    pub name: String,
    pub environment: Environment,
    /// Sizes the rate limits.
    pub plan: Plan,
    /// IANA time zone used for day boundaries in reports.
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
    pub environment: Environment,
    pub plan: Option<Plan>,
    /// IANA name such as `Europe/London`; default `UTC`.
    pub time_zone: Option<String>,
}

pub async fn create_tenant(conn: &mut PgConnection, new: NewTenant) -> Result<Tenant, TenancyError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(TenancyError::invalid("name", "must be 1 to 200 characters"));
    }
    let time_zone = new.time_zone.unwrap_or_else(|| "UTC".to_owned());
    let known: bool = sqlx::query_scalar("select exists(select 1 from pg_timezone_names where name = $1)")
        .bind(&time_zone)
        .fetch_one(&mut *conn)
        .await?;
    if !known {
        return Err(TenancyError::invalid("time_zone", "is not an IANA time zone name such as Europe/London"));
    }
    let tenant = sqlx::query_as(
        "insert into tenants (id, name, environment, plan, time_zone) values ($1, $2, $3, $4, $5)
         returning id, name, environment, plan, time_zone, created_at",
    )
    .bind(TenantId::generate().as_str())
    .bind(name)
    .bind(new.environment.as_str())
    .bind(new.plan.unwrap_or(Plan::Free).as_str())
    .bind(&time_zone)
    .fetch_one(&mut *conn)
    .await?;
    Ok(tenant)
}

pub async fn find_tenant(conn: &mut PgConnection, id: &TenantId) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as("select id, name, environment, plan, time_zone, created_at from tenants where id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// A person who can sign in.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct User {
    #[schema(example = "usr_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Finds the user with `email`, or creates them with `password` (required to create).
pub async fn ensure_user(
    conn: &mut PgConnection,
    email: &str,
    name: Option<&str>,
    password: Option<String>,
) -> Result<User, TenancyError> {
    let email = email.trim();
    if !(3..=320).contains(&email.len()) || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(TenancyError::invalid("email", "must be an email address"));
    }
    let existing: Option<User> =
        sqlx::query_as("select id, email, name, created_at from users where lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(user) = existing {
        return Ok(user);
    }
    let password = password.ok_or_else(|| TenancyError::invalid("password", "is required to create a new user"))?;
    check_password(&password)?;
    let hash = password::hash(password).await?;
    let user = sqlx::query_as(
        "insert into users (id, email, name, password_hash) values ($1, $2, $3, $4)
         on conflict ((lower(email))) do update set email = users.email
         returning id, email, name, created_at",
    )
    .bind(UserId::generate().as_str())
    .bind(email)
    .bind(name)
    .bind(hash)
    .fetch_one(&mut *conn)
    .await?;
    Ok(user)
}

pub fn check_password(password: &str) -> Result<(), TenancyError> {
    let length = password.chars().count();
    if length < password::MIN_LENGTH || password.len() > password::MAX_LENGTH {
        return Err(TenancyError::invalid(
            "password",
            format!(
                "must be at least {} characters (and at most {} bytes)",
                password::MIN_LENGTH,
                password::MAX_LENGTH
            ),
        ));
    }
    Ok(())
}

/// Adds `user` to the tenant bound to `conn` with `role`; a conflict if already a member.
pub async fn add_member(
    conn: &mut PgConnection,
    tenant: &TenantId,
    user: &str,
    role: Role,
) -> Result<(), TenancyError> {
    let inserted =
        sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, $3) on conflict do nothing")
            .bind(tenant.as_str())
            .bind(user)
            .bind(role.as_str())
            .execute(conn)
            .await?
            .rows_affected();
    if inserted == 0 {
        return Err(TenancyError::Conflict("this user is already a member of the tenant"));
    }
    Ok(())
}

/// A user's membership of this tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    #[schema(example = "usr_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
pub struct ApiKey {
    #[schema(example = "key_0192f3c4d5e6478fa1b2c3d4e5f60718")]
    pub id: String,
    pub label: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// The start of the secret, to recognise the key by (`sk_live_AbC123`).
    pub prefix: String,
    /// Networks (CIDR) the key may be used from; empty means anywhere.
    pub allowed_networks: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that replaced this one, when it was rotated.
    pub rotated_to: Option<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    /// Requests authenticated with this key (updated every few seconds).
    pub usage_count: i64,
    pub created_at: DateTime<Utc>,
}

pub const API_KEY_COLUMNS: &str = "id, label, scopes, key_prefix as prefix, allowed_networks, expires_at, revoked_at, rotated_to, last_used_at, last_used_ip, usage_count, created_at";

/// What a new key may do and where.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub label: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_networks: Vec<IpNet>,
}

impl KeySpec {
    /// Validates the parts of a request for a key.
    pub fn parse(
        label: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        networks: &[String],
    ) -> Result<Self, TenancyError> {
        let mut errors = Vec::new();
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            errors.push(FieldError { field: "label".into(), message: "must be 1 to 100 characters".into() });
        }
        let parsed = match Scopes::parse_all(scopes.iter().map(String::as_str)) {
            Ok(s) if s.0.is_empty() => {
                errors.push(FieldError { field: "scopes".into(), message: "must name at least one scope".into() });
                Scopes::default()
            }
            Ok(s) => s,
            Err(message) => {
                errors.push(FieldError { field: "scopes".into(), message });
                Scopes::default()
            }
        };
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            errors.push(FieldError { field: "expires_at".into(), message: "must be in the future".into() });
        }
        let mut allowed_networks = Vec::new();
        if networks.len() > 50 {
            errors.push(FieldError { field: "allowed_networks".into(), message: "at most 50 networks".into() });
        }
        for (i, network) in networks.iter().enumerate() {
            match network.parse::<IpNet>().or_else(|_| network.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(net) => allowed_networks.push(net.trunc()),
                Err(_) => errors.push(FieldError {
                    field: format!("allowed_networks[{i}]"),
                    message: "must be an IP address or CIDR such as 203.0.113.0/24".into(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(TenancyError::Invalid(errors));
        }
        Ok(Self { label: label.to_owned(), scopes: parsed, expires_at, allowed_networks })
    }
}

/// Creates a key in the tenant bound to `conn`; the secret is returned once and never stored.
pub async fn create_api_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    environment: Environment,
    spec: &KeySpec,
    created_by: Option<&str>,
) -> Result<(ApiKey, String), sqlx::Error> {
    let new = keys::generate(environment);
    let networks: Vec<String> = spec.allowed_networks.iter().map(IpNet::to_string).collect();
    let key: ApiKey = sqlx::query_as(&format!(
        "insert into api_keys (tenant_id, id, label, scopes, key_hash, key_prefix, allowed_networks, expires_at, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning {API_KEY_COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(ApiKeyId::generate().as_str())
    .bind(&spec.label)
    .bind(spec.scopes.to_strings())
    .bind(&new.hash)
    .bind(&new.prefix)
    .bind(&networks)
    .bind(spec.expires_at)
    .bind(created_by)
    .fetch_one(conn)
    .await?;
    Ok((key, new.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_validate_every_field() {
        let err = KeySpec::parse(
            "",
            &["nope".into()],
            Some(Utc::now() - chrono::Duration::hours(1)),
            &["10.0.0.0/33".into()],
        )
        .unwrap_err();
        let TenancyError::Invalid(errors) = err else { panic!() };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["label", "scopes", "expires_at", "allowed_networks[0]"]);

        let ok = KeySpec::parse(" ci ", &["api_keys:read".into()], None, &["203.0.113.7".into(), "10.1.2.3/8".into()])
            .unwrap();
        assert_eq!(ok.label, "ci");
        assert_eq!(
            ok.allowed_networks.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["203.0.113.7/32", "10.0.0.0/8"]
        );
    }
}
