//! A tenant with a connected Stripe account whose webhook secret the generator knows, made the
//! way a tenant makes one: through Payymo's API, against the simulator.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The simulator's default account's secret key (`payymo sandbox`).
pub const SIM_KEY: &str = payymo::sandbox::stripe::DEFAULT_SECRET_KEY;

/// Connects the tenant of `api_key` to the simulator's default account through
/// `PUT /api/v1/stripe/connection`, then reads the signing secret of the endpoint Payymo
/// registered for it from the simulator (`GET /_stripe/webhooks/endpoints`). Returns the
/// connection id and the secret.
pub async fn connect(payymo: &str, api_key: &str, sim: &str) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let answer = http
        .put(format!("{payymo}/api/v1/stripe/connection"))
        .bearer_auth(api_key)
        .json(&json!({ "api_key": SIM_KEY }))
        .send()
        .await
        .context("PUT /api/v1/stripe/connection")?;
    let status = answer.status();
    let connection: Value = answer.json().await?;
    let Some(id) = connection["id"].as_str().filter(|_| status.is_success()) else {
        bail!("PUT /api/v1/stripe/connection answered {status}: {connection}");
    };
    if connection["webhook_status"] != "registered" {
        bail!("the connection has no webhook endpoint: {connection}");
    }
    let listed: Value = http
        .get(format!("{sim}/_stripe/webhooks/endpoints"))
        .send()
        .await
        .context("GET /_stripe/webhooks/endpoints")?
        .error_for_status()?
        .json()
        .await?;
    let suffix = format!("/api/v1/stripe/webhooks/{id}");
    let secret = listed["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"].as_str().is_some_and(|url| url.ends_with(&suffix)))
        .and_then(|e| e["secret"].as_str())
        .with_context(|| format!("the simulator has no endpoint for {suffix}: {listed}"))?;
    Ok((id.to_owned(), secret.to_owned()))
}
