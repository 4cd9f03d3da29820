//! Seeding an account with many card payments at once (`POST /_stripe/accounts/{id}/seed`), for
//! benchmarks and demos that need a large history: each payment is made by the very operation
//! `POST /v1/payment_intents` runs (`confirm=true`, `pm_card_visa`), so it gets its payment
//! intent, its charge, its balance transaction with Stripe's fee and its events exactly as one
//! made through the API would; only the HTTP round trip per payment is saved.

use serde_json::{Map, Value, json};

use super::{api::Ctx, balance, error::StripeError, payments, state::Inner};

/// The most payments one seed request makes.
pub const MOST: u64 = 1_000_000;

/// What to seed.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// How many succeeded card payments to make.
    pub charges: u64,
    /// Their currency (three letters).
    #[serde(default = "eur")]
    pub currency: String,
    /// Each payment's amount in minor units; when absent, each is drawn from the simulator's
    /// seeded generator, between 1.00 and 1,000.00.
    pub amount: Option<i64>,
}

fn eur() -> String {
    "eur".into()
}

/// Makes `seed.charges` succeeded card payments on `account`, one after the other as that many
/// API requests would (each with its own request id), after bringing the account up to the
/// clock as every request does. Answers how many, their sums, and the first and last charge.
pub fn seed(inner: &mut Inner, account: &str, seed: &Seed) -> Result<Value, StripeError> {
    if !inner.accounts.contains_key(account) {
        return Err(StripeError::no_such("account", account, "id"));
    }
    if !(1..=MOST).contains(&seed.charges) {
        return Err(StripeError::invalid(
            "charges",
            "parameter_invalid_integer",
            format!("charges must be between 1 and {MOST}."),
        ));
    }
    balance::settle(inner, account);
    let (mut amount_sum, mut fee_sum) = (0_i64, 0_i64);
    let (mut first, mut last) = (None, None);
    for _ in 0..seed.charges {
        let amount = seed.amount.unwrap_or_else(|| 100 + (inner.next() % 99_901) as i64);
        let mut params = Map::new();
        params.insert("amount".into(), json!(amount.to_string()));
        params.insert("currency".into(), json!(seed.currency));
        params.insert("payment_method".into(), json!("pm_card_visa"));
        params.insert("confirm".into(), json!("true"));
        let ctx = Ctx { account: account.to_owned(), request_id: inner.id("req"), idempotency_key: None, params };
        let intent = payments::create_payment_intent(inner, &ctx)?;
        let charge = intent["latest_charge"].as_str().unwrap_or_default().to_owned();
        let fee = inner
            .accounts
            .get(account)
            .and_then(|acct| acct.get(&charge))
            .and_then(|c| c["balance_transaction"].as_str())
            .and_then(|txn| inner.accounts.get(account)?.get(txn))
            .and_then(|txn| txn["fee"].as_i64())
            .unwrap_or(0);
        amount_sum += amount;
        fee_sum += fee;
        first.get_or_insert_with(|| charge.clone());
        last = Some(charge);
    }
    Ok(json!({
        "account": account, "charges": seed.charges, "currency": seed.currency.to_ascii_lowercase(),
        "amount": amount_sum, "fee": fee_sum, "net": amount_sum - fee_sum,
        "first_charge": first, "last_charge": last,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::{body::Body, http::Request};
    use chrono::{TimeZone, Utc};
    use tower::ServiceExt;

    use super::*;
    use crate::sandbox::{
        gocardless::Clock,
        stripe::{DEFAULT_SECRET_KEY, StripeSim, router},
    };

    fn sim() -> StripeSim {
        StripeSim::new(7, Clock::fixed(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()))
    }

    /// Every object and event of an account by id, and the ids of each type in order.
    type Contents = (Vec<(String, Value)>, Vec<(String, Vec<String>)>);

    /// The default account's [`Contents`].
    fn contents(sim: &StripeSim) -> Contents {
        let account = sim.default_account();
        let inner = sim.lock();
        let acct = inner.accounts.get(&account).unwrap();
        let mut objects: Vec<(String, Value)> = acct.objects.clone().into_iter().collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let order = ["payment_intent", "charge", "balance_transaction", "event"]
            .map(|kind| (kind.to_owned(), acct.ids(kind).to_vec()))
            .to_vec();
        (objects, order)
    }

    #[tokio::test]
    async fn seeding_makes_exactly_what_the_same_api_requests_make() {
        let by_api = sim();
        for _ in 0..3 {
            let request = Request::post("/v1/payment_intents")
                .header("authorization", format!("Bearer {DEFAULT_SECRET_KEY}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("amount=2000&currency=eur&payment_method=pm_card_visa&confirm=true"))
                .unwrap();
            let response = router(by_api.clone()).oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let seeded = sim();
        let account = seeded.default_account();
        let answer =
            seed(&mut seeded.lock(), &account, &Seed { charges: 3, currency: "eur".into(), amount: Some(2000) })
                .unwrap();
        assert_eq!(answer["charges"], 3);
        assert_eq!(answer["amount"], 6000);
        assert_eq!(answer["fee"], 3 * balance::card_fee(2000, "eur"));
        assert_eq!(answer["net"], 6000 - 3 * balance::card_fee(2000, "eur"));
        let (objects, order) = contents(&seeded);
        assert_eq!((objects.clone(), order), contents(&by_api), "the same objects, events and order");
        let kinds = |kind: &str| objects.iter().filter(|(_, o)| o["object"] == kind).count();
        assert_eq!(
            (kinds("payment_intent"), kinds("charge"), kinds("balance_transaction"), kinds("event")),
            (3, 3, 3, 9)
        );
    }

    #[test]
    fn amounts_are_deterministic_and_counts_bounded() {
        let (one, two) = (sim(), sim());
        let account = one.default_account();
        assert_eq!(account, two.default_account());
        let many = Seed { charges: 50, currency: "gbp".into(), amount: None };
        let a = seed(&mut one.lock(), &account, &many).unwrap();
        let b = seed(&mut two.lock(), &account, &many).unwrap();
        assert_eq!(a, b);
        assert!(a["amount"].as_i64().unwrap() >= 50 * 100);
        let none = Seed { charges: 0, currency: "gbp".into(), amount: None };
        assert_eq!(seed(&mut one.lock(), &account, &none).unwrap_err().status, 400);
        let nowhere = Seed { charges: 1, currency: "gbp".into(), amount: None };
        assert_eq!(seed(&mut one.lock(), "acct_missing", &nowhere).unwrap_err().status, 404);
    }
}
