//! Stripe events as Stripe sends them: `charge.succeeded` events shaped like the reference
//! fixture (`charge.json`, Stripe's own example charge from `fixtures3.json`, made a captured GBP
//! charge), each with its own event and charge id, and `Stripe-Signature` headers.

use bytes::Bytes;
use serde_json::{Value, json};

/// Stripe's example charge, as the official fixtures have it.
const CHARGE: &str = include_str!("charge.json");

/// One delivery: the event id, the raw body and when it was built.
#[derive(Clone)]
pub struct Delivery {
    pub id: String,
    pub body: Bytes,
}

/// A prefix no earlier run used: event and charge ids are `evt_{prefix}{n}`, `ch_{prefix}{n}`.
pub fn fresh_prefix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// `count` distinct `charge.succeeded` events, created `now`.
pub fn charge_succeeded(prefix: &str, count: u64, now: i64) -> anyhow::Result<Vec<Delivery>> {
    let template: Value = serde_json::from_str(CHARGE)?;
    (0..count)
        .map(|n| {
            let mut charge = template.clone();
            charge["id"] = json!(format!("ch_{prefix}{n:010}"));
            charge["amount"] = json!(500 + (n * 37) % 99_500);
            charge["amount_captured"] = charge["amount"].clone();
            charge["created"] = json!(now);
            charge["balance_transaction"] = json!(format!("txn_{prefix}{n:010}"));
            Ok(event(&format!("evt_{prefix}{n:010}"), "charge.succeeded", charge, now))
        })
        .collect()
}

/// An event envelope around `object`, serialized.
pub fn event(id: &str, kind: &str, object: Value, created: i64) -> Delivery {
    let body = json!({
        "id": id, "object": "event", "api_version": "2025-09-30.clover", "created": created,
        "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null}, "type": kind,
    });
    Delivery { id: id.to_owned(), body: Bytes::from(body.to_string()) }
}

/// `Stripe-Signature` for `body` at `t`: HMAC-SHA256 of `"{t}.{body}"` keyed by the whole
/// `whsec_…` string, as the simulator (and Stripe) sign.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    payymo::sandbox::stripe::signature(secret, t, std::str::from_utf8(body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_distinct_and_verifies_with_payymos_own_check() {
        let events = charge_succeeded("abc", 3, 1_700_000_000).expect("events");
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 3);
        let header = signature("whsec_x", 1_700_000_000, &events[1].body);
        let secrets = ["whsec_x".to_owned()];
        assert_eq!(payymo::stripe::inbox::verify(&header, &events[1].body, &secrets, 1_700_000_010), Ok(()));
    }
}
