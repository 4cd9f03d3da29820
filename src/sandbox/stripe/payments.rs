//! The account, customers, payment intents, charges, refunds and disputes, with Stripe's test
//! cards: `pm_card_visa` (or `4242424242424242`) succeeds, `pm_card_chargeDeclined`
//! (`4000000000000002`) is declined with a `card_error`, `pm_card_chargeDeclinedInsufficientFunds`
//! (`4000000000009995`) likewise for insufficient funds, and `pm_card_createDispute`
//! (`4000000000000259`) succeeds and is then disputed.

use serde_json::{Value, json};

use super::{api::Ctx, balance, error::StripeError, objects::account_of, state::Inner};

/// What a test card does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Succeeds,
    Declined(&'static str, &'static str),
    Disputed,
}

/// A test card: its brand, last four digits and outcome.
fn test_card(payment_method: &str) -> Option<(&'static str, &'static str, Outcome)> {
    let declined = Outcome::Declined("generic_decline", "Your card was declined.");
    let insufficient = Outcome::Declined("insufficient_funds", "Your card has insufficient funds.");
    Some(match payment_method {
        "pm_card_visa" | "tok_visa" | "4242424242424242" => ("visa", "4242", Outcome::Succeeds),
        "pm_card_mastercard" | "tok_mastercard" | "5555555555554444" => ("mastercard", "4444", Outcome::Succeeds),
        "pm_card_amex" | "tok_amex" | "378282246310005" => ("amex", "0005", Outcome::Succeeds),
        "pm_card_jp" | "tok_jp" | "3530111333300000" => ("jcb", "0000", Outcome::Succeeds),
        "pm_card_chargeDeclined" | "tok_chargeDeclined" | "4000000000000002" => ("visa", "0002", declined),
        "pm_card_chargeDeclinedInsufficientFunds" | "tok_chargeDeclinedInsufficientFunds" | "4000000000009995" => {
            ("visa", "9995", insufficient)
        }
        "pm_card_createDispute" | "tok_createDispute" | "4000000000000259" => ("visa", "0259", Outcome::Disputed),
        _ => return None,
    })
}

/// The payment method a request names: `payment_method`, or a card number in
/// `payment_method_data[card][number]`.
fn payment_method_of(ctx: &Ctx) -> Result<Option<String>, StripeError> {
    if let Some(pm) = ctx.str("payment_method")? {
        return Ok(Some(pm.to_owned()));
    }
    Ok(ctx.params.get("payment_method_data").and_then(|d| d["card"]["number"].as_str()).map(str::to_owned))
}

pub fn create_payment_intent(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let amount = ctx.int("amount")?.ok_or_else(|| StripeError::missing("amount"))?;
    if amount < 1 {
        return Err(StripeError::invalid("amount", "amount_too_small", "Amount must be at least 1."));
    }
    let currency = ctx.currency("currency")?;
    let capture_method = ctx.str("capture_method")?.unwrap_or("automatic");
    if !matches!(capture_method, "automatic" | "automatic_async" | "manual") {
        return Err(StripeError::bad_value("capture_method", capture_method));
    }
    let customer = ctx.str("customer")?;
    if let Some(customer) = customer
        && account_of(inner, ctx)?.get(customer).is_none()
    {
        return Err(StripeError::no_such("customer", customer, "customer"));
    }
    let payment_method = payment_method_of(ctx)?;
    if let Some(pm) = &payment_method
        && test_card(pm).is_none()
    {
        return Err(StripeError::no_such("PaymentMethod", pm, "payment_method"));
    }
    let id = inner.id("pi");
    let secret = inner.id("secret");
    let now = inner.now();
    let intent = json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0, "amount_received": 0,
        "currency": currency, "capture_method": capture_method, "confirmation_method": "automatic",
        "client_secret": format!("{id}_{secret}"), "created": now, "customer": customer,
        "description": ctx.str("description")?, "metadata": ctx.metadata(&json!({}))?, "livemode": false,
        "latest_charge": null, "last_payment_error": null, "canceled_at": null, "cancellation_reason": null,
        "next_action": null, "payment_method": payment_method,
        "payment_method_types": ["card"], "receipt_email": ctx.str("receipt_email")?,
        "statement_descriptor": ctx.str("statement_descriptor")?, "statement_descriptor_suffix": null,
        "status": if payment_method.is_some() { "requires_confirmation" } else { "requires_payment_method" },
    });
    account_of(inner, ctx)?.insert("payment_intent", intent.clone());
    inner.record_event(&ctx.account, "payment_intent.created", &intent, None, ctx.request());
    if ctx.bool("confirm")?.unwrap_or(false) {
        return confirm(inner, ctx, &id);
    }
    Ok(intent)
}

fn intent_of(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    account_of(inner, ctx)?
        .get(id)
        .filter(|o| o["object"] == "payment_intent")
        .cloned()
        .ok_or_else(|| StripeError::no_such("payment_intent", id, "intent"))
}

fn store(inner: &mut Inner, ctx: &Ctx, object: &Value) -> Result<(), StripeError> {
    let id = object["id"].as_str().unwrap_or_default().to_owned();
    account_of(inner, ctx)?.objects.insert(id, object.clone());
    Ok(())
}

pub fn confirm(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let mut intent = intent_of(inner, ctx, id)?;
    let status = intent["status"].as_str().unwrap_or_default().to_owned();
    if !matches!(status.as_str(), "requires_payment_method" | "requires_confirmation") {
        return Err(StripeError::unexpected_state(format!(
            "This PaymentIntent's status is {status}, but it must be requires_payment_method or requires_confirmation to be confirmed."
        )));
    }
    if let Some(pm) = payment_method_of(ctx)? {
        intent["payment_method"] = json!(pm);
    }
    let Some(pm) = intent["payment_method"].as_str().map(str::to_owned) else {
        return Err(StripeError::invalid(
            "payment_method",
            "payment_intent_unexpected_state",
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
        ));
    };
    let (brand, last4, outcome) =
        test_card(&pm).ok_or_else(|| StripeError::no_such("PaymentMethod", &pm, "payment_method"))?;
    let amount = intent["amount"].as_i64().unwrap_or(0);
    let currency = intent["currency"].as_str().unwrap_or_default().to_owned();
    let manual = intent["capture_method"] == "manual";
    let charge_id = inner.id("ch");
    let now = inner.now();
    let succeeded = !matches!(outcome, Outcome::Declined(..));
    let mut charge = json!({
        "id": charge_id, "object": "charge", "amount": amount, "amount_captured": 0, "amount_refunded": 0,
        "balance_transaction": null, "captured": false, "created": now, "currency": currency,
        "customer": intent["customer"], "description": intent["description"], "disputed": false,
        "failure_code": null, "failure_message": null, "livemode": false, "metadata": intent["metadata"],
        "paid": succeeded, "payment_intent": id, "payment_method": pm, "refunded": false,
        "calculated_statement_descriptor": "PAYYMO SANDBOX", "receipt_url": null,
        "billing_details": {"address": null, "email": null, "name": null, "phone": null},
        "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": last4, "exp_month": 12,
            "exp_year": 2030, "country": "GB", "funding": "credit", "network": brand}},
        "outcome": {"network_status": "approved_by_network", "reason": null, "risk_level": "normal",
            "seller_message": "Payment complete.", "type": "authorized"},
        "status": "succeeded",
    });
    intent["latest_charge"] = json!(charge_id);
    if let Outcome::Declined(decline_code, message) = outcome {
        charge["status"] = json!("failed");
        charge["failure_code"] = json!("card_declined");
        charge["failure_message"] = json!(message);
        charge["outcome"] = json!({"network_status": "declined_by_network", "reason": decline_code,
            "risk_level": "normal", "type": "issuer_declined",
            "seller_message": "The bank did not return any further details with this decline."});
        intent["status"] = json!("requires_payment_method");
        intent["last_payment_error"] = json!({"type": "card_error", "code": "card_declined",
            "decline_code": decline_code, "message": message, "charge": charge_id,
            "payment_method": {"id": pm, "object": "payment_method", "type": "card"}});
        account_of(inner, ctx)?.insert("charge", charge.clone());
        store(inner, ctx, &intent)?;
        inner.record_event(&ctx.account, "charge.failed", &charge, None, ctx.request());
        inner.record_event(&ctx.account, "payment_intent.payment_failed", &intent, None, ctx.request());
        let mut error = StripeError::card("card_declined", decline_code, message);
        error.extra.insert("charge".into(), json!(charge_id));
        error.extra.insert("payment_intent".into(), intent);
        error.extra.insert("payment_method".into(), json!({"id": pm, "object": "payment_method", "type": "card"}));
        error.extra.insert("payment_method_type".into(), json!("card"));
        return Err(error);
    }
    intent["last_payment_error"] = Value::Null;
    if manual {
        intent["status"] = json!("requires_capture");
        intent["amount_capturable"] = json!(amount);
    } else {
        let txn = balance::charge_transaction(inner, &ctx.account, &charge_id, amount, &currency, now);
        charge["captured"] = json!(true);
        charge["amount_captured"] = json!(amount);
        charge["balance_transaction"] = json!(txn);
        intent["status"] = json!("succeeded");
        intent["amount_received"] = json!(amount);
    }
    account_of(inner, ctx)?.insert("charge", charge.clone());
    store(inner, ctx, &intent)?;
    inner.record_event(&ctx.account, "charge.succeeded", &charge, None, ctx.request());
    let event = if manual { "payment_intent.amount_capturable_updated" } else { "payment_intent.succeeded" };
    inner.record_event(&ctx.account, event, &intent, None, ctx.request());
    if outcome == Outcome::Disputed && !manual {
        dispute(inner, ctx, &charge)?;
    }
    Ok(intent)
}

/// The card's holder disputes the charge: the amount and a dispute fee are withdrawn.
fn dispute(inner: &mut Inner, ctx: &Ctx, charge: &Value) -> Result<(), StripeError> {
    let id = inner.id("du");
    let now = inner.now();
    let amount = charge["amount"].as_i64().unwrap_or(0);
    let currency = charge["currency"].as_str().unwrap_or_default().to_owned();
    let txn = balance::dispute_transaction(inner, &ctx.account, &id, amount, &currency, now);
    let dispute = json!({
        "id": id, "object": "dispute", "amount": amount, "currency": currency, "charge": charge["id"],
        "payment_intent": charge["payment_intent"], "created": now, "reason": "fraudulent",
        "status": "needs_response", "is_charge_refundable": false, "livemode": false, "metadata": {},
        "balance_transactions": [txn_object(inner, ctx, &txn)?],
        "evidence_details": {"due_by": now + 7 * 86_400, "has_evidence": false, "past_due": false,
            "submission_count": 0},
        "network_reason_code": "10.4",
    });
    let mut charge = charge.clone();
    charge["disputed"] = json!(true);
    account_of(inner, ctx)?.insert("dispute", dispute.clone());
    store(inner, ctx, &charge)?;
    inner.record_event(&ctx.account, "charge.dispute.created", &dispute, None, ctx.request());
    inner.record_event(&ctx.account, "charge.dispute.funds_withdrawn", &dispute, None, ctx.request());
    Ok(())
}

fn txn_object(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    Ok(account_of(inner, ctx)?.get(id).cloned().unwrap_or(Value::Null))
}

pub fn capture(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let mut intent = intent_of(inner, ctx, id)?;
    if intent["status"] != "requires_capture" {
        return Err(StripeError::unexpected_state(format!(
            "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
            intent["status"].as_str().unwrap_or_default()
        )));
    }
    let capturable = intent["amount_capturable"].as_i64().unwrap_or(0);
    let amount = ctx.int("amount_to_capture")?.unwrap_or(capturable);
    if amount < 1 || amount > capturable {
        return Err(StripeError::invalid(
            "amount_to_capture",
            "amount_too_large",
            format!("The amount to capture ({amount}) must be between 1 and the capturable amount ({capturable})."),
        ));
    }
    let charge_id = intent["latest_charge"].as_str().unwrap_or_default().to_owned();
    let mut charge = txn_object(inner, ctx, &charge_id)?;
    let currency = intent["currency"].as_str().unwrap_or_default().to_owned();
    let now = inner.now();
    let txn = balance::charge_transaction(inner, &ctx.account, &charge_id, amount, &currency, now);
    charge["captured"] = json!(true);
    charge["amount_captured"] = json!(amount);
    charge["balance_transaction"] = json!(txn);
    intent["status"] = json!("succeeded");
    intent["amount_received"] = json!(amount);
    intent["amount_capturable"] = json!(0);
    store(inner, ctx, &charge)?;
    store(inner, ctx, &intent)?;
    inner.record_event(&ctx.account, "charge.captured", &charge, None, ctx.request());
    inner.record_event(&ctx.account, "payment_intent.succeeded", &intent, None, ctx.request());
    Ok(intent)
}

pub fn cancel(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let mut intent = intent_of(inner, ctx, id)?;
    let status = intent["status"].as_str().unwrap_or_default().to_owned();
    if !matches!(
        status.as_str(),
        "requires_payment_method" | "requires_confirmation" | "requires_action" | "requires_capture"
    ) {
        return Err(StripeError::unexpected_state(format!(
            "You cannot cancel this PaymentIntent because it has a status of {status}."
        )));
    }
    let reason = ctx.str("cancellation_reason")?;
    if let Some(reason) = reason
        && !matches!(reason, "duplicate" | "fraudulent" | "requested_by_customer" | "abandoned")
    {
        return Err(StripeError::bad_value("cancellation_reason", reason));
    }
    if status == "requires_capture"
        && let Some(charge_id) = intent["latest_charge"].as_str().map(str::to_owned)
    {
        let mut charge = txn_object(inner, ctx, &charge_id)?;
        charge["amount_refunded"] = charge["amount"].clone();
        charge["refunded"] = json!(true);
        store(inner, ctx, &charge)?;
    }
    intent["status"] = json!("canceled");
    intent["canceled_at"] = json!(inner.now());
    intent["cancellation_reason"] = json!(reason);
    intent["amount_capturable"] = json!(0);
    store(inner, ctx, &intent)?;
    inner.record_event(&ctx.account, "payment_intent.canceled", &intent, None, ctx.request());
    Ok(intent)
}

pub fn create_refund(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let charge_id = match (ctx.str("charge")?, ctx.str("payment_intent")?) {
        (Some(charge), _) => charge.to_owned(),
        (None, Some(intent)) => {
            let intent = intent_of(inner, ctx, intent)
                .map_err(|_| StripeError::no_such("payment_intent", intent, "payment_intent"))?;
            intent["latest_charge"].as_str().map(str::to_owned).ok_or_else(|| {
                StripeError::invalid(
                    "payment_intent",
                    "charge_not_refundable",
                    "This PaymentIntent has no successful charge to refund.",
                )
            })?
        }
        (None, None) => return Err(StripeError::missing("charge")),
    };
    let mut charge = account_of(inner, ctx)?
        .get(&charge_id)
        .filter(|o| o["object"] == "charge")
        .cloned()
        .ok_or_else(|| StripeError::no_such("charge", &charge_id, "charge"))?;
    if charge["status"] != "succeeded" || charge["captured"] != true {
        return Err(StripeError::invalid(
            "charge",
            "charge_not_refundable",
            format!("Charge {charge_id} has not been captured, so it cannot be refunded."),
        ));
    }
    let captured = charge["amount_captured"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let remaining = captured - refunded;
    let amount = ctx.int("amount")?.unwrap_or(remaining);
    if amount < 1 || amount > remaining {
        return Err(StripeError::invalid(
            "amount",
            "amount_too_large",
            format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."),
        ));
    }
    let reason = ctx.str("reason")?;
    if let Some(reason) = reason
        && !matches!(reason, "duplicate" | "fraudulent" | "requested_by_customer")
    {
        return Err(StripeError::bad_value("reason", reason));
    }
    let id = inner.id("re");
    let now = inner.now();
    let currency = charge["currency"].as_str().unwrap_or_default().to_owned();
    let txn = balance::refund_transaction(inner, &ctx.account, &id, amount, &currency, now);
    let refund = json!({
        "id": id, "object": "refund", "amount": amount, "balance_transaction": txn, "charge": charge_id,
        "payment_intent": charge["payment_intent"], "currency": currency, "created": now,
        "metadata": ctx.metadata(&json!({}))?, "reason": reason, "receipt_number": null, "status": "succeeded",
        "destination_details": {"type": "card", "card": {"type": "refund", "reference_status": "pending"}},
    });
    let previous = json!({"amount_refunded": refunded, "refunded": charge["refunded"]});
    charge["amount_refunded"] = json!(refunded + amount);
    charge["refunded"] = json!(refunded + amount == captured);
    account_of(inner, ctx)?.insert("refund", refund.clone());
    store(inner, ctx, &charge)?;
    inner.record_event(&ctx.account, "refund.created", &refund, None, ctx.request());
    inner.record_event(&ctx.account, "charge.refunded", &charge, Some(previous), ctx.request());
    Ok(refund)
}
