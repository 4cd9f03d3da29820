//! Money on the account: balance transactions (gross, fee, net, when available), the balance,
//! and the daily automatic payout schedule, run as the simulated clock passes midnight: a
//! payout gathers the available balance transactions not yet paid out and goes `pending` →
//! `in_transit` → `paid` on its arrival date.

use serde_json::{Value, json};

use super::{api::Ctx, error::StripeError, list, state::Inner};
use crate::domain::money::Currency;

const DAY: i64 = 86_400;
/// Days until a card payment's funds are available (the day after next, at midnight UTC).
const AVAILABLE_AFTER_DAYS: i64 = 2;
/// Days a payout takes to arrive.
const ARRIVAL_DAYS: i64 = 2;

fn exponent(currency: &str) -> u32 {
    Currency::parse(&currency.to_ascii_uppercase()).map_or(2, |c| c.exponent())
}

/// The processing fee of a card payment: 2.9% plus 0.30 (3.6% for zero-decimal currencies),
/// rounded half up, in minor units.
pub fn card_fee(amount: i64, currency: &str) -> i64 {
    let (basis_points, fixed) = match exponent(currency) {
        0 => (360, 0),
        3 => (290, 300),
        _ => (290, 30),
    };
    (amount * basis_points + 5_000) / 10_000 + fixed
}

/// The fee Stripe withdraws with a disputed amount (15.00 in the currency's units).
fn dispute_fee(currency: &str) -> i64 {
    15 * 10_i64.pow(exponent(currency))
}

#[allow(clippy::too_many_arguments)]
fn transaction(
    inner: &mut Inner,
    account: &str,
    kind: &str,
    category: &str,
    source: &str,
    amount: i64,
    fee: i64,
    currency: &str,
    created: i64,
    available_on: i64,
    description: Option<&str>,
) -> String {
    let id = inner.id("txn");
    let fee_details = if fee == 0 {
        json!([])
    } else {
        json!([{"amount": fee, "currency": currency, "type": "stripe_fee", "application": null,
            "description": "Stripe processing fees"}])
    };
    let now = inner.now();
    let txn = json!({
        "id": id, "object": "balance_transaction", "amount": amount, "available_on": available_on,
        "created": created, "currency": currency, "description": description, "exchange_rate": null,
        "fee": fee, "fee_details": fee_details, "net": amount - fee, "reporting_category": category,
        "source": source, "status": if available_on <= now { "available" } else { "pending" }, "type": kind,
        "balance_type": "payments",
    });
    if let Some(acct) = inner.account(account) {
        if available_on > now {
            acct.pending.entry(available_on).or_default().push(id.clone());
        }
        acct.insert("balance_transaction", txn);
    }
    id
}

pub fn charge_transaction(
    inner: &mut Inner,
    account: &str,
    charge: &str,
    amount: i64,
    currency: &str,
    now: i64,
) -> String {
    let available_on = (now.div_euclid(DAY) + AVAILABLE_AFTER_DAYS) * DAY;
    let fee = card_fee(amount, currency);
    transaction(inner, account, "charge", "charge", charge, amount, fee, currency, now, available_on, Some("Payment"))
}

pub fn refund_transaction(
    inner: &mut Inner,
    account: &str,
    refund: &str,
    amount: i64,
    currency: &str,
    now: i64,
) -> String {
    transaction(inner, account, "refund", "refund", refund, -amount, 0, currency, now, now, Some("REFUND FOR CHARGE"))
}

pub fn dispute_transaction(
    inner: &mut Inner,
    account: &str,
    dispute: &str,
    amount: i64,
    currency: &str,
    now: i64,
) -> String {
    let fee = dispute_fee(currency);
    transaction(
        inner,
        account,
        "adjustment",
        "dispute",
        dispute,
        -amount,
        fee,
        currency,
        now,
        now,
        Some("Chargeback withdrawal"),
    )
}

/// Brings an account up to the simulated clock: funds become available, payouts are created
/// for each midnight passed, and payouts move on.
pub fn settle(inner: &mut Inner, account: &str) {
    let now = inner.now();
    let Some(acct) = inner.accounts.get(account) else { return };
    let (from, today) = (acct.paid_out_through + 1, now.div_euclid(DAY));
    for day in from..=today {
        make_available(inner, account, day * DAY);
        run_payouts(inner, account, day * DAY);
    }
    if let Some(acct) = inner.account(account) {
        acct.paid_out_through = acct.paid_out_through.max(today);
    }
    make_available(inner, account, now);
    progress_payouts(inner, account, now);
}

fn make_available(inner: &mut Inner, account: &str, at: i64) {
    let Some(acct) = inner.account(account) else { return };
    let later = acct.pending.split_off(&at.saturating_add(1));
    let ready: Vec<String> = std::mem::replace(&mut acct.pending, later).into_values().flatten().collect();
    for id in &ready {
        if let Some(txn) = acct.objects.get_mut(id) {
            txn["status"] = json!("available");
        }
    }
    if !ready.is_empty() {
        let balance = balance_of(inner, account);
        inner.record_event(account, "balance.available", &balance, None, (None, None));
    }
}

/// Pays out, per currency, the available balance transactions not yet paid out, when they add
/// up to more than nothing.
fn run_payouts(inner: &mut Inner, account: &str, at: i64) {
    let Some(acct) = inner.account(account) else { return };
    let mut by_currency: std::collections::BTreeMap<String, (i64, Vec<String>)> = Default::default();
    for txn in acct.newest_first("balance_transaction") {
        let id = txn["id"].as_str().unwrap_or_default();
        if txn["status"] != "available" || acct.payout_of.contains_key(id) || txn["type"] == "payout" {
            continue;
        }
        let entry = by_currency.entry(txn["currency"].as_str().unwrap_or_default().to_owned()).or_default();
        entry.0 += txn["net"].as_i64().unwrap_or(0);
        entry.1.push(id.to_owned());
    }
    for (currency, (amount, ids)) in by_currency {
        if amount <= 0 {
            continue;
        }
        let id = inner.id("po");
        let destination = inner.id("ba");
        let txn =
            transaction(inner, account, "payout", "payout", &id, -amount, 0, &currency, at, at, Some("STRIPE PAYOUT"));
        let payout = json!({
            "id": id, "object": "payout", "amount": amount, "arrival_date": at + ARRIVAL_DAYS * DAY,
            "automatic": true, "balance_transaction": txn, "created": at, "currency": currency,
            "description": "STRIPE PAYOUT", "destination": destination, "failure_balance_transaction": null,
            "failure_code": null, "failure_message": null, "livemode": false, "metadata": {}, "method": "standard",
            "original_payout": null, "reconciliation_status": "in_progress", "reversed_by": null,
            "source_type": "card", "statement_descriptor": "PAYYMO SANDBOX", "status": "pending",
            "type": "bank_account", "trace_id": {"status": "pending", "value": null},
        });
        let Some(acct) = inner.account(account) else { return };
        for txn_id in ids.into_iter().chain([txn]) {
            acct.payout_of.insert(txn_id, id.clone());
        }
        acct.insert("payout", payout.clone());
        inner.record_event(account, "payout.created", &payout, None, (None, None));
    }
}

fn progress_payouts(inner: &mut Inner, account: &str, now: i64) {
    let Some(acct) = inner.account(account) else { return };
    let moving: Vec<Value> = acct
        .newest_first("payout")
        .filter(|p| {
            (p["status"] == "pending" && p["created"].as_i64().unwrap_or(0) + 3_600 <= now)
                || (p["status"] == "in_transit" && p["arrival_date"].as_i64().unwrap_or(0) <= now)
        })
        .cloned()
        .collect();
    for mut payout in moving.into_iter().rev() {
        let previous = json!({"status": payout["status"]});
        if payout["status"] == "pending" {
            let trace = format!("{:016}", inner.next() % 10_000_000_000_000_000);
            payout["status"] = json!("in_transit");
            payout["trace_id"] = json!({"status": "supported", "value": trace});
            store(inner, account, &payout);
            inner.record_event(account, "payout.updated", &payout, Some(previous.clone()), (None, None));
        }
        if payout["status"] == "in_transit" && payout["arrival_date"].as_i64().unwrap_or(0) <= now {
            let previous = json!({"status": "in_transit"});
            payout["status"] = json!("paid");
            payout["reconciliation_status"] = json!("completed");
            store(inner, account, &payout);
            arrive(inner, account, &payout);
            inner.record_event(account, "payout.updated", &payout, Some(previous), (None, None));
            inner.record_event(account, "payout.paid", &payout, None, (None, None));
            inner.record_event(account, "payout.reconciliation_completed", &payout, None, (None, None));
        }
    }
}

/// A paid payout arrives in the linked sandbox bank account as a bank statement shows a Stripe
/// payout: a credit of the exact amount on the arrival date, from Stripe, quoting the statement
/// descriptor and the trace id.
fn arrive(inner: &mut Inner, account: &str, payout: &Value) {
    let (Some(bank), Some(bank_account)) =
        (inner.bank.clone(), inner.accounts.get(account).and_then(|a| a.bank_account.clone()))
    else {
        return;
    };
    let currency = payout["currency"].as_str().unwrap_or_default().to_ascii_uppercase();
    let amount = payout["amount"].as_i64().unwrap_or(0);
    // The bank simulator keeps cents; a zero-decimal payout is whole units.
    let cents = amount * 10_i64.pow(2_u32.saturating_sub(exponent(&currency)));
    let arrival = payout["arrival_date"].as_i64().unwrap_or(0);
    let Some(day) = chrono::DateTime::from_timestamp(arrival, 0).map(|at| at.date_naive()) else { return };
    let credit = crate::sandbox::gocardless::BankCredit {
        booking_date: day,
        cents,
        currency,
        counterparty: "STRIPE PAYMENTS UK LTD".into(),
        remittance: format!(
            "{} {}",
            payout["statement_descriptor"].as_str().unwrap_or("STRIPE"),
            payout["trace_id"]["value"].as_str().unwrap_or_default()
        ),
        transaction_id: format!("stripe-{}", payout["id"].as_str().unwrap_or_default()),
    };
    if let Err(reason) = bank.book_credit(&bank_account, credit) {
        tracing::warn!(%reason, payout = %payout["id"], "a Stripe payout could not arrive in the sandbox bank");
    }
}

fn store(inner: &mut Inner, account: &str, object: &Value) {
    if let Some(acct) = inner.account(account) {
        acct.objects.insert(object["id"].as_str().unwrap_or_default().to_owned(), object.clone());
    }
}

/// Fails a payout (on command): its amount returns to the balance through a `payout_failure`
/// balance transaction, to be paid out again.
pub fn fail_payout(inner: &mut Inner, account: &str, id: &str, code: &str) -> Result<Value, StripeError> {
    let mut payout = inner
        .account(account)
        .and_then(|a| a.get(id).cloned())
        .filter(|p| p["object"] == "payout")
        .ok_or_else(|| StripeError::no_such("payout", id, "id"))?;
    if payout["status"] == "failed" || payout["status"] == "canceled" {
        return Err(StripeError::unexpected_state(format!("The payout is already {}.", payout["status"])));
    }
    let now = inner.now();
    let amount = payout["amount"].as_i64().unwrap_or(0);
    let currency = payout["currency"].as_str().unwrap_or_default().to_owned();
    let txn = transaction(
        inner,
        account,
        "payout_failure",
        "payout_reversal",
        id,
        amount,
        0,
        &currency,
        now,
        now,
        Some("Payout failure"),
    );
    let message = match code {
        "account_closed" => "The bank account has been closed.",
        "no_account" => "The bank account details on file are probably incorrect.",
        "insufficient_funds" => "Your Stripe account has insufficient funds to cover the payout.",
        _ => "The bank could not process this payout.",
    };
    let previous = json!({"status": payout["status"]});
    payout["status"] = json!("failed");
    payout["failure_code"] = json!(code);
    payout["failure_message"] = json!(message);
    payout["failure_balance_transaction"] = json!(txn);
    store(inner, account, &payout);
    inner.record_event(account, "payout.updated", &payout, Some(previous), (None, None));
    inner.record_event(account, "payout.failed", &payout, None, (None, None));
    Ok(payout)
}

fn balance_of(inner: &mut Inner, account: &str) -> Value {
    let mut available: std::collections::BTreeMap<String, i64> = Default::default();
    let mut pending: std::collections::BTreeMap<String, i64> = Default::default();
    if let Some(acct) = inner.accounts.get(account) {
        for txn in acct.newest_first("balance_transaction") {
            let currency = txn["currency"].as_str().unwrap_or_default().to_owned();
            let net = txn["net"].as_i64().unwrap_or(0);
            match txn["status"].as_str() {
                Some("available") => *available.entry(currency).or_default() += net,
                _ => *pending.entry(currency).or_default() += net,
            }
            available.entry(txn["currency"].as_str().unwrap_or_default().to_owned()).or_default();
            pending.entry(txn["currency"].as_str().unwrap_or_default().to_owned()).or_default();
        }
    }
    let funds = |sums: std::collections::BTreeMap<String, i64>| -> Vec<Value> {
        sums.into_iter()
            .map(|(c, amount)| json!({"amount": amount, "currency": c, "source_types": {"card": amount}}))
            .collect()
    };
    json!({"object": "balance", "available": funds(available), "pending": funds(pending), "livemode": false})
}

/// `GET /v1/balance`.
pub fn balance(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    Ok(balance_of(inner, &ctx.account))
}

/// `GET /v1/balance_transactions`, with `payout`, `type`, `source` and `currency`.
pub fn list_transactions(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let (payout, kind, source, currency) =
        (ctx.str("payout")?, ctx.str("type")?, ctx.str("source")?, ctx.str("currency")?);
    let acct = inner.accounts.get(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))?;
    if let Some(payout) = payout
        && acct.get(payout).is_none_or(|p| p["object"] != "payout")
    {
        return Err(StripeError::no_such("payout", payout, "payout"));
    }
    list::page(acct, ctx, "/v1/balance_transactions", "balance_transaction", |t| {
        let id = t["id"].as_str().unwrap_or_default();
        payout.is_none_or(|p| acct.payout_of.get(id).is_some_and(|of| of == p))
            && kind.is_none_or(|k| t["type"] == k)
            && source.is_none_or(|s| t["source"] == s)
            && currency.is_none_or(|c| t["currency"] == c.to_ascii_lowercase().as_str())
    })
}

/// `GET /v1/events`: the last 30 days, with `type` (`charge.*` matches a prefix) or `types[]`.
pub fn list_events(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let since = inner.now() - 30 * DAY;
    let kind = ctx.str("type")?.map(str::to_owned);
    let types: Vec<String> = match ctx.params.get("types") {
        Some(Value::Array(items)) => items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let matches = |event_type: &str, pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => event_type == pattern,
    };
    let acct = inner.accounts.get(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))?;
    list::page(acct, ctx, "/v1/events", "event", |e| {
        let event_type = e["type"].as_str().unwrap_or_default();
        e["created"].as_i64().unwrap_or(0) >= since
            && kind.as_deref().is_none_or(|k| matches(event_type, k))
            && (types.is_empty() || types.iter().any(|t| matches(event_type, t)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_follow_the_currency() {
        assert_eq!(card_fee(2000, "eur"), 88, "2.9% of 20.00 is 0.58, plus 0.30");
        assert_eq!(card_fee(1000, "jpy"), 36, "3.6%, no fixed part, in yen");
        assert_eq!(card_fee(1, "gbp"), 30);
        assert_eq!(dispute_fee("jpy"), 15);
        assert_eq!(dispute_fee("usd"), 1500);
    }
}
