//! The demo's Stripe: a simulated account linked to the demo's sandbox bank, with a few days of
//! card payments (and a refund) that Stripe has already paid out, so the payout is in the bank
//! as a real statement shows it; connected to the demo tenant, whose backfill reads it all; and
//! a card payment now and then through Payymo's own API while the demo runs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Environment,
    domain::ids::TenantId,
    sandbox::{
        gocardless::{Clock, SandboxState},
        stripe::StripeSim,
    },
    state::AppState,
};

const DAY: i64 = 86_400;
/// How far back the demo's Stripe history starts.
const HISTORY_DAYS: i64 = 5;

/// Starts the demo's Stripe simulator, its payouts arriving in `bank`; returns its origin. Its
/// clock starts [`HISTORY_DAYS`] back, so that [`connect`] can make history and bring it to now.
pub async fn start(bank: SandboxState, shutdown: CancellationToken) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let mut clock = Clock::system();
    clock.advance(-HISTORY_DAYS * DAY);
    let sim = StripeSim::new(7, clock).with_bank(bank);
    tokio::spawn(async move {
        if let Err(error) = crate::sandbox::stripe::serve(listener, sim, shutdown).await {
            tracing::warn!(%error, "the demo's Stripe sandbox stopped");
        }
    });
    Ok(origin)
}

/// Makes the demo account's history (card payments, a refund, a decline), links it to the demo's
/// bank account `bank_account`, lets the simulated days pass so Stripe pays it out there, and
/// connects it to the tenant. Returns what it did, in a line.
pub async fn connect(state: &AppState, tenant: &TenantId, origin: &str, bank_account: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let control = |path: &str, body: Value| {
        let request = http.post(format!("{origin}{path}")).json(&body);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status().is_success(), "the Stripe sandbox answered {}", response.status());
            Ok::<Value, anyhow::Error>(response.json().await?)
        }
    };
    let account = control("/_stripe/accounts", json!({"name": "Payymo demo shop"})).await?;
    let (id, secret) = (account["id"].as_str().unwrap_or_default(), account["secret_key"].as_str().unwrap_or_default());
    control(&format!("/_stripe/accounts/{id}/bank"), json!({"account_id": bank_account})).await?;
    let stripe = |path: &str, form: Vec<(&str, String)>| {
        let request = http.post(format!("{origin}/v1/{path}")).bearer_auth(secret).form(&form);
        async move { request.send().await?.json::<Value>().await.map_err(anyhow::Error::from) }
    };
    // Two of the card payments pay invoices: reconciliation ties them through the payout.
    let paid_by_card = [(1, "INV-2026-9101"), (3, "INV-2026-9102")];
    invoices_paid_by_card(state, tenant, &paid_by_card.map(|(n, number)| (number, [4_200, 12_950, 860, 25_000][n])))
        .await?;
    let mut first = Value::Null;
    for (n, amount) in [4_200, 12_950, 860, 25_000, 3_999, 7_450].into_iter().enumerate() {
        let mut form = vec![
            ("amount", amount.to_string()),
            ("currency", "gbp".into()),
            ("payment_method", "pm_card_visa".into()),
            ("confirm", "true".into()),
            ("description", format!("Order {}", 1042 + n)),
            ("metadata[order]", (1042 + n).to_string()),
        ];
        if let Some((_, number)) = paid_by_card.iter().find(|(k, _)| *k == n) {
            form.push(("metadata[invoice_number]", (*number).to_owned()));
        }
        let intent = stripe("payment_intents", form).await?;
        first = if first.is_null() { intent } else { first };
    }
    let intent = first["id"].as_str().unwrap_or_default().to_owned();
    stripe("refunds", vec![("payment_intent", intent), ("amount", "1200".into())]).await?;
    let declined = [("amount", "990"), ("currency", "gbp"), ("payment_method", "pm_card_chargeDeclined")];
    let declined: Vec<(&str, String)> = declined.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    stripe("payment_intents", [declined, vec![("confirm", "true".into())]].concat()).await?;
    // The days pass: the funds become available, Stripe pays them out, the bank receives it.
    control("/_stripe/clock/advance", json!({"seconds": HISTORY_DAYS * DAY})).await?;
    // Read the history again on every run: each run's simulator is a new account.
    let since = chrono::Utc::now().date_naive() - chrono::Duration::days(crate::stripe::backfill::DEFAULT_DAYS);
    let (connection, _) = crate::stripe::connect::connect(state, tenant, Environment::Test, secret, Some(since))
        .await
        .map_err(|e| anyhow::anyhow!("connecting the demo's Stripe account: {e}"))?;
    Ok(format!(
        "Stripe: account {} connected ({}): six card payments, a refund and a decline from the last {HISTORY_DAYS} \
         days, paid out into the sandbox bank; a new payment every {}s.",
        connection.account_id,
        connection.id,
        super::ARRIVALS.as_secs()
    ))
}

/// The invoices two of the demo's card payments pay (`(number, amount)`), open until the payout
/// that carries those payments is matched.
async fn invoices_paid_by_card(state: &AppState, tenant: &TenantId, invoices: &[(&str, i64)]) -> anyhow::Result<()> {
    let invoices: Vec<crate::invoices::invoice::NewInvoice> = invoices
        .iter()
        .map(|(number, amount)| {
            serde_json::from_value(json!({"number": number, "source": "demo", "external_id": format!("card-{number}"),
                                          "currency": "GBP", "amount_total": amount}))
        })
        .collect::<Result<_, _>>()?;
    let mut tx = crate::db::tenant::begin_tenant(&state.db, tenant).await?;
    crate::invoices::batch::upsert_invoices(&mut tx, tenant, invoices).await?;
    tx.commit().await?;
    Ok(())
}

/// Takes a card payment through Payymo's own API now and then, as a shop would.
pub async fn keep_payments_arriving(base: String, key: String, shutdown: CancellationToken, every: Duration) {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    for n in 1u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let body = json!({"amount": 1_500 + (n % 7) * 250, "currency": "GBP", "payment_method": "pm_card_visa",
                          "description": format!("Order {}", 2000 + n)});
        let taken = http
            .post(format!("{base}/api/v1/stripe/payments"))
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("demo-{}-{n}", std::process::id()))
            .json(&body)
            .send()
            .await;
        if let Err(error) = taken {
            tracing::warn!(%error, "demo: could not take a Stripe payment");
        }
    }
}
