//! Turns a request's credential into a [`Principal`], or says exactly why it cannot.
//!
//! Verified API keys and the validity of OAuth clients and memberships are cached per instance
//! for `PAYYMO_CREDENTIAL_CACHE_TTL` (5 s by default): that is the longest a revoked credential
//! keeps working on an instance other than the one that revoked it (which forgets at once).
//! API key usage (`last_used_at`, IP, count) is counted in memory and written in one batch every
//! two seconds, so authentication adds no write to the request path.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::PgPool;

use super::{Actor, Environment, Plan, Principal, TenantContext, jwt::JwtKeys, keys};
use crate::{
    db::tenant::begin_platform,
    domain::{
        ids::{ApiKeyId, OAuthClientId, TenantId, UserId},
        scope::{Role, Scopes},
        secret::sha256,
    },
};

/// Entries kept per cache before it is cleared; bounds memory under a flood of distinct keys.
const CACHE_CAPACITY: usize = 10_000;

/// Why a request is not authenticated. Each becomes a 401, except `IpNotAllowed` (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
    Expired {
        tenant: TenantId,
        credential: String,
    },
    Revoked {
        tenant: TenantId,
        credential: String,
    },
    WrongEnvironment {
        tenant: TenantId,
        credential: String,
    },
    IpNotAllowed {
        tenant: TenantId,
        credential: String,
    },
    InvalidToken(String),
    /// A credential in the wrong header, or two different ones: the message says which.
    Ambiguous(&'static str),
}

impl AuthFailure {
    pub fn message(&self) -> String {
        match self {
            AuthFailure::Missing => {
                "authentication required: send an API key (Authorization: Bearer sk_... or X-API-Key) or an access token"
                    .into()
            }
            AuthFailure::Malformed => "the credential is malformed".into(),
            AuthFailure::Unknown => "the API key is not valid".into(),
            AuthFailure::Expired { .. } => "the credential has expired".into(),
            AuthFailure::Revoked { .. } => "the credential has been revoked".into(),
            AuthFailure::WrongEnvironment { .. } => "the API key's environment does not match its tenant's".into(),
            AuthFailure::IpNotAllowed { .. } => "this API key may not be used from this IP address".into(),
            AuthFailure::InvalidToken(reason) => reason.clone(),
            AuthFailure::Ambiguous(reason) => (*reason).into(),
        }
    }

    /// The tenant and credential, when the credential was recognised (so the failure can be
    /// written to that tenant's audit log).
    pub fn attribution(&self) -> Option<(&TenantId, &str)> {
        match self {
            AuthFailure::Expired { tenant, credential }
            | AuthFailure::Revoked { tenant, credential }
            | AuthFailure::WrongEnvironment { tenant, credential }
            | AuthFailure::IpNotAllowed { tenant, credential } => Some((tenant, credential)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct KeyRecord {
    tenant: TenantContext,
    id: ApiKeyId,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    allowed_networks: Vec<IpNet>,
}

#[derive(Debug, Default)]
struct Usage {
    count: i64,
    last_at: DateTime<Utc>,
    last_ip: String,
}

/// A tiny time-bounded cache.
struct Cache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Cache<K, V> {
    fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

pub struct Authenticator {
    pool: PgPool,
    config: std::sync::Arc<crate::config::Config>,
    /// Loaded on first use, so an instance starts (and reports `migrations_pending`) even before
    /// the table holding the shared key exists.
    jwt: tokio::sync::OnceCell<JwtKeys>,
    keys: Cache<Vec<u8>, KeyRecord>,
    /// OAuth client id → tenant context, when the client exists and is not revoked.
    clients: Cache<String, Option<TenantContext>>,
    /// (tenant, user) → tenant context and current role, when the membership exists.
    members: Cache<(String, String), Option<(TenantContext, Role)>>,
    /// (tenant, session) → whether the sign-in is still live (not signed out or revoked).
    sessions: Cache<(String, String), bool>,
    usage: Mutex<HashMap<(TenantId, ApiKeyId), Usage>>,
}

impl Authenticator {
    pub fn new(pool: PgPool, config: std::sync::Arc<crate::config::Config>) -> Self {
        let cache_ttl = config.credential_cache_ttl;
        Self {
            pool,
            config,
            jwt: tokio::sync::OnceCell::new(),
            keys: Cache::new(cache_ttl),
            clients: Cache::new(cache_ttl),
            members: Cache::new(cache_ttl),
            sessions: Cache::new(cache_ttl),
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// The token signing keys, loaded (or created) on first use.
    pub async fn jwt(&self) -> Result<&JwtKeys, sqlx::Error> {
        self.jwt.get_or_try_init(|| JwtKeys::load(&self.config, &self.pool)).await
    }

    /// Forgets everything cached, so a revocation made here takes effect here at once.
    pub fn forget_cached_credentials(&self) {
        self.keys.clear();
        self.clients.clear();
        self.members.clear();
        self.sessions.clear();
    }

    /// Verifies the request's credential, coming from `ip`.
    pub async fn authenticate(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Principal, Outcome> {
        let credential = credential(headers).map_err(Outcome::Failed)?;
        if credential.starts_with("sk_") {
            self.api_key(credential, ip).await
        } else {
            self.access_token(credential).await
        }
    }

    async fn api_key(&self, secret: &str, ip: IpAddr) -> Result<Principal, Outcome> {
        let claimed = keys::parse(secret).ok_or(Outcome::Failed(AuthFailure::Malformed))?;
        let hash = sha256(secret);
        let record = match self.keys.get(&hash) {
            Some(record) => record,
            None => {
                let record = self
                    .load_key(&hash)
                    .await
                    .map_err(Outcome::Database)?
                    .ok_or(Outcome::Failed(AuthFailure::Unknown))?;
                self.keys.put(hash, record.clone());
                record
            }
        };
        let (tenant, credential) = (record.tenant.id.clone(), record.id.to_string());
        let now = Utc::now();
        if record.revoked_at.is_some_and(|at| at <= now) {
            return Err(Outcome::Failed(AuthFailure::Revoked { tenant, credential }));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Outcome::Failed(AuthFailure::Expired { tenant, credential }));
        }
        if claimed != record.tenant.environment {
            return Err(Outcome::Failed(AuthFailure::WrongEnvironment { tenant, credential }));
        }
        if !record.allowed_networks.is_empty() && !record.allowed_networks.iter().any(|n| n.contains(&ip)) {
            return Err(Outcome::Failed(AuthFailure::IpNotAllowed { tenant, credential }));
        }
        self.count_use(&record, ip, now);
        Ok(Principal { tenant: record.tenant, actor: Actor::ApiKey(record.id), scopes: record.scopes })
    }

    async fn load_key(&self, hash: &[u8]) -> Result<Option<KeyRecord>, sqlx::Error> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            tenant: TenantRow,
            id: String,
            scopes: Vec<String>,
            expires_at: Option<DateTime<Utc>>,
            revoked_at: Option<DateTime<Utc>>,
            allowed_networks: Vec<String>,
        }
        let mut tx = begin_platform(&self.pool).await?;
        let row: Option<Row> = sqlx::query_as(
            "select k.tenant_id, k.id, k.scopes, k.expires_at, k.revoked_at, k.allowed_networks, t.environment, t.plan
             from api_keys k join tenants t on t.id = k.tenant_id
             where k.key_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.and_then(|row| {
            Some(KeyRecord {
                tenant: row.tenant.context(),
                id: ApiKeyId::from_db(row.id),
                scopes: Scopes::parse_all(row.scopes.iter().map(String::as_str)).ok()?,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                allowed_networks: row.allowed_networks.iter().filter_map(|n| n.parse().ok()).collect(),
            })
        }))
    }

    async fn access_token(&self, token: &str) -> Result<Principal, Outcome> {
        if token.split('.').count() != 3 {
            return Err(Outcome::Failed(AuthFailure::Malformed));
        }
        let jwt = self.jwt().await.map_err(Outcome::Database)?;
        let claims = jwt.verify(token).map_err(|reason| Outcome::Failed(AuthFailure::InvalidToken(reason)))?;
        let revoked = || {
            TenantId::parse(&claims.ten)
                .map(|tenant| AuthFailure::Revoked { tenant, credential: claims.sub.clone() })
                .unwrap_or(AuthFailure::Malformed)
        };
        match claims.typ.as_str() {
            "client" => {
                let client = OAuthClientId::parse(&claims.sub).ok_or(Outcome::Failed(AuthFailure::Malformed))?;
                let tenant = self.client_tenant(&client).await.map_err(Outcome::Database)?;
                let tenant =
                    tenant.filter(|t| t.id.as_str() == claims.ten).ok_or_else(|| Outcome::Failed(revoked()))?;
                let scopes = Scopes::parse_all(claims.scope.split_whitespace())
                    .map_err(|_| Outcome::Failed(AuthFailure::Malformed))?;
                Ok(Principal { tenant, actor: Actor::OAuthClient(client), scopes })
            }
            "user" => {
                let user = UserId::parse(&claims.sub).ok_or(Outcome::Failed(AuthFailure::Malformed))?;
                let session = claims.sid.as_deref().ok_or(Outcome::Failed(AuthFailure::Malformed))?;
                if !self.session_live(&claims.ten, session).await.map_err(Outcome::Database)? {
                    return Err(Outcome::Failed(revoked()));
                }
                let membership = self.membership(&claims.ten, &user).await.map_err(Outcome::Database)?;
                // The current role decides, so a demotion takes effect within the cache lifetime.
                let (tenant, role) = membership.ok_or_else(|| Outcome::Failed(revoked()))?;
                Ok(Principal { tenant, actor: Actor::User(user, role), scopes: role.scopes() })
            }
            _ => Err(Outcome::Failed(AuthFailure::Malformed)),
        }
    }

    async fn client_tenant(&self, client: &OAuthClientId) -> Result<Option<TenantContext>, sqlx::Error> {
        if let Some(cached) = self.clients.get(&client.to_string()) {
            return Ok(cached);
        }
        let mut tx = begin_platform(&self.pool).await?;
        let row: Option<TenantRow> = sqlx::query_as(
            "select c.tenant_id, t.environment, t.plan from oauth_clients c join tenants t on t.id = c.tenant_id
             where c.id = $1 and c.revoked_at is null",
        )
        .bind(client.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let tenant = row.map(TenantRow::context);
        self.clients.put(client.to_string(), tenant.clone());
        Ok(tenant)
    }

    /// Whether the sign-in `session` of `tenant` is live: some refresh token of its family is not
    /// revoked (sign-out and reuse detection revoke them all).
    async fn session_live(&self, tenant: &str, session: &str) -> Result<bool, sqlx::Error> {
        let key = (tenant.to_owned(), session.to_owned());
        if let Some(live) = self.sessions.get(&key) {
            return Ok(live);
        }
        let mut tx = begin_platform(&self.pool).await?;
        let live: bool = sqlx::query_scalar(
            "select exists(select 1 from refresh_tokens where tenant_id = $1 and family_id = $2 and revoked_at is null)",
        )
        .bind(tenant)
        .bind(session)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.sessions.put(key, live);
        Ok(live)
    }

    /// The tenant context and current role of `user` in `tenant`, if still a member.
    pub async fn membership(&self, tenant: &str, user: &UserId) -> Result<Option<(TenantContext, Role)>, sqlx::Error> {
        let key = (tenant.to_owned(), user.to_string());
        if let Some(cached) = self.members.get(&key) {
            return Ok(cached);
        }
        let mut tx = begin_platform(&self.pool).await?;
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            tenant: TenantRow,
            role: String,
        }
        let row: Option<Row> = sqlx::query_as(
            "select m.tenant_id, t.environment, t.plan, m.role from memberships m join tenants t on t.id = m.tenant_id
             where m.tenant_id = $1 and m.user_id = $2",
        )
        .bind(tenant)
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let membership = row.and_then(|row| Some((row.tenant.context(), Role::parse(&row.role)?)));
        self.members.put(key, membership.clone());
        Ok(membership)
    }

    fn count_use(&self, record: &KeyRecord, ip: IpAddr, now: DateTime<Utc>) {
        if let Ok(mut usage) = self.usage.lock() {
            let entry = usage.entry((record.tenant.id.clone(), record.id.clone())).or_default();
            entry.count += 1;
            entry.last_at = now;
            entry.last_ip = ip.to_string();
        }
    }

    /// Writes the counted API key usage in one statement. Called every two seconds and at
    /// shutdown; a crash loses at most those two seconds of counts, never a request.
    pub async fn flush_usage(&self) -> Result<(), sqlx::Error> {
        let drained: Vec<((TenantId, ApiKeyId), Usage)> = match self.usage.lock() {
            Ok(mut usage) => usage.drain().collect(),
            Err(_) => return Ok(()),
        };
        if drained.is_empty() {
            return Ok(());
        }
        let mut tenants = Vec::new();
        let (mut ids, mut counts, mut times, mut ips) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((tenant, id), usage) in drained {
            tenants.push(tenant.to_string());
            ids.push(id.to_string());
            counts.push(usage.count);
            times.push(usage.last_at);
            ips.push(usage.last_ip);
        }
        let mut tx = begin_platform(&self.pool).await?;
        sqlx::query(
            "update api_keys k set usage_count = k.usage_count + u.count,
                    last_used_at = greatest(k.last_used_at, u.at), last_used_ip = u.ip
             from unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[]) as u(tenant_id, id, count, at, ip)
             where k.tenant_id = u.tenant_id and k.id = u.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&counts)
        .bind(&times)
        .bind(&ips)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

/// The result of a failed authentication: a credential problem, or the database being away
/// (which must not be reported as a bad credential).
#[derive(Debug)]
pub enum Outcome {
    Failed(AuthFailure),
    Database(sqlx::Error),
}

/// A tenant's context as the credential queries read it.
#[derive(sqlx::FromRow)]
struct TenantRow {
    tenant_id: String,
    environment: Environment,
    plan: Plan,
}

impl TenantRow {
    fn context(self) -> TenantContext {
        TenantContext { id: TenantId::from_db(self.tenant_id), environment: self.environment, plan: self.plan }
    }
}

/// The credential from `Authorization: Bearer …` or `X-API-Key`. `X-API-Key` takes API keys
/// only; both headers may be sent only when they carry the same credential.
fn credential(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let bearer = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
            let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(AuthFailure::Malformed);
            }
            Some(token.trim())
        }
        None => None,
    };
    let api_key = match headers.get("x-api-key") {
        Some(value) => {
            let key = value.to_str().map(str::trim).map_err(|_| AuthFailure::Malformed)?;
            if !key.starts_with("sk_") {
                return Err(AuthFailure::Ambiguous(
                    "X-API-Key takes an API key (sk_…); send an access token as Authorization: Bearer",
                ));
            }
            Some(key)
        }
        None => None,
    };
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => {
            Err(AuthFailure::Ambiguous("Authorization and X-API-Key carry different credentials; send one credential"))
        }
        (Some(credential), _) | (None, Some(credential)) => Ok(credential),
        (None, None) => Err(AuthFailure::Missing),
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    forwarded
        .split(',')
        .rev()
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn credentials_come_from_bearer_or_x_api_key() {
        assert_eq!(credential(&headers(&[("authorization", "Bearer sk_test_x")])), Ok("sk_test_x"));
        assert_eq!(credential(&headers(&[("authorization", "bearer  tok ")])), Ok("tok"));
        assert_eq!(credential(&headers(&[("x-api-key", "sk_live_y")])), Ok("sk_live_y"));
        assert_eq!(credential(&headers(&[])), Err(AuthFailure::Missing));
        assert_eq!(credential(&headers(&[("authorization", "Basic abc")])), Err(AuthFailure::Malformed));
        assert_eq!(credential(&headers(&[("authorization", "Bearer ")])), Err(AuthFailure::Malformed));
        let both = [("authorization", "Bearer sk_test_x"), ("x-api-key", "sk_test_x")];
        assert_eq!(credential(&headers(&both)), Ok("sk_test_x"), "the same credential twice");
        let different = [("authorization", "Bearer sk_test_x"), ("x-api-key", "sk_test_y")];
        assert!(matches!(credential(&headers(&different)), Err(AuthFailure::Ambiguous(_))));
        assert!(matches!(credential(&headers(&[("x-api-key", "eyJ.a.b")])), Err(AuthFailure::Ambiguous(_))));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
        assert_eq!(client_ip("10.0.0.2".parse().unwrap(), &h, &proxies), "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip("198.51.100.1".parse().unwrap(), &h, &proxies), "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &headers(&[]), &proxies),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }
}
