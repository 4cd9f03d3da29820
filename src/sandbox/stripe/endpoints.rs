//! Webhook endpoints registered with the simulator, and the worker that delivers every event to
//! them signed as Stripe signs (`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of `"{t}.{body}"`
//! keyed by the whole `whsec_…` string), retrying failures, and misbehaving on command
//! (duplicates, drops, delays, reordering).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::{
    StripeSim,
    api::Ctx,
    error::StripeError,
    state::{Delivery, Inner},
};

/// Attempts per delivery, the first included (test mode retries three times).
const ATTEMPTS: u32 = 4;

/// `Stripe-Signature` for `body` signed at `t` with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("{t}.{body}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={digest}")
}

fn enabled_events(ctx: &Ctx) -> Result<Option<Vec<Value>>, StripeError> {
    match ctx.params.get("enabled_events") {
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => Ok(Some(items.clone())),
        Some(_) => Err(StripeError::invalid(
            "enabled_events",
            "parameter_invalid_string",
            "enabled_events must be a non-empty list of event types, or [\"*\"].",
        )),
    }
}

fn check_url(url: &str) -> Result<(), StripeError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(StripeError::invalid("url", "url_invalid", format!("Invalid URL: {url}"))),
    }
}

/// `POST /v1/webhook_endpoints`: the answer alone shows the signing `secret`.
pub fn create(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let url = ctx.required("url")?.to_owned();
    check_url(&url)?;
    let events = enabled_events(ctx)?.ok_or_else(|| StripeError::missing("enabled_events"))?;
    let id = inner.id("we");
    let secret = inner.id("whsec");
    let endpoint = json!({
        "id": id, "object": "webhook_endpoint", "url": url, "enabled_events": events, "status": "enabled",
        "api_version": ctx.str("api_version")?, "application": null, "created": inner.now(),
        "description": ctx.str("description")?, "livemode": false, "metadata": ctx.metadata(&json!({}))?,
    });
    let acct = inner.account(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))?;
    acct.insert("webhook_endpoint", endpoint.clone());
    acct.secrets.insert(id, secret.clone());
    let mut shown = endpoint;
    shown["secret"] = json!(secret);
    Ok(shown)
}

/// `POST /v1/webhook_endpoints/{id}`: `url`, `enabled_events`, `disabled`, `description`,
/// `metadata`.
pub fn update(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let events = enabled_events(ctx)?;
    let (url, disabled, description) = (ctx.str("url")?, ctx.bool("disabled")?, ctx.str("description")?);
    if let Some(url) = url {
        check_url(url)?;
    }
    let acct = inner.account(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))?;
    let endpoint = acct
        .objects
        .get_mut(id)
        .filter(|e| e["object"] == "webhook_endpoint")
        .ok_or_else(|| StripeError::no_such("webhook_endpoint", id, "id"))?;
    if let Some(events) = events {
        endpoint["enabled_events"] = Value::Array(events);
    }
    if let Some(url) = url {
        endpoint["url"] = json!(url);
    }
    if let Some(disabled) = disabled {
        endpoint["status"] = json!(if disabled { "disabled" } else { "enabled" });
    }
    if let Some(description) = description {
        endpoint["description"] = json!(description);
    }
    let current = endpoint["metadata"].clone();
    let metadata = ctx.metadata(&current)?;
    let endpoint = acct.objects.get_mut(id).ok_or_else(|| StripeError::no_such("webhook_endpoint", id, "id"))?;
    endpoint["metadata"] = metadata;
    Ok(endpoint.clone())
}

/// `DELETE /v1/webhook_endpoints/{id}`.
pub fn delete(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let acct = inner.account(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))?;
    if acct.get(id).is_none_or(|e| e["object"] != "webhook_endpoint") {
        return Err(StripeError::no_such("webhook_endpoint", id, "id"));
    }
    acct.remove("webhook_endpoint", id);
    acct.secrets.remove(id);
    Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
}

/// Delivers queued events until `shutdown`.
pub async fn deliver(sim: StripeSim, shutdown: CancellationToken) {
    loop {
        let due = take_due(&sim);
        if due.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sim.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            continue;
        }
        for delivery in due {
            if shutdown.is_cancelled() {
                return;
            }
            send(&sim, delivery).await;
        }
    }
}

/// The deliveries due now, after the delivery mode's drops, duplicates and reordering.
fn take_due(sim: &StripeSim) -> Vec<Delivery> {
    let mut inner = sim.lock();
    let now = chrono::Utc::now().timestamp();
    let (due, waiting): (Vec<Delivery>, Vec<Delivery>) = inner.deliveries.drain(..).partition(|d| d.not_before <= now);
    inner.deliveries.extend(waiting);
    let mode = inner.delivery_mode.clone();
    let mut out = Vec::new();
    for delivery in due {
        if delivery.attempt == 0 && inner.delivery_mode.drop > 0 {
            inner.delivery_mode.drop -= 1;
            let event = delivery.event["id"].as_str().unwrap_or_default().to_owned();
            inner.delivered.push((delivery.endpoint.clone(), event, 0));
            continue;
        }
        if delivery.attempt == 0 {
            for _ in 0..mode.duplicate {
                out.push(delivery.clone());
            }
        }
        out.push(delivery);
    }
    if mode.reorder {
        out.reverse();
    }
    out
}

async fn send(sim: &StripeSim, mut delivery: Delivery) {
    let delay = sim.lock().delivery_mode.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let body = delivery.event.to_string();
    let t = chrono::Utc::now().timestamp();
    let result = sim
        .http
        .post(&delivery.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .header("stripe-signature", signature(&delivery.secret, t, &body))
        .body(body)
        .send()
        .await;
    let status = result.as_ref().map_or(0, |r| r.status().as_u16());
    let mut inner = sim.lock();
    let event = delivery.event["id"].as_str().unwrap_or_default().to_owned();
    inner.delivered.push((delivery.endpoint.clone(), event, status));
    if !(200..300).contains(&status) && delivery.attempt + 1 < ATTEMPTS {
        delivery.attempt += 1;
        // Seconds apart here; Stripe spaces test-mode retries over hours.
        delivery.not_before = chrono::Utc::now().timestamp() + i64::from(delivery.attempt);
        inner.deliveries.push_back(delivery);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_reference_vector() {
        let header = signature("whsec_test_secret", 1_700_000_000, r#"{"id":"evt_test","object":"event"}"#);
        assert_eq!(header, "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724");
    }
}
