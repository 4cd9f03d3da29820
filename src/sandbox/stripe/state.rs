//! The Stripe simulator's state: accounts, their keys and objects, the clock, and the events
//! every change records. In memory (it simulates an outside service), seeded and deterministic.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::sandbox::gocardless::{Clock, SandboxState};

/// The API version the simulator answers in when the request names none.
pub const API_VERSION: &str = "2025-09-30.clover";
/// The secret key of the account every simulator starts with.
pub const DEFAULT_SECRET_KEY: &str = "sk_test_sandbox_payymo";
/// The restricted key of that account (read permissions only).
pub const DEFAULT_RESTRICTED_KEY: &str = "rk_test_sandbox_payymo";

/// What a key may do.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub account: String,
    /// `rk_…`: reads only.
    pub restricted: bool,
    /// Resources (`payouts`, `events`) a restricted key may not read.
    pub without: Vec<String>,
    pub revoked: bool,
    pub expired: bool,
}

/// A fault the next matching requests meet, before anything is executed or stored.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// Only requests whose path starts with this (all when empty).
    pub path: String,
    pub status: u16,
    /// `Stripe-Should-Retry` on the answer, if any.
    pub should_retry: Option<bool>,
    /// Milliseconds to wait before answering (alone, with `status` 0: latency only).
    pub latency_ms: u64,
    pub remaining: u32,
}

/// A stored answer to an idempotent request.
#[derive(Debug, Clone)]
pub(crate) enum Idempotent {
    /// Being executed: a concurrent duplicate is a 409.
    InFlight {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        status: u16,
        body: Value,
    },
}

/// How deliveries to webhook endpoints misbehave, on command.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryMode {
    /// Send each event this many extra times.
    #[serde(default)]
    pub duplicate: u32,
    /// Drop the next this many deliveries (never sent).
    #[serde(default)]
    pub drop: u32,
    /// Wait this long before each delivery.
    #[serde(default)]
    pub delay_ms: u64,
    /// Send queued events newest first.
    #[serde(default)]
    pub reorder: bool,
}

/// One simulated Stripe account.
#[derive(Debug, Default)]
pub(crate) struct Account {
    pub id: String,
    pub name: String,
    pub country: String,
    pub default_currency: String,
    pub created: i64,
    /// Every object by id.
    pub objects: HashMap<String, Value>,
    /// Ids of each object type, oldest first.
    order: HashMap<&'static str, Vec<String>>,
    /// Where each id is in its type's `order`, so a list page starts at its cursor at once.
    positions: HashMap<String, usize>,
    /// The balance transactions still pending, by the time they become available, so settling
    /// does not read every transaction on every request.
    pub pending: BTreeMap<i64, Vec<String>>,
    pub idempotency: HashMap<String, Idempotent>,
    /// The day (Unix days) automatic payouts last ran up to.
    pub paid_out_through: i64,
    /// Webhook endpoints' signing secrets, shown only when an endpoint is created.
    pub secrets: HashMap<String, String>,
    /// The payout each balance transaction was paid out in.
    pub payout_of: HashMap<String, String>,
    /// The sandbox bank account (GoCardless simulator) its payouts arrive in, when linked.
    pub bank_account: Option<String>,
}

impl Account {
    pub fn insert(&mut self, kind: &'static str, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_owned();
        let ids = self.order.entry(kind).or_default();
        self.positions.insert(id.clone(), ids.len());
        ids.push(id.clone());
        self.objects.insert(id, object);
    }

    /// Deletes an object of type `kind`.
    pub fn remove(&mut self, kind: &'static str, id: &str) {
        self.objects.remove(id);
        if self.positions.remove(id).is_some()
            && let Some(ids) = self.order.get_mut(kind)
        {
            ids.retain(|other| other != id);
            for (at, other) in ids.iter().enumerate() {
                self.positions.insert(other.clone(), at);
            }
        }
    }

    /// The ids of a type, oldest first.
    pub fn ids(&self, kind: &str) -> &[String] {
        self.order.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Where `id` is among the ids of its type (oldest first).
    pub fn position(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id)
    }

    /// The objects of a type, newest first.
    pub fn newest_first(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.order.get(kind).into_iter().flat_map(|ids| ids.iter().rev()).filter_map(|id| self.objects.get(id))
    }
}

/// An event waiting to be delivered to one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub endpoint: String,
    pub url: String,
    pub secret: String,
    pub event: Value,
    pub attempt: u32,
    /// Simulated-clock independent: real seconds since the Unix epoch before which it waits.
    pub not_before: i64,
}

pub(crate) struct Inner {
    pub rng: u64,
    pub clock: Clock,
    pub keys: HashMap<String, Key>,
    pub accounts: HashMap<String, Account>,
    pub faults: Vec<Fault>,
    pub deliveries: VecDeque<Delivery>,
    pub delivery_mode: DeliveryMode,
    /// Deliveries made: (endpoint, event id, HTTP status or 0 when it could not connect).
    pub delivered: Vec<(String, String, u16)>,
    /// The bank simulator linked accounts' payouts arrive in.
    pub bank: Option<SandboxState>,
    /// Connect OAuth: platforms, codes and the tokens they gave.
    pub oauth: super::oauth::OAuth,
}

impl Inner {
    /// The next id with `prefix`: 24 base-62 characters, a function of the seed and the count.
    pub fn id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut text = String::with_capacity(prefix.len() + 25);
        text.push_str(prefix);
        text.push('_');
        for _ in 0..4 {
            let mut bits = self.next();
            for _ in 0..6 {
                text.push(char::from(ALPHABET[(bits % 62) as usize]));
                bits /= 62;
            }
        }
        text
    }

    /// The next 64 seeded random bits (splitmix64).
    pub fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The simulated time, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    pub fn account(&mut self, id: &str) -> Option<&mut Account> {
        self.accounts.get_mut(id)
    }

    /// Creates an account with a secret and a restricted key.
    pub fn create_account(&mut self, name: &str, country: &str, currency: &str, keys: (&str, &str)) -> String {
        let id = self.id("acct");
        let now = self.now();
        self.accounts.insert(
            id.clone(),
            Account {
                id: id.clone(),
                name: name.to_owned(),
                country: country.to_owned(),
                default_currency: currency.to_owned(),
                created: now,
                paid_out_through: now.div_euclid(86_400),
                ..Account::default()
            },
        );
        for (text, restricted) in [(keys.0, false), (keys.1, true)] {
            let key = Key { account: id.clone(), restricted, without: Vec::new(), revoked: false, expired: false };
            self.keys.insert(text.to_owned(), key);
        }
        id
    }

    /// Records an event for a change of `object` on `account`, and queues its deliveries to
    /// the account's enabled endpoints that subscribe to it.
    pub fn record_event(
        &mut self,
        account: &str,
        event_type: &str,
        object: &Value,
        previous: Option<Value>,
        request: (Option<&str>, Option<&str>),
    ) {
        let id = self.id("evt");
        let created = self.now();
        let Some(acct) = self.accounts.get(account) else { return };
        let endpoints: Vec<(String, String, String)> = acct
            .newest_first("webhook_endpoint")
            .filter(|e| e["status"] == "enabled" && subscribes(&e["enabled_events"], event_type))
            .map(|e| {
                let id = e["id"].as_str().unwrap_or_default().to_owned();
                let secret = acct.secrets.get(&id).cloned().unwrap_or_default();
                (id, e["url"].as_str().unwrap_or_default().to_owned(), secret)
            })
            .collect();
        let mut data = Map::new();
        data.insert("object".into(), object.clone());
        if let Some(previous) = previous {
            data.insert("previous_attributes".into(), previous);
        }
        let event = json!({
            "id": id, "object": "event", "api_version": API_VERSION, "created": created,
            "data": data, "livemode": false, "pending_webhooks": endpoints.len(),
            "request": {"id": request.0, "idempotency_key": request.1}, "type": event_type,
        });
        let real_now = chrono::Utc::now().timestamp();
        for (endpoint, url, secret) in endpoints {
            self.deliveries.push_back(Delivery {
                endpoint,
                url,
                secret,
                event: event.clone(),
                attempt: 0,
                not_before: real_now,
            });
        }
        if let Some(acct) = self.accounts.get_mut(account) {
            acct.insert("event", event);
        }
    }
}

fn subscribes(enabled: &Value, event_type: &str) -> bool {
    enabled.as_array().is_some_and(|types| types.iter().any(|t| t == "*" || t == event_type))
}

/// A running simulator's state: shared by its routes, its control API and its delivery worker.
#[derive(Clone)]
pub struct StripeSim {
    inner: Arc<Mutex<Inner>>,
    /// Wakes the delivery worker when events are queued.
    pub(crate) wake: Arc<Notify>,
    pub(crate) http: reqwest::Client,
}

impl StripeSim {
    /// A simulator with one account, reachable with [`DEFAULT_SECRET_KEY`] and
    /// [`DEFAULT_RESTRICTED_KEY`], which is also the Connect platform
    /// [`super::oauth::DEFAULT_CLIENT_ID`].
    pub fn new(seed: u64, clock: Clock) -> Self {
        let mut inner = Inner {
            rng: seed ^ 0x5712_1be0,
            clock,
            keys: HashMap::new(),
            accounts: HashMap::new(),
            faults: Vec::new(),
            deliveries: VecDeque::new(),
            delivery_mode: DeliveryMode::default(),
            delivered: Vec::new(),
            bank: None,
            oauth: super::oauth::OAuth::default(),
        };
        let platform =
            inner.create_account("Payymo Sandbox Ltd", "GB", "gbp", (DEFAULT_SECRET_KEY, DEFAULT_RESTRICTED_KEY));
        // The default account is also a Connect platform, so OAuth works out of the box.
        inner.oauth.platforms.insert(super::oauth::DEFAULT_CLIENT_ID.to_owned(), platform);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { inner: Arc::new(Mutex::new(inner)), wake: Arc::new(Notify::new()), http }
    }

    /// Lets accounts be linked to bank accounts of `bank`, where their paid payouts then arrive
    /// as credits (`POST /_stripe/accounts/{id}/bank`).
    pub fn with_bank(self, bank: SandboxState) -> Self {
        self.lock().bank = Some(bank);
        self
    }

    /// Links `account`'s payouts to the bank simulator's account `bank_account`.
    pub fn link_bank(&self, account: &str, bank_account: &str) -> Result<(), String> {
        let mut inner = self.lock();
        if inner.bank.is_none() {
            return Err("this simulator runs without a bank simulator".into());
        }
        let acct = inner.account(account).ok_or_else(|| format!("no such account {account}"))?;
        acct.bank_account = Some(bank_account.to_owned());
        Ok(())
    }

    /// The default account's id.
    pub fn default_account(&self) -> String {
        self.account_of(DEFAULT_SECRET_KEY).unwrap_or_default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account a key belongs to.
    pub fn account_of(&self, key: &str) -> Option<String> {
        self.lock().keys.get(key).map(|k| k.account.clone())
    }
}
