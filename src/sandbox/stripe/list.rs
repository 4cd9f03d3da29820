//! Stripe's lists and expansion: `{object: "list", data, has_more, url}`, newest first, with
//! `limit`, `starting_after`, `ending_before` and `created[gt|gte|lt|lte]`; and `expand[]`
//! turning an id into its object (`data.` on a list).

use serde_json::{Value, json};

use super::{api::Ctx, error::StripeError, state::Account};

/// Fields `expand[]` may name, as Stripe allows them.
const EXPANDABLE: &[&str] = &[
    "balance_transaction",
    "payment_intent",
    "latest_charge",
    "customer",
    "source",
    "charge",
    "failure_balance_transaction",
];

/// One page of `items` (newest first) for `ctx`'s list parameters.
pub fn page<'a>(
    acct: &Account,
    ctx: &Ctx,
    url: &str,
    items: impl Iterator<Item = &'a Value>,
) -> Result<Value, StripeError> {
    let limit = match ctx.int("limit")? {
        None => 10,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(n) => {
            return Err(StripeError::invalid(
                "limit",
                "parameter_invalid_integer",
                format!("Invalid integer: {n}. The limit must be between 1 and 100."),
            ));
        }
    };
    let (after, before) = (ctx.str("starting_after")?, ctx.str("ending_before")?);
    if after.is_some() && before.is_some() {
        return Err(StripeError::invalid(
            "ending_before",
            "parameter_invalid_string",
            "You may only specify one of these parameters: ending_before, starting_after.",
        ));
    }
    let created = Range::of(ctx, "created")?;
    let items: Vec<&Value> = items.filter(|item| created.contains(item["created"].as_i64().unwrap_or(0))).collect();
    let position = |id: &str, param: &str| {
        items
            .iter()
            .position(|item| item["id"] == id)
            .ok_or_else(|| StripeError::invalid(param, "resource_missing", format!("No such object: '{id}'")))
    };
    let (chosen, has_more): (Vec<&Value>, bool) = match (after, before) {
        (Some(id), _) => {
            let from = position(id, "starting_after")? + 1;
            let rest = &items[from..];
            (rest.iter().take(limit).copied().collect(), rest.len() > limit)
        }
        (None, Some(id)) => {
            let to = position(id, "ending_before")?;
            let start = to.saturating_sub(limit);
            (items[start..to].to_vec(), start > 0)
        }
        (None, None) => (items.iter().take(limit).copied().collect(), items.len() > limit),
    };
    let expand: Vec<String> =
        ctx.expand().iter().filter_map(|path| path.strip_prefix("data.").map(str::to_owned)).collect();
    let data = chosen.into_iter().map(|item| expand_all(acct, item.clone(), &expand)).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": url}))
}

/// An object with `expand[]` applied.
pub fn expanded(acct: &Account, ctx: &Ctx, object: Value) -> Result<Value, StripeError> {
    expand_all(acct, object, &ctx.expand())
}

fn expand_all(acct: &Account, mut object: Value, paths: &[String]) -> Result<Value, StripeError> {
    for path in paths {
        expand_path(acct, &mut object, path, path)?;
    }
    Ok(object)
}

fn expand_path(acct: &Account, object: &mut Value, path: &str, whole: &str) -> Result<(), StripeError> {
    let (field, rest) = path.split_once('.').map_or((path, None), |(f, r)| (f, Some(r)));
    if !EXPANDABLE.contains(&field) {
        return Err(StripeError::invalid(
            "expand",
            "parameter_invalid_string",
            format!("This property cannot be expanded ({whole})."),
        ));
    }
    let Some(slot) = object.get_mut(field) else {
        return Err(StripeError::invalid(
            "expand",
            "parameter_invalid_string",
            format!("This property cannot be expanded ({whole})."),
        ));
    };
    if let Some(id) = slot.as_str()
        && let Some(found) = acct.get(id)
    {
        *slot = found.clone();
    }
    if let Some(rest) = rest
        && slot.is_object()
    {
        expand_path(acct, slot, rest, whole)?;
    }
    Ok(())
}

/// A `created` (or other timestamp) filter: an exact value or `gt`, `gte`, `lt`, `lte`.
#[derive(Debug, Default)]
pub struct Range {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl Range {
    pub fn of(ctx: &Ctx, name: &str) -> Result<Self, StripeError> {
        let bad = |key: &str, text: &str| {
            StripeError::invalid(key, "parameter_invalid_integer", format!("Invalid integer: {text}"))
        };
        match ctx.params.get(name) {
            None => Ok(Self::default()),
            Some(Value::String(text)) => {
                let at = text.parse::<i64>().map_err(|_| bad(name, text))?;
                Ok(Self { gte: Some(at), lte: Some(at), ..Self::default() })
            }
            Some(Value::Object(bounds)) => {
                let mut range = Self::default();
                for (key, value) in bounds {
                    let text = value.as_str().unwrap_or_default();
                    let at = text.parse::<i64>().map_err(|_| bad(&format!("{name}[{key}]"), text))?;
                    match key.as_str() {
                        "gt" => range.gt = Some(at),
                        "gte" => range.gte = Some(at),
                        "lt" => range.lt = Some(at),
                        "lte" => range.lte = Some(at),
                        other => {
                            return Err(StripeError::invalid(
                                &format!("{name}[{other}]"),
                                "parameter_unknown",
                                format!("Received unknown parameter: {name}[{other}]"),
                            ));
                        }
                    }
                }
                Ok(range)
            }
            Some(_) => Err(bad(name, "")),
        }
    }

    pub fn contains(&self, at: i64) -> bool {
        self.gt.is_none_or(|b| at > b)
            && self.gte.is_none_or(|b| at >= b)
            && self.lt.is_none_or(|b| at < b)
            && self.lte.is_none_or(|b| at <= b)
    }
}
