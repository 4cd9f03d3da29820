//! Access tokens: HS256 JWTs carrying the tenant, the actor and the scopes, validated for
//! signature, `exp`, `iss` and `aud`.
//!
//! The key comes from `PAYYMO_JWT_SECRET`, or else is generated once and kept in the database,
//! so every instance signs and verifies with the same key without configuration.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{config::Config, domain::secret::random_bytes};

pub const ISSUER: &str = "payymo";
pub const AUDIENCE: &str = "payymo-api";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The OAuth client id or the user id.
    pub sub: String,
    /// The tenant the token is bound to.
    pub ten: String,
    /// Space-separated scopes (RFC 8693 style).
    pub scope: String,
    /// `client` (client credentials) or `user` (a portal session).
    pub typ: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// For `user` tokens: the sign-in (refresh token family) the token belongs to, so revoking
    /// the session (sign-out, a reused refresh token) revokes its access tokens too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Clone)]
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl: Duration,
    /// Derived from the signing secret, for MACs that are not tokens (list cursors), so every
    /// instance sharing the secret agrees on them.
    cursor_key: [u8; 32],
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Uses `PAYYMO_JWT_SECRET`, or the database's shared key (creating it on first start).
    pub async fn load(config: &Config, pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (kid, secret) = match &config.jwt_secret {
            Some(secret) => ("env".to_owned(), secret.expose_secret().as_bytes().to_vec()),
            None => {
                sqlx::query(
                    "insert into jwt_signing_keys (kid, secret) values ('k1', $1) on conflict (kid) do nothing",
                )
                .bind(random_bytes(32))
                .execute(pool)
                .await?;
                let secret: Vec<u8> =
                    sqlx::query_scalar("select secret from jwt_signing_keys where kid = 'k1'").fetch_one(pool).await?;
                ("k1".to_owned(), secret)
            }
        };
        Ok(Self::from_secret(kid, &secret, config.access_token_ttl))
    }

    pub fn from_secret(kid: String, secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Tokens expire exactly at `exp`, as `expires_in` told the client: every instance signs
        // and verifies against its own clock, so no leeway for a foreign issuer's skew is owed.
        validation.leeway = 0;
        let mut derive = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        hmac::Mac::update(&mut derive, b"payymo/list-cursor/v1");
        let cursor_key = hmac::Mac::finalize(derive).into_bytes().into();
        Self {
            kid,
            cursor_key,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// The key that binds list cursors to the query that issued them.
    pub fn cursor_key(&self) -> &[u8; 32] {
        &self.cursor_key
    }

    /// Signs a token for `sub` in `tenant` with `scope`, valid for the configured lifetime; a
    /// user's token names its session.
    pub fn issue(
        &self,
        typ: &str,
        sub: &str,
        tenant: &str,
        scope: &str,
        session: Option<&str>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: sub.to_owned(),
            ten: tenant.to_owned(),
            scope: scope.to_owned(),
            typ: typ.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: session.map(str::to_owned),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// The claims of a valid token; the error says what is wrong, for the 401's description.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => "the access token has expired".to_owned(),
                ErrorKind::InvalidSignature => "the access token's signature is invalid".to_owned(),
                ErrorKind::InvalidAudience => "the access token is not for this API (aud)".to_owned(),
                ErrorKind::InvalidIssuer => "the access token was not issued by Payymo (iss)".to_owned(),
                _ => "the access token is malformed".to_owned(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::from_secret("t".into(), secret, Duration::from_secs(900))
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let token = k.issue("client", "cli_x", "ten_y", "api_keys:read", None).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.ten.as_str(), claims.scope.as_str()),
            ("cli_x", "ten_y", "api_keys:read")
        );
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn foreign_signatures_audiences_and_expired_tokens_fail() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let other = keys(b"fedcba9876543210fedcba9876543210");
        let token = other.issue("client", "cli_x", "ten_y", "*", None).unwrap();
        assert_eq!(k.verify(&token).unwrap_err(), "the access token's signature is invalid");

        let now = chrono::Utc::now().timestamp() as u64;
        let mut claims = Claims {
            iss: ISSUER.into(),
            aud: "someone-else".into(),
            sub: "s".into(),
            ten: "t".into(),
            scope: "*".into(),
            typ: "client".into(),
            iat: now,
            exp: now + 60,
            jti: "j".into(),
            sid: None,
        };
        let sign = |c: &Claims| jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &k.encoding).unwrap();
        assert_eq!(k.verify(&sign(&claims)).unwrap_err(), "the access token is not for this API (aud)");
        claims.aud = AUDIENCE.into();
        claims.exp = now - 3600;
        assert_eq!(k.verify(&sign(&claims)).unwrap_err(), "the access token has expired");
        claims.exp = now - 1;
        assert_eq!(k.verify(&sign(&claims)).unwrap_err(), "the access token has expired", "no leeway");
        assert_eq!(k.verify("not.a.jwt").unwrap_err(), "the access token is malformed");
    }
}
