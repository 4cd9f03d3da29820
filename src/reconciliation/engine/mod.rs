//! The engine: looks at the credits that need it (`reconcile_pending`), in batches of
//! [`BATCH`], each batch one short transaction. For each credit it applies the tenant's rules,
//! gathers what might pay it ([`candidates`], a few set-wise queries per batch), scores and
//! decides ([`evaluate`]), then writes: certain matches through the same path as a person's
//! (`matches::create_many`), and ranked suggestions for the rest.
//!
//! Credits are claimed `for update skip locked`, so two instances (or a run and the incremental
//! job) never evaluate the same credit at once and a person's match in progress is never waited
//! for; the invoices and payouts an automatic match takes are locked the same way, and a
//! proposal whose rows another writer holds becomes a suggestion instead. Nothing here waits
//! on a lock a request holds: the API is never locked out.

pub mod candidates;
pub mod evaluate;
mod persist;
pub mod pool;
mod proposal;

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

use self::{
    candidates::{Credit, Customers, Payers},
    evaluate::{Reading, Verdict},
    pool::Pool,
};
use super::{ReconciliationError, rules, scoring::Tuning, settings, text};
use crate::{db::tenant::begin_tenant, domain::ids::TenantId};

/// Credits evaluated per transaction.
pub const BATCH: i64 = 1000;

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub examined: u64,
    pub auto_matched: u64,
    pub suggested: u64,
    pub unmatched: u64,
    pub excluded: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.examined += o.examined;
        self.auto_matched += o.auto_matched;
        self.suggested += o.suggested;
        self.unmatched += o.unmatched;
        self.excluded += o.excluded;
    }
}

/// Which pending credits a pass takes.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
}

/// What every batch of a pass shares: the tenant's tuning and rules.
pub struct Context {
    pub tuning: Tuning,
    pub rules: rules::CompiledRules,
}

impl Context {
    pub async fn load(conn: &mut PgConnection, tenant: &TenantId) -> Result<Self, ReconciliationError> {
        let settings = settings::load(conn, tenant).await?;
        let rules = rules::CompiledRules::compile(rules::list_all(conn, tenant).await?);
        Ok(Self { tuning: tuning(&settings), rules })
    }
}

/// The scoring tuning a tenant's settings make.
pub fn tuning(s: &settings::Settings) -> Tuning {
    use super::scoring::Signal;
    let mut signals = super::scoring::SignalSwitches::all_on();
    for (signal, on) in [
        (Signal::Reference, s.signals.reference),
        (Signal::RfReference, s.signals.rf_reference),
        (Signal::BankAccount, s.signals.bank_account),
        (Signal::Name, s.signals.name),
        (Signal::Amount, s.signals.amount),
        (Signal::Date, s.signals.date),
        (Signal::StripeTrace, s.signals.stripe_trace),
    ] {
        signals.set(signal, on);
    }
    Tuning {
        auto_match_threshold: s.auto_match_threshold,
        suggest_threshold: s.suggest_threshold,
        amount_tolerance: s.amount_tolerance,
        amount_tolerance_permille: i64::from(s.amount_tolerance_permille),
        date_window_days: i64::from(s.date_window_days),
        banking_delay_days: i64::from(s.banking_delay_days),
        signals,
    }
}

/// Evaluates every pending credit of the tenant, batch after batch, until none is left that
/// another worker does not hold.
pub async fn reconcile_pending(pool: &PgPool, tenant: &TenantId) -> Result<Counts, ReconciliationError> {
    let context = {
        let mut tx = begin_tenant(pool, tenant).await?;
        let context = Context::load(&mut tx, tenant).await?;
        tx.commit().await?;
        context
    };
    let mut total = Counts::default();
    loop {
        let mut tx = begin_tenant(pool, tenant).await?;
        let counts = next_batch(&mut tx, tenant, &context, &Scope::default()).await?;
        tx.commit().await?;
        if counts.examined == 0 {
            return Ok(total);
        }
        total += counts;
    }
}

/// Claims and evaluates the next batch of pending credits in `scope`, inside the caller's
/// transaction; zero examined when none is left.
pub async fn next_batch(
    conn: &mut PgConnection,
    tenant: &TenantId,
    context: &Context,
    scope: &Scope,
) -> Result<Counts, ReconciliationError> {
    let credits: Vec<Credit> = sqlx::query_as(
        "select id, amount, currency, coalesce(booking_date, value_date, created_at::date) as date, description,
                reference, counterparty_name, counterparty_account, customer_id
         from transactions
         where tenant_id = $1 and reconcile_pending and match_status in ('unmatched', 'suggested') and amount > 0
           and ($2::date is null or list_date >= $2) and ($3::date is null or list_date <= $3)
         order by id limit $4
         for update skip locked",
    )
    .bind(tenant.as_str())
    .bind(scope.date_from)
    .bind(scope.date_to)
    .bind(BATCH)
    .fetch_all(&mut *conn)
    .await?;
    evaluate_credits(conn, tenant, context, credits).await
}

/// Evaluates claimed credits and writes what the engine decided.
pub async fn evaluate_credits(
    conn: &mut PgConnection,
    tenant: &TenantId,
    context: &Context,
    credits: Vec<Credit>,
) -> Result<Counts, ReconciliationError> {
    if credits.is_empty() {
        return Ok(Counts::default());
    }
    let mut excluded = Vec::new();
    let mut live = Vec::new();
    for credit in credits {
        match evaluate::apply_rules(&context.rules, &credit) {
            Err(rule) => excluded.push((credit.id, rule)),
            Ok(hints) => live.push(Reading::new(credit, hints)),
        }
    }
    let started = std::time::Instant::now();
    let pool = gather(conn, tenant, &mut live).await?;
    let ids: Vec<String> = live.iter().map(|r| r.credit.id.clone()).collect();
    let rejected = candidates::rejections(conn, tenant, &ids).await?;
    let gathered = started.elapsed();
    let verdicts = evaluate_all(context, &pool, live, &rejected);
    let scored = started.elapsed();
    let mut counts = persist::write(conn, tenant, verdicts).await?;
    counts.excluded += persist::exclude(conn, tenant, &excluded).await?;
    counts.examined += excluded.len() as u64;
    tracing::debug!(
        examined = counts.examined,
        gather_ms = gathered.as_millis() as u64,
        score_ms = (scored - gathered).as_millis() as u64,
        write_ms = (started.elapsed() - scored).as_millis() as u64,
        "evaluated a batch of credits"
    );
    Ok(counts)
}

/// Scores and decides every credit. Pure work with nothing to wait for, so on a multi-threaded
/// runtime it leaves the async workers ([`tokio::task::block_in_place`]) and uses every core:
/// the credits are split into one chunk per core. On a single-threaded runtime (tests) it runs
/// inline.
fn evaluate_all(
    context: &Context,
    pool: &Pool,
    live: Vec<Reading>,
    rejected: &HashMap<String, Vec<String>>,
) -> Vec<(Credit, Verdict)> {
    let none = Vec::new();
    let one = |reading: Reading| {
        let rejected = rejected.get(&reading.credit.id).unwrap_or(&none);
        let verdict = evaluate::evaluate(&reading, pool, rejected, &context.tuning);
        (reading.credit, verdict)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if cores < 2 || live.len() < PARALLEL_FROM || !multi_threaded {
        return live.into_iter().map(one).collect();
    }
    let chunk = live.len().div_ceil(cores);
    let mut chunks: Vec<Vec<Reading>> = Vec::new();
    let mut live = live.into_iter().peekable();
    while live.peek().is_some() {
        chunks.push(live.by_ref().take(chunk).collect());
    }
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                chunks.into_iter().map(|c| scope.spawn(|| c.into_iter().map(one).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|h| h.join().expect("evaluating credits does not panic")).collect()
        })
    })
}

/// Fewer credits than this are scored on one thread: spawning would cost more than it saves.
const PARALLEL_FROM: usize = 64;

/// Everything that might pay the credits read, in a handful of queries for the whole batch; and
/// who may have paid each (`Reading::likely`).
pub async fn gather(conn: &mut PgConnection, tenant: &TenantId, readings: &mut [Reading]) -> Result<Pool, sqlx::Error> {
    let mut payers = Payers::default();
    for reading in readings.iter() {
        payers.add(reading);
    }
    let mut pool = Pool { customers: Customers::for_payers(conn, tenant, &payers).await?, ..Pool::default() };
    let mut keys = BTreeSet::new();
    let mut amounts = BTreeSet::new();
    let mut customers = BTreeSet::new();
    for reading in readings.iter_mut() {
        keys.extend(reading.keys().cloned());
        amounts.insert((reading.credit.currency.clone(), reading.credit.amount));
        reading.likely =
            evaluate::likely_customers(reading, &pool.customers).into_iter().map(|c| c.id.clone()).collect();
        customers.extend(reading.likely.iter().cloned());
    }
    let keys: Vec<String> = keys.into_iter().collect();
    pool.closed_keys = candidates::closed_keys(conn, tenant, &keys).await?;
    pool.add_invoices(candidates::invoices_by_key(conn, tenant, &keys).await?);
    for reading in readings.iter() {
        customers.extend(evaluate::customers_of_quoted_parts(reading, &pool));
    }
    let amounts: Vec<(String, i64)> = amounts.into_iter().collect();
    pool.add_amount_groups(&amounts, candidates::invoices_by_amount(conn, tenant, &amounts).await?);
    let customers: Vec<String> = customers.into_iter().collect();
    pool.add_customer_groups(&customers, candidates::invoices_of_customers(conn, tenant, &customers).await?);

    pool.payouts = candidates::payouts_by_amount(conn, tenant, &amounts).await?;
    let payout_ids: Vec<String> = pool.payouts.iter().map(|p| p.id.clone()).collect();
    let charges = candidates::payout_charges(conn, tenant, &payout_ids).await?;
    let named: Vec<String> = charges.iter().filter_map(|c| c.invoice_id.clone()).collect();
    pool.add_invoices(candidates::invoices_by_id(conn, tenant, &named).await?);
    let charge_keys: Vec<String> = charges
        .iter()
        .flat_map(|c| {
            c.invoice_number
                .iter()
                .map(|n| text::ref_key(n))
                .chain(c.description.iter().flat_map(|d| text::candidate_keys(d)))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    pool.add_invoices(candidates::invoices_by_key(conn, tenant, &charge_keys).await?);
    let mut by_payout: HashMap<String, Vec<candidates::PayoutCharge>> = HashMap::new();
    for c in charges {
        by_payout.entry(c.payout_id.clone()).or_default().push(c);
    }
    pool.charges = by_payout;
    pool.add_customers(conn, tenant).await?;
    Ok(pool)
}
