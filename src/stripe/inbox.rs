//! Stripe's events as they arrive: the signature checked first (`Stripe-Signature`, HMAC-SHA256
//! of `"{t}.{raw body}"` keyed by the whole `whsec_…` secret, any `v1` of several, within a
//! tolerance of `t`), then the raw event kept in a durable inbox, unique by its id, so a
//! duplicate is a no-op and nothing answered 2xx is lost.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgConnection;
use subtle::ConstantTimeEq;

use crate::domain::ids::TenantId;

/// How far `t` may be from now, either way: the tolerance Stripe's libraries default to.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or has no t= and v1=")]
    Malformed,
    #[error("the signature's timestamp is more than {TOLERANCE_SECONDS} s from now")]
    Stale,
    #[error("no v1 signature matches the endpoint's secret")]
    Mismatch,
}

/// Checks `header` against `body` with any of `secrets`, at `now` (Unix seconds).
pub fn verify(header: &str, body: &[u8], secrets: &[String], now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_owned()),
            // `v0` and any other scheme are ignored: accepting them would allow a downgrade.
            _ => {}
        }
    }
    let (Some(t), false) = (t, signatures.is_empty()) else { return Err(SignatureError::Malformed) };
    if (now - t).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { continue };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        if signatures.iter().any(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes()))) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Poll,
}

/// Keeps a Stripe event in the connection's inbox; `false` when it was there already.
pub async fn keep(
    conn: &mut PgConnection,
    tenant: &TenantId,
    connection_id: &str,
    event: &Value,
    source: Source,
) -> Result<bool, sqlx::Error> {
    let created =
        event["created"].as_i64().and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)).unwrap_or_else(Utc::now);
    let kept = sqlx::query(
        "insert into stripe_events (tenant_id, connection_id, id, event_type, created, payload, source)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict do nothing",
    )
    .bind(tenant.as_str())
    .bind(connection_id)
    .bind(event["id"].as_str().unwrap_or_default())
    .bind(event["type"].as_str().unwrap_or_default())
    .bind(created)
    .bind(event)
    .bind(match source {
        Source::Webhook => "webhook",
        Source::Poll => "poll",
    })
    .execute(conn)
    .await?;
    Ok(kept.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const HEADER: &str = "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

    #[test]
    fn the_reference_vector_verifies_and_tampering_does_not() {
        let secrets = ["whsec_test_secret".to_owned()];
        assert_eq!(verify(HEADER, BODY, &secrets, 1_700_000_100), Ok(()));
        assert_eq!(
            verify(HEADER, br#"{"id":"evt_tests","object":"event"}"#, &secrets, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(HEADER, BODY, &["whsec_other".to_owned()], 1_700_000_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(HEADER, BODY, &secrets, 1_700_000_301), Err(SignatureError::Stale));
        assert_eq!(verify("v1=abc", BODY, &secrets, 1_700_000_000), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_v1_of_several_and_any_secret_of_several_will_do_but_v0_never() {
        let two = format!("t=1700000000,v1=00,{}", &HEADER[13..]);
        let secrets = ["whsec_old".to_owned(), "whsec_test_secret".to_owned()];
        assert_eq!(verify(&two, BODY, &secrets, 1_700_000_000), Ok(()));
        let v0_only = HEADER.replace("v1=", "v0=");
        assert_eq!(verify(&v0_only, BODY, &secrets, 1_700_000_000), Err(SignatureError::Malformed));
    }
}
