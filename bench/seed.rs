//! Seeds a benchmark database for the transactions API: one tenant with 1,000,000 transactions
//! across 5 accounts and 9 other tenants with 100,000 each (1.9M rows), all written with one `COPY`.
//!
//! Usage: `bench-seed DATABASE_URL [BIG_ROWS [OTHER_TENANTS [OTHER_ROWS]]]` (defaults 1000000, 9,
//! 100000). `DATABASE_URL` is payymo's database as a role that owns its tables (the role that
//! applied the migrations: `payymo` in the embedded cluster); migrations are applied first if
//! missing. Tenants are made with `payymo::tenancy::create_tenant`, their bank connections and
//! accounts with SQL of the shape `bank::connections` writes (linked GoCardless connections,
//! `bank_feed` accounts), and the transactions with one `COPY`, in one database
//! transaction that first drops the secondary indexes of `transactions` and recreates them from
//! their own definitions afterwards (faster than maintaining them row by row; its foreign keys
//! likewise, re-validated by one join each instead of a lookup per row), and that lifts
//! the forcing of row-level security for its own duration (COPY refuses a table whose policy
//! applies to the role; the table's owner is exempt from an unforced policy): nothing is left
//! half-done or unprotected if the run stops. Then `vacuum (analyze)`, as a table at rest would be.
//!
//! Re-running against a seeded database changes nothing: when the big tenant (named
//! `bench-seed big`) exists, its summary is printed again.
//!
//! Prints on stdout, one per line, `tenant ID` (the big tenant) and `account ID CURRENCY ROWS`
//! for each of its accounts, then `seeded ROWS rows in SECONDS s`; progress on stderr.
//!
//! The data is deterministic (a fixed seed) and shaped like a small business's bank feed: booking
//! dates over the last two years (weekdays busier), written day by day as syncs would append them
//! (so the table's physical order follows the date, as in production), mostly card payments and direct debits out,
//! invoice payments and card-processor payouts in, long-tailed amounts of both signs, mostly GBP
//! with one EUR and one USD account, nearly all booked (pending only in the last days), about half
//! categorised, and descriptions, counterparties and references drawn from word lists with
//! Zipf-like frequencies so that a free-text search matches a realistic share of rows.

use std::{fmt::Write as _, time::Instant};

use anyhow::{Context, bail};
use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use payymo::{
    auth::{Environment, Plan},
    db::{self, tenant::begin_platform},
    domain::{
        ids::{BankAccountId, BankConnectionId, TenantId, TransactionId},
        money::{Currency, format_minor_units},
    },
    tenancy::{self, NewTenant},
};
use sqlx::{Connection, PgConnection, postgres::PgPoolOptions};

const BIG_TENANT_NAME: &str = "bench-seed big";
/// How the big tenant's rows spread over its accounts: (currency, share in percent).
const BIG_ACCOUNTS: &[(&str, u64)] = &[("GBP", 45), ("GBP", 25), ("GBP", 15), ("EUR", 10), ("USD", 5)];
/// The other tenants' accounts.
const OTHER_ACCOUNTS: &[(&str, u64)] = &[("GBP", 70), ("GBP", 30)];
/// Booking dates cover this many days up to today.
const HISTORY_DAYS: u64 = 730;
/// Bytes of COPY data sent per message.
const CHUNK: usize = 4 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> anyhow::Result<u64> {
        args.get(i).map_or(Ok(default), |n| n.parse().with_context(|| format!("not a count: {n:?}")))
    };
    let Some(url) = args.first() else {
        bail!("usage: bench-seed DATABASE_URL [BIG_ROWS [OTHER_TENANTS [OTHER_ROWS]]]");
    };
    let (big_rows, others, other_rows) = (number(1, 1_000_000)?, number(2, 9)?, number(3, 100_000)?);

    let pool = PgPoolOptions::new().max_connections(2).connect(url).await.context("cannot connect")?;
    db::MIGRATOR.run(&pool).await.context("migrations")?;
    let started = Instant::now();

    let existing: Option<String> = sqlx::query_scalar("select id from tenants where name = $1")
        .bind(BIG_TENANT_NAME)
        .fetch_optional(&pool)
        .await?;
    if let Some(tenant) = existing {
        eprintln!("bench-seed: {BIG_TENANT_NAME:?} exists ({tenant}); nothing to do");
        print_summary(&mut *begin_platform(&pool).await?, &tenant).await?;
        println!("seeded 0 rows in 0.0 s");
        return Ok(());
    }

    // Everything in one transaction: a run that stops leaves nothing behind.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("set maintenance_work_mem = '512MB'").execute(&mut conn).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("set local payymo.platform = 'on'").execute(&mut *tx).await?;

    // Tenants, connections and accounts: small, through ordinary statements.
    let today = Utc::now().date_naive();
    let mut plans = Vec::new();
    let big = create_tenant(&mut tx, BIG_TENANT_NAME, Plan::Premium).await?;
    plans.push(TenantPlan {
        accounts: create_accounts(&mut tx, &big, BIG_ACCOUNTS).await?,
        tenant: big,
        rows: big_rows,
    });
    for n in 1..=others {
        let tenant = create_tenant(&mut tx, &format!("bench-seed other {n}"), Plan::Standard).await?;
        let accounts = create_accounts(&mut tx, &tenant, OTHER_ACCOUNTS).await?;
        plans.push(TenantPlan { tenant, accounts, rows: other_rows });
    }

    // Transactions: drop the secondary indexes, COPY, recreate the indexes.
    // COPY refuses a table whose row-level security applies to the role; its owner (the role
    // that applied the migrations) is exempt once the policy is not forced, until the commit.
    sqlx::query("alter table transactions no force row level security").execute(&mut *tx).await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select i.relname::text, pg_get_indexdef(i.oid)
         from pg_index x join pg_class i on i.oid = x.indexrelid
         where x.indrelid = 'transactions'::regclass and not x.indisprimary
           and not exists (select 1 from pg_constraint c where c.conindid = i.oid)
         order by i.relname",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("drop index {}", db::quote_ident(name))).execute(&mut *tx).await?;
    }
    // Foreign keys too: checked row by row they cost more than the COPY itself; added back, each
    // is validated by one join over the table.
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(
        "select conname::text, pg_get_constraintdef(oid) from pg_constraint
         where conrelid = 'transactions'::regclass and contype = 'f' order by conname",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &foreign_keys {
        sqlx::query(&format!("alter table transactions drop constraint {}", db::quote_ident(name)))
            .execute(&mut *tx)
            .await?;
    }
    let copy_started = Instant::now();
    // Day by day, oldest first, every tenant's rows of the day in turn, as daily syncs append
    // them: the table's physical order follows the date, as it does in production.
    let calendar = Calendar::new(today);
    let mut generators: Vec<Generator> =
        (0..plans.len()).map(|n| Generator::new(0x5eed_0000 + n as u64, today)).collect();
    let splits: Vec<Vec<(&Account, u64)>> = plans.iter().map(TenantPlan::split).collect();
    let mut copy = tx.copy_in_raw(COPY_STATEMENT).await?;
    let mut buffer = String::with_capacity(CHUNK + 4096);
    for day in 0..HISTORY_DAYS {
        let date = calendar.date(day);
        for ((plan, split), generator) in plans.iter().zip(&splits).zip(&mut generators) {
            for (account, rows) in split {
                for _ in 0..calendar.rows_on(day, *rows) {
                    generator.row(&plan.tenant, account, date, &mut buffer);
                }
            }
        }
        if buffer.len() >= CHUNK {
            copy.send(std::mem::take(&mut buffer).into_bytes()).await?;
            buffer.reserve(CHUNK + 4096);
        }
        if (day + 1) % 146 == 0 {
            eprintln!("bench-seed: {} of {HISTORY_DAYS} days ({:.1} s)", day + 1, copy_started.elapsed().as_secs_f64());
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
    }
    let total = copy.finish().await?;
    let copy_seconds = copy_started.elapsed().as_secs_f64();
    let index_started = Instant::now();
    for (name, definition) in &indexes {
        let one = Instant::now();
        sqlx::query(definition).execute(&mut *tx).await?;
        eprintln!("bench-seed: index {name}: {:.1} s", one.elapsed().as_secs_f64());
    }
    for (name, definition) in &foreign_keys {
        let one = Instant::now();
        sqlx::query(&format!("alter table transactions add constraint {} {definition}", db::quote_ident(name)))
            .execute(&mut *tx)
            .await?;
        eprintln!("bench-seed: foreign key {name}: {:.1} s", one.elapsed().as_secs_f64());
    }
    let index_seconds = index_started.elapsed().as_secs_f64();
    sqlx::query("alter table transactions force row level security").execute(&mut *tx).await?;
    tx.commit().await?;

    let vacuum_started = Instant::now();
    for table in ["transactions", "bank_accounts", "bank_connections", "tenants"] {
        sqlx::query(&format!("vacuum (analyze) {table}")).execute(&mut conn).await?;
    }
    let vacuum_seconds = vacuum_started.elapsed().as_secs_f64();
    conn.close().await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "bench-seed: {total} rows: COPY {copy_seconds:.1} s ({:.0} rows/s), {} indexes and {} foreign keys \
         {index_seconds:.1} s, vacuum (analyze) {vacuum_seconds:.1} s, total {seconds:.1} s",
        total as f64 / copy_seconds,
        indexes.len(),
        foreign_keys.len()
    );
    print_summary(&mut *begin_platform(&pool).await?, plans[0].tenant.as_str()).await?;
    println!("seeded {total} rows in {seconds:.1} s");
    Ok(())
}

async fn print_summary(conn: &mut PgConnection, tenant: &str) -> anyhow::Result<()> {
    let accounts: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "select a.id, a.currency, (select count(*) from transactions t where t.tenant_id = a.tenant_id and t.account_id = a.id)
         from bank_accounts a where a.tenant_id = $1 order by a.id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    println!("tenant {tenant}");
    for (id, currency, rows) in accounts {
        println!("account {id} {} {rows}", currency.unwrap_or_default());
    }
    Ok(())
}

async fn create_tenant(conn: &mut PgConnection, name: &str, plan: Plan) -> anyhow::Result<TenantId> {
    let new = NewTenant {
        name: name.to_owned(),
        environment: Environment::Test,
        plan: Some(plan),
        time_zone: Some("Europe/London".into()),
    };
    let tenant = tenancy::create_tenant(conn, new).await.map_err(|e| anyhow::anyhow!("create tenant: {e}"))?;
    Ok(TenantId::from_db(tenant.id))
}

/// One linked connection holding `shape.len()` accounts, as `bank::connections` leaves them after
/// a consent; returns (account id, currency, share in percent).
async fn create_accounts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    shape: &[(&'static str, u64)],
) -> anyhow::Result<Vec<Account>> {
    let connection = BankConnectionId::generate();
    sqlx::query(
        "insert into bank_connections (tenant_id, id, institution_id, institution_name, status, redirect_url,
             reference, agreement_id, requisition_id, max_historical_days, access_valid_for_days, linked_at,
             expires_at, last_synced_at)
         values ($1, $2, 'SANDBOXFINANCE_SFIN0000', 'Sandbox Finance', 'linked', 'https://bench.example/done',
             $1 || '.' || $2, gen_random_uuid()::text, gen_random_uuid()::text, 730, 90, now(),
             now() + interval '90 days', now())",
    )
    .bind(tenant.as_str())
    .bind(connection.as_str())
    .execute(&mut *conn)
    .await?;
    let mut accounts = Vec::new();
    for (n, (currency, share)) in shape.iter().enumerate() {
        let id = BankAccountId::generate();
        sqlx::query(
            "insert into bank_accounts (tenant_id, id, connection_id, provider_account_id, status, iban, owner_name,
                 name, currency, kind, last_synced_at)
             values ($1, $2, $3, gen_random_uuid()::text, 'ready', $4, 'Bench Trading Ltd', $5, $6, 'bank_feed', now())",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(connection.as_str())
        .bind(format!("GB{:02}SFIN{:014}", 10 + n, n + 1))
        .bind(format!("{currency} account {}", n + 1))
        .bind(currency)
        .execute(&mut *conn)
        .await?;
        accounts.push(Account {
            id,
            connection: connection.clone(),
            currency: parse_currency(currency)?,
            share: *share,
        });
    }
    Ok(accounts)
}

fn parse_currency(code: &str) -> anyhow::Result<Currency> {
    Currency::parse(code).with_context(|| format!("not a currency: {code}"))
}

struct Account {
    id: BankAccountId,
    connection: BankConnectionId,
    currency: Currency,
    share: u64,
}

struct TenantPlan {
    tenant: TenantId,
    accounts: Vec<Account>,
    rows: u64,
}

impl TenantPlan {
    /// Each account with its number of rows (the shares; the last takes the remainder).
    fn split(&self) -> Vec<(&Account, u64)> {
        let total_share: u64 = self.accounts.iter().map(|a| a.share).sum();
        let mut left = self.rows;
        let mut split = Vec::new();
        for (n, account) in self.accounts.iter().enumerate() {
            let rows =
                if n + 1 == self.accounts.len() { left } else { (self.rows * account.share / total_share).min(left) };
            left -= rows;
            split.push((account, rows));
        }
        split
    }
}

/// The columns [`Generator::row`] writes, in order.
const COPY_STATEMENT: &str = "copy transactions (tenant_id, id, account_id, connection_id, provider_transaction_id,
    bank_transaction_id, status, amount, currency, booking_date, value_date, description, counterparty_name,
    bank_transaction_code, match_status, raw, created_at, updated_at, reference, category, category_source,
    notes, tags, metadata, source) from stdin";

/// splitmix64: small, fast and good enough to shape test data (no cryptographic use).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }

    fn chance(&mut self, percent: f64) -> bool {
        self.unit() * 100.0 < percent
    }

    /// An index into a list of `len` where index i comes up with weight 1/(i+1) (Zipf, s = 1):
    /// the first entries are common, the tail rare.
    fn zipf(&mut self, len: usize) -> usize {
        // Inverse of the continuous approximation: H(x) ≈ ln(x + 1).
        let x = ((len as f64 + 1.0).ln() * self.unit()).exp() - 1.0;
        (x as usize).min(len - 1)
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.zipf(list.len())]
    }

    /// Log-normal in minor units: `median` × e^(σ·N(0,1)), clamped to [low, high]. Floats only
    /// shape the test data; the stored amount is an integer.
    fn amount(&mut self, median: f64, sigma: f64, low: i64, high: i64) -> i64 {
        let (u1, u2) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        ((median * (sigma * normal).exp()) as i64).clamp(low, high)
    }
}

/// The [`HISTORY_DAYS`] days up to today, oldest first, weekends at a third of a weekday's rate.
struct Calendar {
    first: NaiveDate,
    /// Weight of the days before day i, in thirds (a weekday weighs 3, a weekend day 1).
    before: Vec<u64>,
}

impl Calendar {
    fn new(today: NaiveDate) -> Self {
        let first = today - Days::new(HISTORY_DAYS - 1);
        let mut before = vec![0];
        for day in 0..HISTORY_DAYS {
            let weekend = matches!((first + Days::new(day)).weekday(), Weekday::Sat | Weekday::Sun);
            before.push(before[before.len() - 1] + if weekend { 1 } else { 3 });
        }
        Self { first, before }
    }

    fn date(&self, day: u64) -> NaiveDate {
        self.first + Days::new(day)
    }

    /// How many of `total` rows fall on `day` (over all days, exactly `total`).
    fn rows_on(&self, day: u64, total: u64) -> u64 {
        let whole = self.before[HISTORY_DAYS as usize];
        let through = |d: usize| total * self.before[d] / whole;
        through(day as usize + 1) - through(day as usize)
    }
}

/// What a row is: decides its direction, texts, amount and category.
#[derive(Clone, Copy)]
enum Kind {
    Card,
    DirectDebit,
    TransferOut,
    Salary,
    Fee,
    InvoicePaid,
    Payout,
    Refund,
}

impl Kind {
    /// Percent of rows of each kind.
    const MIX: &[(Kind, f64)] = &[
        (Kind::Card, 52.0),
        (Kind::DirectDebit, 11.0),
        (Kind::TransferOut, 8.0),
        (Kind::Salary, 3.0),
        (Kind::Fee, 2.0),
        (Kind::InvoicePaid, 18.0),
        (Kind::Payout, 4.0),
        (Kind::Refund, 2.0),
    ];
}

struct Generator {
    rng: Rng,
    today: NaiveDate,
    sequence: u64,
}

impl Generator {
    fn new(seed: u64, today: NaiveDate) -> Self {
        Self { rng: Rng(seed), today, sequence: 0 }
    }

    fn kind(&mut self) -> Kind {
        let mut roll = self.rng.unit() * 100.0;
        for (kind, percent) in Kind::MIX {
            if roll < *percent {
                return *kind;
            }
            roll -= percent;
        }
        Kind::Card
    }

    /// Appends one COPY text line for a transaction of `account`.
    fn row(&mut self, tenant: &TenantId, account: &Account, date: NaiveDate, out: &mut String) {
        self.sequence += 1;
        let kind = self.kind();
        let rng = &mut self.rng;
        let year = date.year();
        let (amount, description, counterparty, reference, code, category) = match kind {
            Kind::Card => {
                let (merchant, category) = MERCHANTS[rng.zipf(MERCHANTS.len())];
                let city = rng.pick(CITIES);
                (
                    -rng.amount(2_400.0, 1.1, 50, 800_000),
                    format!("CARD PAYMENT TO {merchant} {city} ON {}", date.format("%d-%m-%Y")),
                    Some(merchant.to_owned()),
                    None,
                    "PMNT-CCRD-POSD",
                    category,
                )
            }
            Kind::DirectDebit => {
                let index = rng.zipf(BILLERS.len());
                let (biller, category) = BILLERS[index];
                let mandate = format!("MANDATE-{:06}", 100_000 + index * 7_919 % 900_000);
                (
                    -rng.amount(18_000.0, 1.0, 500, 5_000_000),
                    format!("DIRECT DEBIT PAYMENT TO {biller} REF {mandate}"),
                    Some(biller.to_owned()),
                    Some(mandate),
                    "PMNT-IDDT-ESDD",
                    category,
                )
            }
            Kind::TransferOut => {
                let supplier = company(rng);
                let order = format!("PO-{:05}", rng.range(1, 60_000));
                (
                    -rng.amount(85_000.0, 1.3, 100, 20_000_000),
                    format!("FASTER PAYMENT TO {} REF {order}", supplier.to_uppercase()),
                    Some(supplier),
                    Some(order),
                    "PMNT-ICDT-STDO",
                    "suppliers",
                )
            }
            Kind::Salary => {
                let person = person(rng);
                (
                    -rng.amount(260_000.0, 0.4, 80_000, 2_000_000),
                    format!(
                        "BACS SALARY {} {}",
                        date.format("%b %Y").to_string().to_uppercase(),
                        person.to_uppercase()
                    ),
                    Some(person),
                    Some(format!("SAL-{}", date.format("%Y%m"))),
                    "PMNT-ICDT-BACT",
                    "payroll",
                )
            }
            Kind::Fee => {
                let fee = rng.pick(FEES);
                (-(rng.range(50, 3_500) as i64), fee.to_owned(), None, None, "ACMT-MDOP-CHRG", "bank fees")
            }
            Kind::InvoicePaid => {
                let customer = company(rng);
                let invoice = format!("INV-{year}-{:05}", rng.range(1, 40_000));
                (
                    rng.amount(120_000.0, 1.2, 100, 90_000_000),
                    format!("{} PAYMENT {invoice}", customer.to_uppercase()),
                    Some(customer),
                    Some(invoice),
                    "PMNT-RCDT-ESCT",
                    "sales",
                )
            }
            Kind::Payout => {
                let payout = format!("po_{:016x}", rng.next());
                (
                    rng.amount(310_000.0, 0.9, 100, 50_000_000),
                    format!("STRIPE PAYMENTS UK LTD {}", &payout[3..11].to_uppercase()),
                    Some("STRIPE PAYMENTS UK LTD".to_owned()),
                    Some(payout),
                    "PMNT-RCDT-ESCT",
                    "sales",
                )
            }
            Kind::Refund => {
                let (merchant, category) = MERCHANTS[rng.zipf(MERCHANTS.len())];
                (
                    rng.amount(3_000.0, 1.0, 50, 500_000),
                    format!("REFUND FROM {merchant}"),
                    Some(merchant.to_owned()),
                    None,
                    "PMNT-RCDT-ESCT",
                    category,
                )
            }
        };

        // Pending only in the last three days; a few cancelled (dropped pending) ones throughout.
        let age = (self.today - date).num_days();
        let status = if age < 3 && rng.chance(40.0) {
            "pending"
        } else if rng.chance(0.2) {
            "cancelled"
        } else {
            "booked"
        };
        let booking_date = (status == "booked").then_some(date);
        let synced = Utc.from_utc_datetime(&date.and_hms_opt(5, 0, 0).unwrap_or_default())
            + chrono::Duration::seconds(rng.range(0, 20 * 3600) as i64);
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&rng.next().to_le_bytes());
        random[8..].copy_from_slice(&rng.next().to_le_bytes()[..2]);
        let millis = u64::try_from(synced.timestamp_millis()).unwrap_or_default();
        let id = TransactionId::from_db(format!(
            "txn_{}",
            uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid().simple()
        ));
        let internal = format!("{:016x}{:016x}", rng.next(), self.sequence);
        let bank_id = format!("{}{:07}", date.format("%Y%m%d"), self.sequence % 10_000_000);

        // About half categorised, mostly by rules; a user's own category comes with a later update.
        let (category, source, updated) = if rng.chance(50.0) {
            if rng.chance(85.0) {
                (Some(category), Some("rule"), synced)
            } else {
                let later = synced + chrono::Duration::seconds(rng.range(3600, 30 * 86_400) as i64);
                (Some(category), Some("user"), later.min(Utc::now()))
            }
        } else {
            (None, None, synced)
        };
        let notes = rng.chance(2.0).then_some("Checked against the supplier statement");
        let tags = if rng.chance(5.0) { rng.pick(&["{reviewed}", "{q4,reviewed}", "{disputed}"]) } else { "{}" };
        let metadata = match (&reference, rng.chance(3.0)) {
            (Some(reference), true) => format!("{{\"erp_ref\": \"{reference}\"}}"),
            _ => "{}".to_owned(),
        };

        let mut raw = String::with_capacity(400);
        let party_key = if amount < 0 { "creditorName" } else { "debtorName" };
        let _ = write!(
            raw,
            "{{\"transactionId\": \"{bank_id}\", \"internalTransactionId\": \"{internal}\", \"valueDate\": \"{date}\", \
             \"transactionAmount\": {{\"amount\": \"{}\", \"currency\": \"{}\"}}, \
             \"remittanceInformationUnstructured\": \"{description}\", \"bankTransactionCode\": \"{code}\"",
            format_minor_units(amount, account.currency),
            account.currency.as_str()
        );
        if let Some(booked) = booking_date {
            let _ = write!(raw, ", \"bookingDate\": \"{booked}\"");
        }
        if let Some(party) = &counterparty {
            let _ = write!(raw, ", \"{party_key}\": \"{party}\"");
        }
        raw.push('}');

        let date_text = date.to_string();
        let booking_text = booking_date.map(|d| d.to_string());
        let created_text = synced.to_rfc3339();
        let updated_text = updated.to_rfc3339();
        let amount_text = amount.to_string();
        let fields: [Option<&str>; 25] = [
            Some(tenant.as_str()),
            Some(id.as_str()),
            Some(account.id.as_str()),
            Some(account.connection.as_str()),
            Some(&internal),
            Some(&bank_id),
            Some(status),
            Some(&amount_text),
            Some(account.currency.as_str()),
            booking_text.as_deref(),
            Some(&date_text),
            Some(&description),
            counterparty.as_deref(),
            Some(code),
            Some("unmatched"),
            Some(&raw),
            Some(&created_text),
            Some(&updated_text),
            reference.as_deref(),
            category,
            source,
            notes,
            Some(tags),
            Some(&metadata),
            Some("bank_feed"),
        ];
        for (n, field) in fields.iter().enumerate() {
            if n > 0 {
                out.push('\t');
            }
            match field {
                Some(text) => push_copy_text(out, text),
                None => out.push_str("\\N"),
            }
        }
        out.push('\n');
    }
}

/// Appends `text` escaped for COPY's text format.
fn push_copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A customer's or supplier's name: about 3,600 combinations, the common ones far more frequent.
fn company(rng: &mut Rng) -> String {
    format!("{} {} {}", rng.pick(COMPANY_FIRST), rng.pick(COMPANY_SECOND), rng.pick(COMPANY_SUFFIX))
}

fn person(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(SURNAMES))
}

/// Card merchants with the category a rule would give them, most frequent first.
const MERCHANTS: &[(&str, &str)] = &[
    ("TESCO STORES", "groceries"),
    ("AMAZON.CO.UK", "office supplies"),
    ("PRET A MANGER", "meals"),
    ("TFL TRAVEL CHARGE", "travel"),
    ("SAINSBURYS", "groceries"),
    ("UBER TRIP", "travel"),
    ("COSTA COFFEE", "meals"),
    ("SHELL", "fuel"),
    ("GOOGLE WORKSPACE", "software"),
    ("MICROSOFT 365", "software"),
    ("TRAINLINE", "travel"),
    ("AWS EMEA", "software"),
    ("STARBUCKS", "meals"),
    ("BP", "fuel"),
    ("SCREWFIX", "equipment"),
    ("ROYAL MAIL", "postage"),
    ("SLACK TECHNOLOGIES", "software"),
    ("GREGGS", "meals"),
    ("ARGOS", "office supplies"),
    ("WAITROSE", "groceries"),
    ("DELIVEROO", "meals"),
    ("ADOBE", "software"),
    ("ZOOM.US", "software"),
    ("APPLE.COM BILL", "software"),
    ("EASYJET", "travel"),
    ("BRITISH AIRWAYS", "travel"),
    ("PREMIER INN", "travel"),
    ("B AND Q", "equipment"),
    ("CURRYS", "equipment"),
    ("LINKEDIN ADS", "advertising"),
    ("GOOGLE ADS", "advertising"),
    ("FACEBOOK ADS", "advertising"),
    ("DHL EXPRESS", "postage"),
    ("DPD UK", "postage"),
    ("EVRI", "postage"),
    ("XERO", "software"),
    ("GITHUB", "software"),
    ("DROPBOX", "software"),
    ("ATLASSIAN", "software"),
    ("NOTION LABS", "software"),
    ("FIGMA", "software"),
    ("CANVA", "software"),
    ("MAILCHIMP", "software"),
    ("SHOPIFY", "software"),
    ("GODADDY", "software"),
    ("DIGITALOCEAN", "software"),
    ("HEROKU", "software"),
    ("MARKS AND SPENCER", "groceries"),
    ("ALDI", "groceries"),
    ("LIDL", "groceries"),
    ("ASDA", "groceries"),
    ("MORRISONS", "groceries"),
    ("NANDOS", "meals"),
    ("JUST EAT", "meals"),
    ("WETHERSPOON", "meals"),
    ("TRAVELODGE", "travel"),
    ("HERTZ", "travel"),
    ("ENTERPRISE RENT A CAR", "travel"),
    ("NCP CAR PARK", "travel"),
    ("RINGGO", "travel"),
    ("ESSO", "fuel"),
    ("TEXACO", "fuel"),
    ("HALFORDS", "equipment"),
    ("IKEA", "equipment"),
    ("JOHN LEWIS", "equipment"),
    ("BOOTS", "office supplies"),
    ("WHSMITH", "office supplies"),
    ("WATERSTONES", "office supplies"),
    ("VIKING DIRECT", "office supplies"),
    ("STAPLES", "office supplies"),
    ("EBAY", "office supplies"),
    ("ETSY", "office supplies"),
    ("WICKES", "equipment"),
    ("TOOLSTATION", "equipment"),
    ("SQUARESPACE", "software"),
    ("NAMECHEAP", "software"),
    ("EUROSTAR", "travel"),
    ("HILTON HOTELS", "travel"),
    ("KAFEJNICA", "meals"),
    ("LE PAIN QUOTIDIEN", "meals"),
];

/// Direct-debit billers with their category, most frequent first.
const BILLERS: &[(&str, &str)] = &[
    ("HMRC VAT", "taxes"),
    ("BRITISH GAS", "utilities"),
    ("BT GROUP", "telecoms"),
    ("WORKSPACE GROUP PLC", "rent"),
    ("OCTOPUS ENERGY", "utilities"),
    ("HMRC PAYE", "taxes"),
    ("VODAFONE", "telecoms"),
    ("THAMES WATER", "utilities"),
    ("AVIVA INSURANCE", "insurance"),
    ("NEST PENSIONS", "payroll"),
    ("VIRGIN MEDIA", "telecoms"),
    ("HISCOX", "insurance"),
    ("REGUS", "rent"),
    ("FUNDING CIRCLE", "loan repayments"),
    ("IWOCA", "loan repayments"),
    ("EDF ENERGY", "utilities"),
    ("EE LIMITED", "telecoms"),
    ("AXA INSURANCE", "insurance"),
    ("SAGE UK", "software"),
    ("LB CAMDEN BUSINESS RATES", "taxes"),
];

const CITIES: &[&str] = &[
    "LONDON",
    "MANCHESTER",
    "BRISTOL",
    "LEEDS",
    "BIRMINGHAM",
    "GLASGOW",
    "EDINBURGH",
    "CARDIFF",
    "NOTTINGHAM",
    "SHEFFIELD",
    "LIVERPOOL",
    "NEWCASTLE",
    "READING",
    "OXFORD",
    "CAMBRIDGE",
    "BRIGHTON",
    "DUBLIN",
    "PARIS",
    "AMSTERDAM",
    "BERLIN",
];

const FEES: &[&str] =
    &["ACCOUNT FEE", "INTERNATIONAL PAYMENT FEE", "CARD TRANSACTION FEE", "UNPAID ITEM FEE", "CASH DEPOSIT FEE"];

const COMPANY_FIRST: &[&str] = &[
    "Acme",
    "Northwind",
    "Globex",
    "Initech",
    "Hooli",
    "Stark",
    "Wayne",
    "Umbrella",
    "Cyberdyne",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Vandelay",
    "Pied Piper",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Monarch",
    "Dunder Mifflin",
    "Bluth",
    "Sterling Cooper",
    "Prestige",
    "Massive Dynamic",
    "Virtucon",
    "Nakatomi",
    "Oceanic",
    "Duff",
    "Gekko",
    "Brightside",
    "Oakfield",
];
const COMPANY_SECOND: &[&str] = &[
    "Widgets",
    "Traders",
    "Logistics",
    "Consulting",
    "Design",
    "Foods",
    "Engineering",
    "Media",
    "Builders",
    "Analytics",
    "Retail",
    "Health",
    "Studios",
    "Labs",
    "Partners",
    "Holdings",
    "Systems",
    "Supplies",
    "Energy",
    "Interiors",
];
const COMPANY_SUFFIX: &[&str] = &["Ltd", "Limited", "LLP", "PLC", "Group", "UK"];
const FIRST_NAMES: &[&str] = &[
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Ivy", "Leo", "Lily", "Oscar",
    "Grace", "Charlie", "Freya", "Muhammad", "Emily", "Arthur", "Sophia", "Priya", "Tomasz", "Aisha", "Wei",
];
const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Khan", "Nowak",
    "Chen",
];
