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

/// One page of the account's objects of type `kind` that `keep` accepts (newest first) for
/// `ctx`'s list parameters. A cursor is found by its position among the type's ids, so a page
/// costs what it shows (and the objects the filters pass over), not the whole list.
pub fn page(
    acct: &Account,
    ctx: &Ctx,
    url: &str,
    kind: &str,
    keep: impl Fn(&Value) -> bool,
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
    let listed = |item: &&Value| created.contains(item["created"].as_i64().unwrap_or(0)) && keep(item);
    let ids = acct.ids(kind);
    // The cursor's place among the ids (oldest first), when it is an object the list shows.
    let position = |id: &str, param: &str| {
        acct.position(id)
            .filter(|&at| ids.get(at).is_some_and(|i| i == id) && acct.get(id).as_ref().is_some_and(listed))
            .ok_or_else(|| StripeError::invalid(param, "resource_missing", format!("No such object: '{id}'")))
    };
    let (chosen, has_more) = match (after, before) {
        (Some(id), _) => {
            let older = ids[..position(id, "starting_after")?].iter().rev();
            first(older.filter_map(|id| acct.get(id)).filter(listed), limit)
        }
        (None, Some(id)) => {
            let newer = ids[position(id, "ending_before")? + 1..].iter();
            let (mut chosen, more) = first(newer.filter_map(|id| acct.get(id)).filter(listed), limit);
            chosen.reverse();
            (chosen, more)
        }
        (None, None) => first(ids.iter().rev().filter_map(|id| acct.get(id)).filter(listed), limit),
    };
    let expand: Vec<String> =
        ctx.expand().iter().filter_map(|path| path.strip_prefix("data.").map(str::to_owned)).collect();
    let data = chosen.into_iter().map(|item| expand_all(acct, item.clone(), &expand)).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": url}))
}

/// The first `limit` of `items`, and whether there are more.
fn first<'a>(items: impl Iterator<Item = &'a Value>, limit: usize) -> (Vec<&'a Value>, bool) {
    let mut chosen: Vec<&Value> = items.take(limit + 1).collect();
    let more = chosen.len() > limit;
    chosen.truncate(limit);
    (chosen, more)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::{body::Body, http::Request};
    use chrono::{TimeZone, Utc};
    use serde_json::Value;
    use tower::ServiceExt;

    use crate::sandbox::{
        gocardless::Clock,
        stripe::{DEFAULT_SECRET_KEY, StripeSim, router},
    };

    async fn get(sim: &StripeSim, query: &str) -> Value {
        let request = Request::get(format!("/v1/charges?{query}"))
            .header("authorization", format!("Bearer {DEFAULT_SECRET_KEY}"))
            .body(Body::empty())
            .unwrap();
        let response = router(sim.clone()).oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    }

    #[tokio::test]
    async fn cursors_page_forwards_and_back_through_every_object_once() {
        let sim = StripeSim::new(3, Clock::fixed(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
        let account = sim.default_account();
        let seed = super::super::seed::Seed { charges: 25, currency: "eur".into(), amount: None };
        super::super::seed::seed(&mut sim.lock(), &account, &seed).unwrap();
        let all = ids(&get(&sim, "limit=100").await);
        assert_eq!(all.len(), 25);
        let (mut forwards, mut after, mut pages) = (Vec::new(), None::<String>, Vec::new());
        loop {
            let cursor = after.as_ref().map_or(String::new(), |a| format!("&starting_after={a}"));
            let page = get(&sim, &format!("limit=10{cursor}")).await;
            forwards.extend(ids(&page));
            pages.push(page["has_more"] == true);
            after = forwards.last().cloned();
            if page["has_more"] != true {
                break;
            }
        }
        assert_eq!((forwards, pages), (all.clone(), vec![true, true, false]));
        let back = get(&sim, &format!("limit=10&ending_before={}", all[24])).await;
        assert_eq!((ids(&back), back["has_more"] == true), (all[14..24].to_vec(), true));
        let back = get(&sim, &format!("limit=10&ending_before={}", all[5])).await;
        assert_eq!((ids(&back), back["has_more"] == true), (all[..5].to_vec(), false));
        let missing = get(&sim, "limit=10&starting_after=ch_missing").await;
        assert_eq!(missing["error"]["code"], "resource_missing");
        let outside = get(&sim, &format!("created[lt]=0&starting_after={}", all[3])).await;
        assert_eq!(outside["error"]["code"], "resource_missing", "a cursor the filters exclude");
    }
}
