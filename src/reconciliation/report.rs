//! The end-of-day report (`GET /reconciliation/report`, docs/reconciliation.md): for one calendar
//! day and each of the tenant's accounts, the opening and closing balances (and where each came
//! from), the day's booked and pending money, whether the balances agree with it, how much of it
//! is reconciled, and the tenant's overdue invoices per currency.
//!
//! Everything is added up in SQL: one range scan of the day on the list-date index, grouped into
//! a few rows per account, and one over the open invoices; only the grouped rows come back.

mod balances;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::ReconciliationError;
use crate::{
    bank::model::Balance,
    domain::{
        ids::{BankAccountId, TenantId},
        states::{AccountKind, MatchStatus, TransactionStatus, states},
    },
};

/// The report of one day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "date": "2026-12-04",
    "time_zone": "Europe/London",
    "accounts": [{
        "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
        "account_name": "Main account",
        "kind": "bank_feed",
        "currency": "GBP",
        "opening_balance": {"amount": 1000000, "currency": "GBP", "source": "bank", "balance_type": "closingBooked",
            "reference_date": "2026-12-03", "detail": "opening as the bank reported it: closingBooked of 2026-12-03"},
        "closing_balance": {"amount": 1120450, "currency": "GBP", "source": "bank", "balance_type": "closingBooked",
            "reference_date": "2026-12-04", "detail": "closing as the bank reported it: closingBooked of 2026-12-04"},
        "booked": {"count": 3, "credits": {"count": 1, "amount": 125000}, "debits": {"count": 2, "amount": 4550}, "net": 120450},
        "pending": {"count": 1, "credits": {"count": 0, "amount": 0}, "debits": {"count": 1, "amount": 1999}, "net": -1999},
        "balance_check": {"status": "ok", "expected_closing": 1120450, "difference": 0,
            "detail": "opening balance + booked net = closing balance"},
        "by_match_status": {
            "matched": {"credits": {"count": 1, "amount": 125000}, "debits": {"count": 0, "amount": 0}},
            "suggested": {"credits": {"count": 0, "amount": 0}, "debits": {"count": 0, "amount": 0}},
            "unmatched": {"credits": {"count": 0, "amount": 0}, "debits": {"count": 1, "amount": 550}},
            "excluded": {"credits": {"count": 0, "amount": 0}, "debits": {"count": 1, "amount": 4000}}
        }
    }],
    "overdue_invoices": [{"currency": "GBP", "count": 2, "amount_due": 87500}]
}))]
pub struct EndOfDayReport {
    /// The day reported on, as asked (`YYYY-MM-DD`): a bank calendar day, never shifted.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// The tenant's time zone, which decides what "today" is (a later date is refused).
    pub time_zone: String,
    /// One entry per account, oldest account first (and per currency, for the rare account with
    /// transactions in more than one).
    pub accounts: Vec<EndOfDayAccount>,
    /// Open and partially paid invoices due before `date`, per currency, as they stand now.
    pub overdue_invoices: Vec<OverdueInvoiceTotals>,
}

/// One account's day, in one currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndOfDayAccount {
    pub account_id: String,
    pub account_name: Option<String>,
    pub kind: AccountKind,
    /// ISO 4217; every amount of this entry is in it. Null only for an account with no currency,
    /// no balances and nothing booked that day.
    pub currency: Option<String>,
    /// The balance at the start of the day.
    pub opening_balance: EndOfDayBalance,
    /// The balance at the end of the day.
    pub closing_balance: EndOfDayBalance,
    /// Transactions booked that day (by booking date). Their `net` is what moves the balance.
    pub booked: ReportFlows,
    /// Transactions still pending with that value date: shown, never in `booked` or the check.
    pub pending: ReportFlows,
    /// Whether `opening_balance + booked.net == closing_balance`.
    pub balance_check: EndOfDayBalanceCheck,
    /// The day's booked transactions by reconciliation status.
    pub by_match_status: ReportByMatchStatus,
}

states! {
    /// Where a balance came from.
    BalanceSource {
        /// Reported by the bank for this instant (`balance_type`, `reference_date`).
        Bank = "bank",
        /// Not reported; computed from the other end of the day and the day's booked net.
        Derived = "derived",
        /// Neither reported nor derivable: `amount` is null.
        Unavailable = "unavailable",
    }

    /// The outcome of comparing the balances with the day's booked net.
    BalanceCheckStatus {
        /// Both balances come from the bank and `opening + net == closing`.
        Ok = "ok",
        /// Both balances come from the bank and they disagree with the booked transactions.
        Mismatch = "mismatch",
        /// At least one balance is derived or unavailable: nothing independent to compare.
        Unavailable = "unavailable",
    }
}

/// A balance at the start or end of the day, in minor units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndOfDayBalance {
    /// Null when `source` is `unavailable`.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub source: BalanceSource,
    /// The bank's balance type (`closingBooked`, `openingBooked`) when `source` is `bank`.
    pub balance_type: Option<String>,
    /// The bank's reference date of that balance when `source` is `bank`.
    #[schema(value_type = Option<String>, format = Date)]
    pub reference_date: Option<NaiveDate>,
    /// How the balance was found or derived, or why it is unavailable, in a sentence.
    pub detail: String,
}

/// How many transactions and how much money, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportFlow {
    pub count: i64,
    /// Always ≥ 0: debits are given as a positive sum.
    pub amount: i64,
}

/// Money in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportFlows {
    pub count: i64,
    pub credits: ReportFlow,
    /// The sum of debits, as a positive number.
    pub debits: ReportFlow,
    /// `credits.amount − debits.amount`.
    pub net: i64,
}

/// Credits and debits of one match status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportSplit {
    pub credits: ReportFlow,
    pub debits: ReportFlow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportByMatchStatus {
    pub matched: ReportSplit,
    pub suggested: ReportSplit,
    pub unmatched: ReportSplit,
    pub excluded: ReportSplit,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndOfDayBalanceCheck {
    pub status: BalanceCheckStatus,
    /// `opening_balance + booked.net`, when compared.
    pub expected_closing: Option<i64>,
    /// `closing_balance − expected_closing`, when compared: positive when the bank holds more
    /// than the booked transactions explain.
    pub difference: Option<i64>,
    pub detail: String,
}

/// Overdue invoices in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, FromRow)]
pub struct OverdueInvoiceTotals {
    pub currency: String,
    pub count: i64,
    /// `amount_total − amount_paid`, summed, in minor units.
    pub amount_due: i64,
}

#[derive(FromRow)]
struct TenantDay {
    time_zone: String,
    today: NaiveDate,
}

#[derive(FromRow)]
struct Account {
    id: String,
    name: Option<String>,
    kind: AccountKind,
    currency: Option<String>,
    balances: sqlx::types::Json<Vec<Balance>>,
}

/// The day's transactions of one account, currency, status, match status and direction.
#[derive(FromRow)]
struct Group {
    account_id: String,
    currency: String,
    status: TransactionStatus,
    match_status: MatchStatus,
    debit: bool,
    count: i64,
    /// Signed: negative for debits.
    amount: i64,
}

/// The report of `date` for every account of `tenant`, or only `account`. A date after today
/// in the tenant's time zone is refused; an account the tenant does not have is `NotFound`.
pub async fn report(
    conn: &mut PgConnection,
    tenant: &TenantId,
    date: NaiveDate,
    account: Option<&BankAccountId>,
) -> Result<EndOfDayReport, ReconciliationError> {
    let day: TenantDay =
        sqlx::query_as("select time_zone, (now() at time zone time_zone)::date as today from tenants where id = $1")
            .bind(tenant.as_str())
            .fetch_one(&mut *conn)
            .await?;
    if date > day.today {
        return Err(ReconciliationError::invalid(
            "date",
            format!("is after today ({} in the tenant's time zone, {})", day.today, day.time_zone),
        ));
    }
    let account_id = account.map(BankAccountId::as_str);
    let accounts: Vec<Account> = sqlx::query_as(
        "select id, name, kind, currency, balances from bank_accounts
         where tenant_id = $1 and ($2::text is null or id = $2)
         order by created_at, id",
    )
    .bind(tenant.as_str())
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    if account.is_some() && accounts.is_empty() {
        return Err(ReconciliationError::NotFound("account"));
    }
    // `list_date` (the booking date, else the value date) is a plain stored column, so under
    // row-level security the day is an index condition on transactions_list_date_idx (or the
    // per-account index), not a filter along the tenant's whole history.
    let groups: Vec<Group> = sqlx::query_as(
        "select account_id, currency, status, match_status, amount < 0 as debit,
                count(*) as count, sum(amount)::int8 as amount
         from transactions
         where tenant_id = $1 and list_date = $2 and ($3::text is null or account_id = $3)
           and (status = 'pending' or (status = 'booked' and booking_date = $2))
         group by 1, 2, 3, 4, 5",
    )
    .bind(tenant.as_str())
    .bind(date)
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    let overdue_invoices: Vec<OverdueInvoiceTotals> = sqlx::query_as(
        "select currency, count(*) as count, sum(amount_total - amount_paid)::int8 as amount_due
         from invoices
         where tenant_id = $1 and status in ('open', 'partially_paid') and due_date < $2
         group by currency order by currency",
    )
    .bind(tenant.as_str())
    .bind(date)
    .fetch_all(&mut *conn)
    .await?;

    let accounts = assemble(accounts, groups, date)?;
    Ok(EndOfDayReport { date, time_zone: day.time_zone, accounts, overdue_invoices })
}

/// Folds the grouped rows into one entry per account and currency.
fn assemble(
    accounts: Vec<Account>,
    groups: Vec<Group>,
    date: NaiveDate,
) -> Result<Vec<EndOfDayAccount>, ReconciliationError> {
    #[derive(Default)]
    struct Sums {
        booked: ReportFlows,
        pending: ReportFlows,
        by_match_status: ReportByMatchStatus,
    }
    let mut sums: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for group in groups {
        let flow = ReportFlow { count: group.count, amount: group.amount.checked_abs().ok_or_else(overflow)? };
        let sums = sums.entry((group.account_id, group.currency)).or_default();
        match group.status {
            TransactionStatus::Booked => {
                add(&mut sums.booked, group.debit, flow)?;
                let split = match group.match_status {
                    MatchStatus::Matched => &mut sums.by_match_status.matched,
                    MatchStatus::Suggested => &mut sums.by_match_status.suggested,
                    MatchStatus::Unmatched => &mut sums.by_match_status.unmatched,
                    MatchStatus::Excluded => &mut sums.by_match_status.excluded,
                };
                let side = if group.debit { &mut split.debits } else { &mut split.credits };
                *side = plus(*side, flow)?;
            }
            TransactionStatus::Pending => add(&mut sums.pending, group.debit, flow)?,
            TransactionStatus::Cancelled => {}
        }
    }
    let mut days = Vec::with_capacity(accounts.len());
    for account in accounts {
        let mut currencies: Vec<Option<String>> =
            sums.keys().filter(|(id, _)| *id == account.id).map(|(_, currency)| Some(currency.clone())).collect();
        let own = account.currency.clone().or_else(|| account.balances.first().map(|b| b.currency.clone()));
        if currencies.is_empty() || own.as_ref().is_some_and(|own| !currencies.contains(&Some(own.clone()))) {
            currencies.push(own);
            currencies.sort();
        }
        for currency in currencies {
            let key = (account.id.clone(), currency.clone().unwrap_or_default());
            let day = sums.remove(&key).unwrap_or_default();
            let (opening_balance, closing_balance, balance_check) =
                balances::day_balances(&account.balances, date, currency.as_deref(), day.booked.net);
            days.push(EndOfDayAccount {
                account_id: account.id.clone(),
                account_name: account.name.clone(),
                kind: account.kind,
                currency,
                opening_balance,
                closing_balance,
                booked: day.booked,
                pending: day.pending,
                balance_check,
                by_match_status: day.by_match_status,
            });
        }
    }
    Ok(days)
}

fn overflow() -> ReconciliationError {
    ReconciliationError::Database(sqlx::Error::Protocol("a day's total does not fit in 64 bits".into()))
}

fn plus(a: ReportFlow, b: ReportFlow) -> Result<ReportFlow, ReconciliationError> {
    Ok(ReportFlow {
        count: a.count.checked_add(b.count).ok_or_else(overflow)?,
        amount: a.amount.checked_add(b.amount).ok_or_else(overflow)?,
    })
}

fn add(into: &mut ReportFlows, debit: bool, flow: ReportFlow) -> Result<(), ReconciliationError> {
    if debit {
        into.debits = plus(into.debits, flow)?;
    } else {
        into.credits = plus(into.credits, flow)?;
    }
    into.count = into.count.checked_add(flow.count).ok_or_else(overflow)?;
    into.net = into.credits.amount.checked_sub(into.debits.amount).ok_or_else(overflow)?;
    Ok(())
}
