//! The account and customers, and the retrieve and list every object type shares.

use serde_json::{Value, json};

use super::{
    api::Ctx,
    error::StripeError,
    list,
    state::{Account, Inner},
};

pub(super) fn account_of<'a>(inner: &'a mut Inner, ctx: &Ctx) -> Result<&'a mut Account, StripeError> {
    inner.accounts.get_mut(&ctx.account).ok_or_else(|| StripeError::bad_key(&ctx.account))
}

/// `GET /v1/account`.
pub fn account(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let acct = account_of(inner, ctx)?;
    Ok(json!({
        "id": acct.id, "object": "account", "type": "standard", "country": acct.country,
        "default_currency": acct.default_currency, "created": acct.created, "email": "finance@sandbox.example",
        "business_profile": {"name": acct.name, "url": null, "support_email": null},
        "settings": {"dashboard": {"display_name": acct.name}, "payouts": {"statement_descriptor": "PAYYMO SANDBOX",
            "schedule": {"interval": "daily", "delay_days": 2}}},
        "charges_enabled": true, "payouts_enabled": true, "details_submitted": true, "metadata": {},
        "capabilities": {"card_payments": "active", "transfers": "active"},
    }))
}

/// A retrieve: the object with `expand[]` applied, or Stripe's 404.
pub fn retrieve(inner: &mut Inner, ctx: &Ctx, kind: &str, id: &str) -> Result<Value, StripeError> {
    let acct = account_of(inner, ctx)?;
    let object = acct.get(id).filter(|o| o["object"] == kind).cloned();
    object.ok_or_else(|| StripeError::no_such(kind, id, "id"))
}

/// A list of one type, with the filters every list shares and those of the type.
pub fn list(inner: &mut Inner, ctx: &Ctx, kind: &'static str, url: &str) -> Result<Value, StripeError> {
    let filters: Vec<(&str, String)> = ["customer", "payment_intent", "charge", "status", "email", "currency"]
        .into_iter()
        .filter_map(|name| ctx.str(name).ok().flatten().map(|value| (name, value.to_owned())))
        .collect();
    let acct = account_of(inner, ctx)?;
    list::page(acct, ctx, url, kind, |item| filters.iter().all(|(name, value)| item[*name] == value.as_str()))
}

pub fn create_customer(inner: &mut Inner, ctx: &Ctx) -> Result<Value, StripeError> {
    let id = inner.id("cus");
    let now = inner.now();
    let customer = json!({
        "id": id, "object": "customer", "created": now, "livemode": false,
        "name": ctx.str("name")?, "email": ctx.str("email")?, "description": ctx.str("description")?,
        "phone": ctx.str("phone")?, "metadata": ctx.metadata(&json!({}))?, "balance": 0, "currency": null,
        "delinquent": false, "default_source": null, "invoice_prefix": id[4..12].to_uppercase(),
        "preferred_locales": [], "tax_exempt": "none", "test_clock": null,
    });
    let acct = account_of(inner, ctx)?;
    acct.insert("customer", customer.clone());
    inner.record_event(&ctx.account, "customer.created", &customer, None, ctx.request());
    Ok(customer)
}

pub fn update_customer(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let acct = account_of(inner, ctx)?;
    let mut customer = acct
        .get(id)
        .filter(|o| o["object"] == "customer")
        .cloned()
        .ok_or_else(|| StripeError::no_such("customer", id, "id"))?;
    let mut previous = serde_json::Map::new();
    for field in ["name", "email", "description", "phone"] {
        if let Some(value) = ctx.str(field)? {
            let value = if value.is_empty() { Value::Null } else { json!(value) };
            if customer[field] != value {
                previous.insert(field.into(), customer[field].clone());
                customer[field] = value;
            }
        }
    }
    let metadata = ctx.metadata(&customer["metadata"])?;
    if metadata != customer["metadata"] {
        previous.insert("metadata".into(), customer["metadata"].clone());
        customer["metadata"] = metadata;
    }
    acct.objects.insert(id.to_owned(), customer.clone());
    if !previous.is_empty() {
        inner.record_event(&ctx.account, "customer.updated", &customer, Some(Value::Object(previous)), ctx.request());
    }
    Ok(customer)
}

pub fn delete_customer(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<Value, StripeError> {
    let acct = account_of(inner, ctx)?;
    let customer = acct
        .get(id)
        .filter(|o| o["object"] == "customer")
        .cloned()
        .ok_or_else(|| StripeError::no_such("customer", id, "id"))?;
    acct.remove("customer", id);
    inner.record_event(&ctx.account, "customer.deleted", &customer, None, ctx.request());
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}
