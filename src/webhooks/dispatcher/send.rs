//! Sending one attempt: signing the event, posting it, and reading what the answer means.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::{Dispatcher, claim::Claimed};
use crate::{
    events::Event,
    webhooks::{endpoints, health::Verdict, signing},
};

/// How much of a receiver's answer an attempt keeps.
const RESPONSE_BODY_LIMIT: usize = 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One attempt, as recorded.
#[derive(Debug)]
pub(super) struct Outcome {
    pub tenant_id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub status_code: Option<i32>,
    pub verdict: Verdict,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

impl Dispatcher {
    /// Signs and sends one delivery; never fails: every problem is an outcome.
    pub(super) async fn attempt(&self, delivery: &Claimed) -> Outcome {
        let started_at = Utc::now();
        let started = Instant::now();
        let mut outcome = Outcome {
            tenant_id: delivery.tenant_id.clone(),
            delivery_id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            attempt: delivery.attempts,
            started_at,
            latency_ms: 0,
            status_code: None,
            verdict: Verdict::Failed,
            error: None,
            response_body: None,
        };
        match self.send(delivery, started_at).await {
            Ok((status, headers, body)) => {
                outcome.status_code = Some(i32::from(status));
                outcome.response_body = Some(body);
                outcome.verdict = match status {
                    200..=299 => Verdict::Succeeded,
                    410 => Verdict::Gone,
                    429 | 503 => retry_after(&headers).map_or(Verdict::Failed, Verdict::Throttled),
                    _ => Verdict::Failed,
                };
                if outcome.verdict != Verdict::Succeeded {
                    outcome.error = Some(match status {
                        300..=399 => format!("answered {status}: redirects are not followed"),
                        _ => format!("answered {status}"),
                    });
                }
            }
            Err(error) => outcome.error = Some(error),
        }
        outcome.latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        outcome
    }

    async fn send(&self, delivery: &Claimed, now: DateTime<Utc>) -> Result<(u16, HeaderMap, String), String> {
        // reqwest resolves no name for an address literal, so the guard checks those here; names
        // are checked by its resolver at connect time.
        let url = self.guard.check_url(&delivery.url, false).map_err(|refusal| refusal.to_string())?;
        let secrets = self.secrets(delivery, now).map_err(|e| format!("cannot open the signing secret: {e}"))?;
        let event = Event {
            id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            timestamp: delivery.occurred_at,
            tenant_id: delivery.tenant_id.clone(),
            data: delivery.data.clone(),
        };
        let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let timestamp = now.timestamp();
        let signatures = signing::sign(&secrets, &event.id, timestamp, &body);
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.standard)
            .header("x-webhook-signature", signatures.payymo)
            .body(body);
        let mut response = request.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_BODY_LIMIT - kept.len())]),
                Ok(None) => break,
                // The status is the answer; a body cut short does not change it.
                Err(_) => break,
            }
        }
        Ok((status, headers, String::from_utf8_lossy(&kept).into_owned()))
    }

    /// The endpoint's live secrets: the current one, and the one it replaced while that is live.
    fn secrets(
        &self,
        delivery: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<Vec<signing::SigningSecret>, crate::crypto::CryptoError> {
        let open =
            |sealed: &str| endpoints::open_secret(&self.keys, &delivery.tenant_id, &delivery.endpoint_id, sealed);
        let mut secrets = vec![open(&delivery.secret)?];
        if let (Some(previous), Some(until)) = (&delivery.previous_secret, delivery.previous_secret_expires_at)
            && until > now
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }
}
/// The wait a 429 or 503 asks for: `Retry-After` in seconds or as an HTTP date, bounded.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
            (at - Utc::now()).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An error as one line that says what went wrong (timeout, refused address, connection).
fn describe(error: reqwest::Error) -> String {
    use std::error::Error;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(RETRY_AFTER, "99999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = (Utc::now() + chrono::Duration::seconds(60)).to_rfc2822().replace("+0000", "GMT");
        headers.insert(RETRY_AFTER, soon.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
