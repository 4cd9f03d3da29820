//! The bank's per-account daily budget of successful calls (often 4 per endpoint), tracked so
//! syncs never spend calls the bank would refuse. Days are UTC days, as the provider counts them.

use chrono::{Days, Utc};
use sqlx::PgConnection;

use super::model::SyncBudget;
use crate::{domain::ids::TenantId, providers::headers::RateLimitInfo};

/// The budget assumed until the provider reports its own.
pub const DEFAULT_DAY_LIMIT: i32 = 4;

/// A budgeted account endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Details,
    Balances,
    Transactions,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Details => "details",
            Self::Balances => "balances",
            Self::Transactions => "transactions",
        }
    }
}

/// Counts one successful call, taking the provider's own figures when it sent them.
pub async fn record_use(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account_id: &str,
    endpoint: Endpoint,
    limits: &RateLimitInfo,
) -> Result<(), sqlx::Error> {
    let day_limit = limits.account_limit.map_or(DEFAULT_DAY_LIMIT, |l| l.min(i32::MAX as u32) as i32);
    let remaining = limits.account_remaining.map(|r| r.min(i32::MAX as u32) as i32);
    sqlx::query(
        "insert into provider_call_budgets (tenant_id, account_id, endpoint, day, used, day_limit, remaining)
         values ($1, $2, $3, (now() at time zone 'utc')::date, 1, $4, $5)
         on conflict (tenant_id, account_id, endpoint, day) do update set
             used = provider_call_budgets.used + 1, day_limit = excluded.day_limit,
             remaining = excluded.remaining",
    )
    .bind(tenant.as_str())
    .bind(account_id)
    .bind(endpoint.as_str())
    .bind(day_limit)
    .bind(remaining)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks today's budget for an endpoint as spent (the bank refused a call with its daily limit).
pub async fn record_spent(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account_id: &str,
    endpoint: Endpoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into provider_call_budgets (tenant_id, account_id, endpoint, day, used, day_limit, remaining)
         values ($1, $2, $3, (now() at time zone 'utc')::date, $4, $4, 0)
         on conflict (tenant_id, account_id, endpoint, day) do update set remaining = 0,
             used = greatest(provider_call_budgets.used, provider_call_budgets.day_limit)",
    )
    .bind(tenant.as_str())
    .bind(account_id)
    .bind(endpoint.as_str())
    .bind(DEFAULT_DAY_LIMIT)
    .execute(conn)
    .await?;
    Ok(())
}

/// Calls left today for one account and endpoint.
pub async fn remaining(
    conn: &mut PgConnection,
    tenant: &TenantId,
    account_id: &str,
    endpoint: Endpoint,
) -> Result<i32, sqlx::Error> {
    let row: Option<Used> = sqlx::query_as(
        "select used, day_limit, remaining from provider_call_budgets
         where tenant_id = $1 and account_id = $2 and endpoint = $3 and day = (now() at time zone 'utc')::date",
    )
    .bind(tenant.as_str())
    .bind(account_id)
    .bind(endpoint.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(DEFAULT_DAY_LIMIT, |row| row.calls_left()))
}

/// One day's budget of one account and endpoint, as stored.
#[derive(sqlx::FromRow)]
struct Used {
    used: i32,
    day_limit: i32,
    /// What the provider last reported left, if it did.
    remaining: Option<i32>,
}

impl Used {
    /// Calls left: our own count, or the provider's when it reported fewer.
    fn calls_left(&self) -> i32 {
        calls_left(self.used, self.day_limit, self.remaining)
    }
}

fn calls_left(used: i32, limit: i32, reported: Option<i32>) -> i32 {
    reported.unwrap_or(limit - used).min(limit - used).max(0)
}

/// The tightest budget across `accounts`, per endpoint.
pub async fn summary(
    conn: &mut PgConnection,
    tenant: &TenantId,
    accounts: &[String],
) -> Result<SyncBudget, sqlx::Error> {
    let resets_at = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or_else(Utc::now, |midnight| midnight.and_utc());
    #[derive(sqlx::FromRow)]
    struct Row {
        endpoint: String,
        #[sqlx(flatten)]
        used: Used,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select endpoint, used, day_limit, remaining from provider_call_budgets
         where tenant_id = $1 and account_id = any($2) and day = (now() at time zone 'utc')::date",
    )
    .bind(tenant.as_str())
    .bind(accounts)
    .fetch_all(conn)
    .await?;
    let mut day_limit = DEFAULT_DAY_LIMIT;
    let mut left: [Option<i32>; 3] = [None; 3];
    for row in rows {
        day_limit = row.used.day_limit;
        let now_left = row.used.calls_left();
        let slot = &mut left[match row.endpoint.as_str() {
            "transactions" => 0,
            "balances" => 1,
            _ => 2,
        }];
        *slot = Some(slot.map_or(now_left, |l| l.min(now_left)));
    }
    let budget = SyncBudget {
        day_limit,
        transactions_remaining: left[0].unwrap_or(day_limit),
        balances_remaining: left[1].unwrap_or(day_limit),
        details_remaining: left[2].unwrap_or(day_limit),
        resets_at,
    };
    Ok(budget)
}
