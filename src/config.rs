//! Configuration: one [`Config`], read from the environment (and an optional `.env`), validated at
//! start-up.
//!
//! Every variable the service reads is listed once in [`VARIABLES`]; that list is what
//! `.env.example`, the Docker files and the tests are checked against, so a variable cannot be
//! added in one place and forgotten in another.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

/// One environment variable the service understands.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// The value used when the variable is unset; empty when unset means "off" or "none".
    pub default: &'static str,
    /// One line for `.env.example` and the README.
    pub help: &'static str,
}

/// Every variable the service reads, in the order `.env.example` lists them.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "DATABASE_URL",
        default: "",
        help: "Postgres connection URL. Unset: an embedded private cluster under PAYYMO_DATA_DIR is started from the machine's PostgreSQL binaries.",
    },
    Variable {
        name: "DATABASE_READ_URL",
        default: "",
        help: "Optional Postgres URL of a streaming replica. Set: list, get, stats and export endpoints read from it while it is within PAYYMO_REPLICA_MAX_LAG; everything else uses DATABASE_URL.",
    },
    Variable {
        name: "PAYYMO_REPLICA_MAX_LAG",
        default: "500ms",
        help: "How far the replica (DATABASE_READ_URL) may be behind the primary before its reads go back to the primary (at most 1m).",
    },
    Variable {
        name: "REDIS_URL",
        default: "",
        help: "Optional Redis URL (redis:// or rediss://). Set: rate limits are counted in Redis, so all instances share one limit. Unset: each instance counts in memory.",
    },
    Variable {
        name: "PAYYMO_LISTEN",
        default: "127.0.0.1:8080",
        help: "Address the HTTP server binds (host:port). Use 0.0.0.0:8080 in containers.",
    },
    Variable {
        name: "PAYYMO_DATA_DIR",
        default: ".payymo",
        help: "Directory for local state: the embedded Postgres cluster lives in <dir>/postgres.",
    },
    Variable {
        name: "PAYYMO_MIGRATE_ON_START",
        default: "true",
        help: "Apply pending migrations when `payymo serve` starts (true/false). `serve --no-migrate` also turns it off.",
    },
    Variable {
        name: "PAYYMO_DB_MAX_CONNECTIONS",
        default: "10",
        help: "Pool size per instance. Keep (replicas x this) below Postgres's max_connections.",
    },
    Variable {
        name: "PAYYMO_DB_ACQUIRE_TIMEOUT",
        default: "3s",
        help: "How long a request waits for a database connection before failing fast with 503.",
    },
    Variable {
        name: "PAYYMO_REQUEST_TIMEOUT",
        default: "30s",
        help: "Longest time a request may take before it is answered 503 request_timeout.",
    },
    Variable {
        name: "PAYYMO_BODY_LIMIT",
        default: "1048576",
        help: "Largest accepted request body, in bytes (default 1 MiB). Larger bodies get 413.",
    },
    Variable {
        name: "PAYYMO_CORS_ORIGINS",
        default: "",
        help: "Comma-separated origins allowed by CORS (e.g. https://portal.example.com). Empty: CORS off.",
    },
    Variable {
        name: "PAYYMO_SHUTDOWN_GRACE",
        default: "30s",
        help: "On SIGTERM/SIGINT, how long in-flight requests may run before the server exits anyway.",
    },
    Variable {
        name: "PAYYMO_ADMIN_TOKEN",
        default: "",
        help: "Bearer token for the platform admin API under /admin/v1 (at least 32 characters). Unset: the admin API is off (404).",
    },
    Variable {
        name: "PAYYMO_JWT_SECRET",
        default: "",
        help: "HMAC key (at least 32 characters) for access tokens. Unset: a key is generated once and kept in the database, shared by all instances.",
    },
    Variable {
        name: "PAYYMO_ACCESS_TOKEN_TTL",
        default: "15m",
        help: "Lifetime of OAuth2 and user access tokens (JWT).",
    },
    Variable {
        name: "PAYYMO_REFRESH_TOKEN_TTL",
        default: "30d",
        help: "Lifetime of a user session's refresh token; each refresh rotates it.",
    },
    Variable {
        name: "PAYYMO_RATE_LIMITS",
        default: "free=60/1m,standard=600/1m,premium=6000/1m",
        help: "Requests per credential allowed by each plan, as plan=count/period (bursts up to count).",
    },
    Variable {
        name: "PAYYMO_CREDENTIAL_CACHE_TTL",
        default: "5s",
        help: "How long an instance may reuse a verified API key or OAuth client; also the longest a revoked credential can still work on another instance.",
    },
    Variable {
        name: "PAYYMO_TRUSTED_PROXIES",
        default: "",
        help: "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed for the client IP (IP allow-lists, audit log). Empty: the peer address is the client.",
    },
    Variable {
        name: "PAYYMO_ENCRYPTION_KEYS",
        default: "",
        help: "Key ring for secrets stored encrypted (provider credentials and tokens): comma-separated id:base64 of 32 random bytes (e.g. k2:...,k1:...); the first seals new values, all open old ones. Unset: a key generated once into the database (development only).",
    },
    Variable {
        name: "PAYYMO_PUBLIC_URL",
        default: "",
        help: "Base URL at which people's browsers reach this API, for the bank consent callback (e.g. https://api.example.com). Unset: http://<PAYYMO_LISTEN>.",
    },
    Variable {
        name: "GOCARDLESS_URL",
        default: "https://bankaccountdata.gocardless.com/api/v2",
        help: "GoCardless Bank Account Data API base URL, used for live-mode tenants.",
    },
    Variable {
        name: "GOCARDLESS_SECRET_ID",
        default: "",
        help: "The deployment's GoCardless secret_id (a tenant may set its own through the API). Test-mode tenants always use the sandbox.",
    },
    Variable { name: "GOCARDLESS_SECRET_KEY", default: "", help: "The deployment's GoCardless secret_key." },
    Variable {
        name: "PAYYMO_SANDBOX_URL",
        default: "",
        help: "GoCardless base URL for test-mode tenants, e.g. a `payymo sandbox` at http://127.0.0.1:8081/api/v2 shared by all instances. Unset: each `serve` starts the simulator in-process on a free loopback port.",
    },
    Variable {
        name: "STRIPE_URL",
        default: "https://api.stripe.com",
        help: "Stripe API base URL, used for live-mode tenants.",
    },
    Variable {
        name: "PAYYMO_STRIPE_SANDBOX_URL",
        default: "",
        help: "Stripe base URL for test-mode tenants, e.g. a `payymo sandbox` at http://127.0.0.1:12111 shared by all instances. Unset: each `serve` starts the Stripe simulator in-process on a free loopback port.",
    },
    Variable {
        name: "STRIPE_CONNECT_URL",
        default: "https://connect.stripe.com",
        help: "Where Stripe serves Connect OAuth (/oauth/authorize, /oauth/token), for live-mode tenants. Test-mode tenants use the Stripe sandbox's.",
    },
    Variable {
        name: "STRIPE_CONNECT_CLIENT_ID",
        default: "",
        help: "The platform's Connect client id (ca_...), for live tenants connecting with Stripe Connect OAuth. Set with STRIPE_PLATFORM_SECRET_KEY; unset: live tenants connect with a key only. Test-mode tenants use the sandbox's platform.",
    },
    Variable {
        name: "STRIPE_PLATFORM_SECRET_KEY",
        default: "",
        help: "The platform's live secret key (sk_live_...), which exchanges Connect OAuth codes and deauthorizes accounts. Set with STRIPE_CONNECT_CLIENT_ID.",
    },
    Variable {
        name: "PAYYMO_PROVIDER_COOLDOWN",
        default: "30s",
        help: "After 5 consecutive failed calls to a provider, calls stop (failing fast) for this long, then one probe is let through.",
    },
    Variable {
        name: "PAYYMO_WORKERS",
        default: "true",
        help: "Run background workers (bank syncs, scheduling) in this process (true/false). Any number of instances may run them.",
    },
    Variable {
        name: "PAYYMO_SYNC_INTERVAL",
        default: "6h",
        help: "How often each linked bank connection is synced. Banks may allow only 4 calls a day per account and endpoint.",
    },
    Variable {
        name: "PAYYMO_BANK_SCHEDULE_PERIOD",
        default: "60s",
        help: "How often the fleet looks for bank accounts due a sync (once per period across all instances): a sync starts at most about this long after PAYYMO_SYNC_INTERVAL has passed. At least 1s.",
    },
    Variable {
        name: "PAYYMO_WEBHOOK_ALLOWED_NETWORKS",
        default: "",
        help: "Comma-separated CIDRs webhook deliveries may reach although they are internal (loopback, private, ...), e.g. 127.0.0.1/32 for local development. Empty: every internal address is refused.",
    },
    Variable {
        name: "PAYYMO_WEBHOOK_TIMEOUT",
        default: "15s",
        help: "How long a webhook receiver has to answer one delivery attempt.",
    },
    Variable {
        name: "PAYYMO_WEBHOOK_RETRY_SCHEDULE",
        default: "5s,5m,30m,2h,5h,10h,10h",
        help: "Delays before each webhook retry (each jittered by 10%); the first attempt is immediate, so attempts = steps + 1.",
    },
    Variable {
        name: "PAYYMO_WEBHOOK_DISABLE_AFTER",
        default: "5days",
        help: "A webhook endpoint whose attempts all fail for this long is disabled, and webhook_endpoint.disabled announced.",
    },
    Variable {
        name: "PAYYMO_WEBHOOK_CONCURRENCY",
        default: "8",
        help: "Attempts one instance sends at once to any one webhook endpoint.",
    },
    Variable {
        name: "PAYYMO_EVENT_RETENTION",
        default: "30days",
        help: "How long events, webhook deliveries and their attempts are kept before a periodic job deletes them.",
    },
    Variable {
        name: "PAYYMO_LOG",
        default: "info,sqlx::postgres::notice=warn",
        help: "Log filter in tracing's EnvFilter syntax, e.g. info or payymo=debug,sqlx=warn.",
    },
    Variable {
        name: "PAYYMO_LOG_FORMAT",
        default: "text",
        help: "Log format: text (for people) or json (for log pipelines).",
    },
];

/// Validated configuration for one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: use the embedded cluster in `data_dir`.
    pub database_url: Option<SecretString>,
    /// A streaming replica for reads that may lag (`DATABASE_READ_URL`); `None`: none.
    pub database_read_url: Option<SecretString>,
    /// How far behind the replica may be before its reads go back to the primary.
    pub replica_max_lag: Duration,
    pub redis_url: Option<SecretString>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub migrate_on_start: bool,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub cors_origins: Vec<String>,
    pub shutdown_grace: Duration,
    pub admin_token: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub rate_limits: RateLimits,
    pub credential_cache_ttl: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub encryption_keys: Option<SecretString>,
    /// Where browsers reach this API, without a trailing slash; `None`: the bound address.
    pub public_url: Option<String>,
    pub gocardless_url: String,
    pub gocardless_credentials: Option<(SecretString, SecretString)>,
    pub sandbox_url: Option<String>,
    /// Stripe's API base for live tenants (`STRIPE_URL`, default `https://api.stripe.com`).
    pub stripe_url: String,
    /// Stripe's API base for test-mode tenants (`PAYYMO_STRIPE_SANDBOX_URL`); `None`: the
    /// simulator, started in process.
    pub stripe_sandbox_url: Option<String>,
    /// Where Stripe serves Connect OAuth for live tenants (`STRIPE_CONNECT_URL`).
    pub stripe_connect_url: String,
    /// The live Connect platform (`STRIPE_CONNECT_CLIENT_ID`, `STRIPE_PLATFORM_SECRET_KEY`);
    /// `None`: live tenants connect with a key only.
    pub stripe_platform: Option<StripePlatform>,
    pub provider_cooldown: Duration,
    pub workers: bool,
    pub sync_interval: Duration,
    /// How often bank accounts due a sync are looked for, fleet-wide (`PAYYMO_BANK_SCHEDULE_PERIOD`).
    pub bank_schedule_period: Duration,
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
    pub webhook_timeout: Duration,
    pub webhook_retry_schedule: Vec<Duration>,
    pub webhook_disable_after: Duration,
    pub webhook_concurrency: usize,
    pub event_retention: Duration,
    pub log_filter: String,
    pub log_format: LogFormat,
}

/// A Stripe Connect platform: its client id and the secret key that acts for it.
#[derive(Debug, Clone)]
pub struct StripePlatform {
    pub client_id: String,
    pub secret_key: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Requests allowed per credential, by plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub free: crate::ratelimit::Quota,
    pub standard: crate::ratelimit::Quota,
    pub premium: crate::ratelimit::Quota,
}

/// A variable with a value the service cannot use. The message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory if there is
    /// one (variables already set win over the file).
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigError { name: ".env", problem: error.to_string() });
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a config from any source of variables; unset and empty both mean "use the default".
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        Ok(Self {
            database_url: env.secret("DATABASE_URL", &["postgres://", "postgresql://"])?,
            database_read_url: env.secret("DATABASE_READ_URL", &["postgres://", "postgresql://"])?,
            replica_max_lag: env.bounded_duration("PAYYMO_REPLICA_MAX_LAG", Duration::from_secs(60))?,
            redis_url: env.secret("REDIS_URL", &["redis://", "rediss://"])?,
            listen: env.parse("PAYYMO_LISTEN", "an address like 127.0.0.1:8080")?,
            data_dir: PathBuf::from(env.value("PAYYMO_DATA_DIR")),
            migrate_on_start: env.boolean("PAYYMO_MIGRATE_ON_START")?,
            db_max_connections: env.bounded("PAYYMO_DB_MAX_CONNECTIONS", 1, 1_000)?,
            db_acquire_timeout: env.duration("PAYYMO_DB_ACQUIRE_TIMEOUT")?,
            request_timeout: env.duration("PAYYMO_REQUEST_TIMEOUT")?,
            body_limit: env.bounded("PAYYMO_BODY_LIMIT", 1_024, 1 << 30)?,
            cors_origins: env.origins("PAYYMO_CORS_ORIGINS")?,
            shutdown_grace: env.duration("PAYYMO_SHUTDOWN_GRACE")?,
            admin_token: env.long_secret("PAYYMO_ADMIN_TOKEN")?,
            jwt_secret: env.long_secret("PAYYMO_JWT_SECRET")?,
            access_token_ttl: env.duration("PAYYMO_ACCESS_TOKEN_TTL")?,
            refresh_token_ttl: env.duration("PAYYMO_REFRESH_TOKEN_TTL")?,
            rate_limits: env.rate_limits("PAYYMO_RATE_LIMITS")?,
            credential_cache_ttl: env.duration("PAYYMO_CREDENTIAL_CACHE_TTL")?,
            trusted_proxies: env.networks("PAYYMO_TRUSTED_PROXIES")?,
            encryption_keys: env.encryption_keys("PAYYMO_ENCRYPTION_KEYS")?,
            public_url: env.url("PAYYMO_PUBLIC_URL")?,
            gocardless_url: env.url("GOCARDLESS_URL")?.unwrap_or_default(),
            gocardless_credentials: env.pair("GOCARDLESS_SECRET_ID", "GOCARDLESS_SECRET_KEY")?,
            sandbox_url: env.url("PAYYMO_SANDBOX_URL")?,
            stripe_url: env.url("STRIPE_URL")?.unwrap_or_default(),
            stripe_sandbox_url: env.url("PAYYMO_STRIPE_SANDBOX_URL")?,
            stripe_connect_url: env.url("STRIPE_CONNECT_URL")?.unwrap_or_default(),
            stripe_platform: env.stripe_platform("STRIPE_CONNECT_CLIENT_ID", "STRIPE_PLATFORM_SECRET_KEY")?,
            provider_cooldown: env.duration("PAYYMO_PROVIDER_COOLDOWN")?,
            workers: env.boolean("PAYYMO_WORKERS")?,
            sync_interval: env.duration("PAYYMO_SYNC_INTERVAL")?,
            bank_schedule_period: env.duration_at_least("PAYYMO_BANK_SCHEDULE_PERIOD", Duration::from_secs(1))?,
            webhook_allowed_networks: env.networks("PAYYMO_WEBHOOK_ALLOWED_NETWORKS")?,
            webhook_timeout: env.duration("PAYYMO_WEBHOOK_TIMEOUT")?,
            webhook_retry_schedule: env.durations("PAYYMO_WEBHOOK_RETRY_SCHEDULE")?,
            webhook_disable_after: env.duration("PAYYMO_WEBHOOK_DISABLE_AFTER")?,
            webhook_concurrency: env.bounded("PAYYMO_WEBHOOK_CONCURRENCY", 1, 256)?,
            event_retention: env.duration("PAYYMO_EVENT_RETENTION")?,
            log_filter: env.value("PAYYMO_LOG"),
            log_format: match env.value("PAYYMO_LOG_FORMAT").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(env.invalid("PAYYMO_LOG_FORMAT", other, "text or json")),
            },
        })
    }

    /// The defaults, as if nothing were set.
    pub fn defaults() -> Self {
        // The defaults are constants checked by `defaults_are_valid`; failing here is a bug.
        #[allow(clippy::expect_used)]
        Self::from_lookup(|_| None).expect("the built-in defaults are valid")
    }

    /// The variable names the service reads.
    pub fn variable_names() -> impl Iterator<Item = &'static str> {
        VARIABLES.iter().map(|v| v.name)
    }

    /// The text of `.env.example`, generated from [`VARIABLES`].
    pub fn env_example() -> String {
        let mut out = String::from(
            "# Payymo core configuration. Every variable is optional: the defaults below run the\n\
             # service and the test suite with nothing set. Copy to .env to override locally.\n",
        );
        for v in VARIABLES {
            out.push_str(&format!("\n# {}\n", v.help));
            if v.default.is_empty() {
                out.push_str(&format!("# {}=\n", v.name));
            } else {
                out.push_str(&format!("{}={}\n", v.name, v.default));
            }
        }
        out
    }
}

/// Reads and validates variables, always naming the variable in its error.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn value(&self, name: &'static str) -> String {
        match (self.lookup)(name) {
            Some(value) if !value.trim().is_empty() => value.trim().to_owned(),
            _ => default_of(name).to_owned(),
        }
    }

    fn invalid(&self, name: &'static str, value: &str, expected: &str) -> ConfigError {
        ConfigError { name, problem: format!("invalid value {value:?}: expected {expected}") }
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str, expected: &str) -> Result<T, ConfigError> {
        let value = self.value(name);
        value.parse().map_err(|_| self.invalid(name, &value, expected))
    }

    fn bounded<T>(&self, name: &'static str, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let expected = format!("a whole number from {min} to {max}");
        let parsed: T = self.parse(name, &expected)?;
        if parsed < min || parsed > max {
            return Err(self.invalid(name, &parsed.to_string(), &expected));
        }
        Ok(parsed)
    }

    /// A positive duration of at most `max`.
    fn bounded_duration(&self, name: &'static str, max: Duration) -> Result<Duration, ConfigError> {
        let duration = self.duration(name)?;
        if duration > max {
            let expected = format!("a positive duration of at most {}", humantime::format_duration(max));
            return Err(self.invalid(name, &self.value(name), &expected));
        }
        Ok(duration)
    }

    fn boolean(&self, name: &'static str) -> Result<bool, ConfigError> {
        let value = self.value(name);
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.invalid(name, &value, "true or false")),
        }
    }

    fn duration(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let value = self.value(name);
        match humantime::parse_duration(&value) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid(name, &value, "a positive duration such as 500ms, 3s or 2m")),
        }
    }

    /// A duration no shorter than `min`.
    fn duration_at_least(&self, name: &'static str, min: Duration) -> Result<Duration, ConfigError> {
        let duration = self.duration(name)?;
        if duration < min {
            let expected = format!("a duration of at least {}", humantime::format_duration(min));
            return Err(self.invalid(name, &self.value(name), &expected));
        }
        Ok(duration)
    }

    /// A comma-separated list of positive durations (at most 20).
    fn durations(&self, name: &'static str) -> Result<Vec<Duration>, ConfigError> {
        let value = self.value(name);
        let expected = "comma-separated positive durations such as 5s,5m,30m (at most 20)";
        let steps: Vec<Duration> = value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| humantime::parse_duration(p).ok().filter(|d| !d.is_zero()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.invalid(name, &value, expected))?;
        if steps.len() > 20 {
            return Err(self.invalid(name, &value, expected));
        }
        Ok(steps)
    }

    /// A secret URL: checked for its scheme, never echoed back in an error.
    fn secret(&self, name: &'static str, schemes: &[&str]) -> Result<Option<SecretString>, ConfigError> {
        let value = self.value(name);
        if value.is_empty() {
            return Ok(None);
        }
        if !schemes.iter().any(|s| value.starts_with(s)) {
            return Err(ConfigError {
                name,
                problem: format!("expected a URL starting with {}", schemes.join(" or ")),
            });
        }
        Ok(Some(SecretString::from(value)))
    }

    /// An optional secret that must be long enough to be one.
    fn long_secret(&self, name: &'static str) -> Result<Option<SecretString>, ConfigError> {
        let value = self.value(name);
        match value.len() {
            0 => Ok(None),
            n if n < 32 => Err(ConfigError {
                name,
                problem: format!("too short ({n} characters): use at least 32 random characters"),
            }),
            _ => Ok(Some(SecretString::from(value))),
        }
    }

    /// A key ring, checked here so a bad one stops start-up with the variable's name.
    fn encryption_keys(&self, name: &'static str) -> Result<Option<SecretString>, ConfigError> {
        let value = self.value(name);
        if value.is_empty() {
            return Ok(None);
        }
        crate::crypto::KeyRing::parse(&value).map_err(|e| ConfigError { name, problem: e.to_string() })?;
        Ok(Some(SecretString::from(value)))
    }

    /// An http(s) URL without its trailing slash, or `None` when unset.
    fn url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let value = self.value(name);
        if value.is_empty() {
            return Ok(None);
        }
        if !(value.starts_with("http://") || value.starts_with("https://")) || value.contains(char::is_whitespace) {
            return Err(self.invalid(name, &value, "an http:// or https:// URL"));
        }
        Ok(Some(value.trim_end_matches('/').to_owned()))
    }

    /// Two secrets that only make sense together.
    fn pair(
        &self,
        first: &'static str,
        second: &'static str,
    ) -> Result<Option<(SecretString, SecretString)>, ConfigError> {
        match (self.value(first), self.value(second)) {
            (a, b) if a.is_empty() && b.is_empty() => Ok(None),
            (a, b) if !a.is_empty() && !b.is_empty() => Ok(Some((SecretString::from(a), SecretString::from(b)))),
            (a, _) => Err(ConfigError {
                name: if a.is_empty() { first } else { second },
                problem: format!("{first} and {second} must be set together"),
            }),
        }
    }

    /// A live Connect platform: a `ca_…` client id and an `sk_live_…` key, set together.
    fn stripe_platform(&self, client: &'static str, key: &'static str) -> Result<Option<StripePlatform>, ConfigError> {
        let Some((client_id, secret_key)) = self.pair(client, key)? else { return Ok(None) };
        let client_id = secrecy::ExposeSecret::expose_secret(&client_id).to_owned();
        if !client_id.starts_with("ca_") || client_id.contains(char::is_whitespace) {
            return Err(self.invalid(client, &client_id, "a Connect client id (ca_...)"));
        }
        if !secrecy::ExposeSecret::expose_secret(&secret_key).starts_with("sk_live_") {
            return Err(ConfigError {
                name: key,
                problem: "expected the platform's live secret key (sk_live_...)".into(),
            });
        }
        Ok(Some(StripePlatform { client_id, secret_key }))
    }

    fn rate_limits(&self, name: &'static str) -> Result<RateLimits, ConfigError> {
        let value = self.value(name);
        let expected =
            "plan=count/period for free, standard and premium, e.g. free=60/1m,standard=600/1m,premium=6000/1m";
        let mut plans: [Option<crate::ratelimit::Quota>; 3] = [None; 3];
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = part.split_once('=').and_then(|(plan, rule)| {
                let (count, period) = rule.split_once('/')?;
                let limit: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
                let period = humantime::parse_duration(period.trim()).ok().filter(|d| !d.is_zero())?;
                let slot = ["free", "standard", "premium"].iter().position(|p| *p == plan.trim())?;
                Some((slot, crate::ratelimit::Quota { limit, period }))
            });
            let Some((slot, quota)) = parsed else { return Err(self.invalid(name, part, expected)) };
            plans[slot] = Some(quota);
        }
        match plans {
            [Some(free), Some(standard), Some(premium)] => Ok(RateLimits { free, standard, premium }),
            _ => Err(self.invalid(name, &value, expected)),
        }
    }

    fn networks(&self, name: &'static str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let value = self.value(name);
        value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| self.invalid(name, p, "comma-separated CIDRs such as 10.0.0.0/8"))
            })
            .collect()
    }

    fn origins(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let value = self.value(name);
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains(['?', '#'])
                && origin.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !valid {
                return Err(self.invalid(name, origin, "origins like https://portal.example.com, comma-separated"));
            }
            origins.push(origin.to_owned());
        }
        Ok(origins)
    }
}

fn default_of(name: &str) -> &'static str {
    VARIABLES.iter().find(|v| v.name == name).map_or("", |v| v.default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.database_url.is_none());
        assert_eq!(c.body_limit, 1 << 20);
        assert!(c.migrate_on_start);
        assert_eq!(c.db_acquire_timeout, Duration::from_secs(3));
    }

    #[test]
    fn the_bank_schedule_period_is_at_least_a_second() {
        assert_eq!(Config::defaults().bank_schedule_period, Duration::from_secs(60));
        let c = config(&[("PAYYMO_BANK_SCHEDULE_PERIOD", "1s")]).unwrap();
        assert_eq!(c.bank_schedule_period, Duration::from_secs(1));
        let err = config(&[("PAYYMO_BANK_SCHEDULE_PERIOD", "500ms")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PAYYMO_BANK_SCHEDULE_PERIOD: invalid value \"500ms\": expected a duration of at least 1s"
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = config(&[("PAYYMO_LISTEN", "nope")]).unwrap_err();
        assert_eq!(err.to_string(), "PAYYMO_LISTEN: invalid value \"nope\": expected an address like 127.0.0.1:8080");
        let err = config(&[("PAYYMO_REQUEST_TIMEOUT", "0s")]).unwrap_err();
        assert!(err.to_string().starts_with("PAYYMO_REQUEST_TIMEOUT: "), "{err}");
        let err = config(&[("PAYYMO_DB_MAX_CONNECTIONS", "0")]).unwrap_err();
        assert!(err.to_string().contains("from 1 to 1000"), "{err}");
        let err = config(&[("PAYYMO_MIGRATE_ON_START", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("true or false"), "{err}");
        let err = config(&[("PAYYMO_CORS_ORIGINS", "portal.example.com")]).unwrap_err();
        assert!(err.to_string().starts_with("PAYYMO_CORS_ORIGINS"), "{err}");
    }

    #[test]
    fn a_live_connect_platform_is_a_client_id_and_a_live_secret_key_set_together() {
        let key = "sk_live_51PlatformSecretKey0123456789";
        let c =
            config(&[("STRIPE_CONNECT_CLIENT_ID", "ca_32D88BD1qLklliziD7gYQvct"), ("STRIPE_PLATFORM_SECRET_KEY", key)])
                .unwrap();
        let platform = c.stripe_platform.clone().unwrap();
        assert_eq!(
            (platform.client_id.as_str(), platform.secret_key.expose_secret()),
            ("ca_32D88BD1qLklliziD7gYQvct", key)
        );
        assert!(!format!("{c:?}").contains(key));
        let err = config(&[("STRIPE_CONNECT_CLIENT_ID", "ca_x")]).unwrap_err();
        assert!(err.to_string().contains("must be set together"), "{err}");
        let err = config(&[("STRIPE_CONNECT_CLIENT_ID", "acct_1"), ("STRIPE_PLATFORM_SECRET_KEY", key)]).unwrap_err();
        assert!(err.to_string().starts_with("STRIPE_CONNECT_CLIENT_ID"), "{err}");
        let err = config(&[("STRIPE_CONNECT_CLIENT_ID", "ca_x"), ("STRIPE_PLATFORM_SECRET_KEY", "sk_test_hunter2")])
            .unwrap_err();
        assert!(err.to_string().starts_with("STRIPE_PLATFORM_SECRET_KEY") && !err.to_string().contains("hunter2"));
        assert_eq!(Config::defaults().stripe_connect_url, "https://connect.stripe.com");
    }

    #[test]
    fn secrets_are_never_printed() {
        let err = config(&[("DATABASE_URL", "mysql://user:hunter2@db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = config(&[("DATABASE_URL", "postgres://u:hunter2@db/payymo")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.database_url.unwrap().expose_secret(), "postgres://u:hunter2@db/payymo");
    }

    #[test]
    fn rate_limits_parse_per_plan() {
        let c = config(&[("PAYYMO_RATE_LIMITS", "free=10/1s, standard=20/1m,premium=30/1h")]).unwrap();
        assert_eq!(c.rate_limits.free, crate::ratelimit::Quota { limit: 10, period: Duration::from_secs(1) });
        assert_eq!(c.rate_limits.premium.period, Duration::from_secs(3600));
        assert!(config(&[("PAYYMO_RATE_LIMITS", "free=10/1s")]).is_err(), "every plan must be given");
        assert!(config(&[("PAYYMO_RATE_LIMITS", "free=0/1s,standard=1/1s,premium=1/1s")]).is_err());
    }

    #[test]
    fn secrets_must_be_long_enough() {
        let err = config(&[("PAYYMO_ADMIN_TOKEN", "short")]).unwrap_err();
        assert!(err.to_string().starts_with("PAYYMO_ADMIN_TOKEN: too short"), "{err}");
        assert!(!err.to_string().contains("short\""));
    }

    #[test]
    fn cors_origins_are_split_and_trimmed() {
        let c = config(&[("PAYYMO_CORS_ORIGINS", "https://a.example, http://localhost:3000 ")]).unwrap();
        assert_eq!(c.cors_origins, ["https://a.example", "http://localhost:3000"]);
    }

    #[test]
    fn env_example_lists_every_variable() {
        let example = Config::env_example();
        for name in Config::variable_names() {
            assert!(example.contains(&format!("{name}=")), "{name} missing");
        }
    }
}
