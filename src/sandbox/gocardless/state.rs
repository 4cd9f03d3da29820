//! The simulator's in-memory state, its configuration and its injectable clock.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};

use super::{
    data::{Rng, mix},
    ledger::Ledger,
    limits::{CompanyLimits, CompanyUsage},
};

/// Seconds an access token lives.
pub(crate) const ACCESS_EXPIRES: i64 = 86_400;
/// Seconds a refresh token lives.
pub(crate) const REFRESH_EXPIRES: i64 = 2_592_000;

/// The simulator's notion of "now": a base (the system clock or a fixed instant) plus an offset
/// that the control API advances.
#[derive(Debug, Clone)]
pub struct Clock {
    fixed: Option<DateTime<Utc>>,
    offset: Duration,
}

impl Clock {
    /// Follows the system clock (plus any advance).
    pub fn system() -> Self {
        Self { fixed: None, offset: Duration::zero() }
    }

    /// Stands still at `at` until advanced.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self { fixed: Some(at), offset: Duration::zero() }
    }

    /// The current simulated instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.unwrap_or_else(Utc::now) + self.offset
    }

    /// Moves the clock forward (or back, for negative values) by `seconds`.
    pub fn advance(&mut self, seconds: i64) {
        self.offset += Duration::seconds(seconds);
    }
}

/// Settings of one simulator instance.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The accepted `secret_id`.
    pub secret_id: String,
    /// The accepted `secret_key`.
    pub secret_key: String,
    /// Successful calls allowed per account, per endpoint (details, balances, transactions), per day.
    pub daily_account_limit: u32,
    /// The company-wide per-minute (and, for new tokens, per-hour) limits.
    pub company_limits: CompanyLimits,
    /// Also emit the `X-RateLimit-*` spelling of the rate-limit headers, besides the documented
    /// `HTTP_X_RATELIMIT_*` one.
    pub x_ratelimit_headers: bool,
    /// Simulated seconds a newly linked account stays `PROCESSING` before it is `READY` (0: ready
    /// at once, as most clients expect).
    pub account_ready_after_seconds: i64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            secret_id: "sandbox-secret-id".to_owned(),
            secret_key: "sandbox-secret-key".to_owned(),
            daily_account_limit: 4,
            company_limits: CompanyLimits::default(),
            x_ratelimit_headers: false,
            account_ready_after_seconds: 0,
        }
    }
}

/// Shared, cloneable handle on one simulator's state.
#[derive(Debug, Clone)]
pub struct SandboxState {
    pub(crate) config: Arc<SandboxConfig>,
    inner: Arc<Mutex<Inner>>,
}

impl SandboxState {
    /// A simulator whose generated ids and data derive from `seed`, with the default configuration.
    pub fn new(seed: u64, clock: Clock) -> Self {
        Self::with_config(seed, clock, SandboxConfig::default())
    }

    /// A simulator with an explicit configuration.
    pub fn with_config(seed: u64, clock: Clock, config: SandboxConfig) -> Self {
        let inner = Inner {
            seed,
            clock,
            rng: Rng::new(mix(&[seed, 0x5eed])),
            tokens: HashMap::new(),
            agreements: Vec::new(),
            requisitions: Vec::new(),
            accounts: Vec::new(),
            usage: HashMap::new(),
            company_usage: CompanyUsage::new(),
            ledgers: HashMap::new(),
            fault: None,
        };
        Self { config: Arc::new(config), inner: Arc::new(Mutex::new(inner)) }
    }

    /// The current simulated instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().clock.now()
    }

    /// How many access and refresh tokens have been issued: `/token/new/` issues one of each,
    /// `/token/refresh/` one access token. Lets tests see how a client manages its tokens.
    pub fn tokens_issued(&self) -> (usize, usize) {
        let inner = self.lock();
        let refresh = inner.tokens.values().filter(|t| t.kind == TokenKind::Refresh).count();
        (inner.tokens.len() - refresh, refresh)
    }

    /// Locks the state and brings time-dependent statuses up to date.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire_due();
        inner
    }
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Access,
    Refresh,
}

/// An issued token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub expires_at: DateTime<Utc>,
}

/// An end-user agreement.
#[derive(Debug, Clone)]
pub(crate) struct Agreement {
    pub id: String,
    pub created: DateTime<Utc>,
    pub institution_id: String,
    pub max_historical_days: i64,
    pub access_valid_for_days: i64,
    pub access_scope: Vec<String>,
    pub accepted: Option<DateTime<Utc>>,
}

/// A requisition (a link between the end user's bank and us).
#[derive(Debug, Clone)]
pub(crate) struct Requisition {
    pub id: String,
    pub created: DateTime<Utc>,
    pub redirect: String,
    pub status: &'static str,
    pub institution_id: String,
    pub agreement: String,
    pub reference: String,
    pub accounts: Vec<String>,
    pub user_language: String,
    pub account_selection: bool,
    pub redirect_immediate: bool,
    pub deleted: bool,
}

/// A linked bank account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub id: String,
    pub key: u64,
    pub created: DateTime<Utc>,
    pub requisition: String,
    pub institution_id: String,
    pub owner_name: String,
    pub iban: String,
    pub currency: &'static str,
}

/// Per-account budgeted endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Details,
    Balances,
    Transactions,
}

/// Faults armed through the control API for the next real-API calls.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub status: Option<u16>,
    pub remaining: u32,
    pub retry_after_seconds: Option<u64>,
    pub latency_ms: u64,
    pub drop_connection: bool,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub seed: u64,
    pub clock: Clock,
    pub rng: Rng,
    pub tokens: HashMap<String, Token>,
    pub agreements: Vec<Agreement>,
    pub requisitions: Vec<Requisition>,
    pub accounts: Vec<Account>,
    pub usage: HashMap<(String, Endpoint, NaiveDate), u32>,
    pub company_usage: CompanyUsage,
    /// Transactions added through the control API, by account id.
    pub ledgers: HashMap<String, Ledger>,
    pub fault: Option<Fault>,
}

impl Inner {
    /// The current simulated instant.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A fresh UUID, derived from the seed and the number drawn so far.
    pub(crate) fn uuid(&mut self) -> String {
        let bytes = ((u128::from(self.rng.next()) << 64) | u128::from(self.rng.next())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// A fresh opaque token string.
    pub(crate) fn token_string(&mut self, prefix: &str) -> String {
        format!("{prefix}.{:016x}{:016x}{:016x}", self.rng.next(), self.rng.next(), self.rng.next())
    }

    /// Issues a token of `kind` valid for `seconds`.
    pub(crate) fn issue(&mut self, kind: TokenKind, seconds: i64) -> String {
        let token = self.token_string(if kind == TokenKind::Access { "sbx-access" } else { "sbx-refresh" });
        let expires_at = self.now() + Duration::seconds(seconds);
        self.tokens.insert(token.clone(), Token { kind, expires_at });
        token
    }

    /// Whether `token` is a live token of `kind`.
    pub(crate) fn token_valid(&self, token: &str, kind: TokenKind) -> bool {
        let now = self.now();
        self.tokens.get(token).is_some_and(|t| t.kind == kind && t.expires_at > now)
    }

    /// Moves linked requisitions whose agreement ran out to `EX`.
    fn expire_due(&mut self) {
        let now = self.now();
        for requisition in self.requisitions.iter_mut().filter(|r| r.status == "LN") {
            let due = self
                .agreements
                .iter()
                .find(|a| a.id == requisition.agreement)
                .and_then(|a| a.accepted.map(|at| at + Duration::days(a.access_valid_for_days)));
            if due.is_some_and(|due| now >= due) {
                requisition.status = "EX";
            }
        }
    }
}

/// Formats an instant the way the API does.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
