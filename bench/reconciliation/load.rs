//! Writes a generated tenant into Postgres: the tenant through `payymo::tenancy`, its manual bank
//! account and Stripe connection by plain inserts, then customers, invoices, payouts, charges and
//! credits by one `COPY` each, in one transaction that drops each table's secondary indexes and
//! foreign keys first and recreates them from their own definitions afterwards (as `bench-seed`
//! does: faster than maintaining them row by row), and lifts the forcing of row-level security for
//! its own duration (COPY refuses a table whose policy applies to the role; its owner is exempt
//! from an unforced policy). The ground truth goes into a temporary table of the same session.

use std::time::Instant;

use anyhow::Context as _;
use payymo::{
    auth::{Environment, Plan},
    db::{self, tenant::begin_platform},
    domain::ids::{BankAccountId, StripeConnectionId, TenantId},
    tenancy::{self, NewTenant},
};
use sqlx::{Connection as _, PgConnection, PgPool};

use super::generate::{CURRENCY, Credit, Dataset};

/// Bytes of COPY data sent per message.
const CHUNK: usize = 4 << 20;

/// What the seeded tenant is, and the session holding its ground truth (`bench_truth`).
pub struct Seeded {
    pub tenant: TenantId,
    pub account: String,
    /// A session of its own: its temporary table holds the truth, and it reads the outcome as
    /// the platform (`payymo.platform` on), so row-level security lets it see the tenant's rows.
    pub session: PgConnection,
}

pub async fn seed(pool: &PgPool, data: &Dataset, name: &str) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let mut session = pool.acquire().await?.detach();
    sqlx::query("set maintenance_work_mem = '256MB'").execute(&mut session).await?;
    sqlx::query(
        "create temporary table bench_truth (transaction_id text primary key, round integer not null,
             scenario text not null, truth text, shown text not null)",
    )
    .execute(&mut session)
    .await?;
    let mut tx = session.begin().await?;
    sqlx::query("set local payymo.platform = 'on'").execute(&mut *tx).await?;
    let new = NewTenant {
        name: name.to_owned(),
        environment: Environment::Test,
        plan: Some(Plan::Premium),
        time_zone: Some("Europe/Berlin".into()),
    };
    let tenant = tenancy::create_tenant(&mut tx, new).await.map_err(|e| anyhow::anyhow!("create tenant: {e}"))?;
    let tenant = TenantId::from_db(tenant.id);
    let account = BankAccountId::generate().as_str().to_owned();
    sqlx::query(
        "insert into bank_accounts (tenant_id, id, kind, status, iban, owner_name, name, currency)
         values ($1, $2, 'manual', 'ready', 'DE02120300000000202051', 'Bench Co GmbH', 'Main account', $3)",
    )
    .bind(tenant.as_str())
    .bind(&account)
    .bind(CURRENCY)
    .execute(&mut *tx)
    .await?;
    let connection = StripeConnectionId::generate().as_str().to_owned();
    sqlx::query(
        "insert into stripe_connections (tenant_id, id, status, account_id, account_name, livemode, key_hint, key_kind,
             key_sealed)
         values ($1, $2, 'connected', 'acct_bench', 'Bench Co', false, 'rk_test_…bnch', 'restricted', 'not-a-key')",
    )
    .bind(tenant.as_str())
    .bind(&connection)
    .execute(&mut *tx)
    .await?;

    // One table's COPY text at a time, so that only one is held in memory.
    let t = tenant.as_str();
    for table in ["customers", "invoices", "stripe_payouts", "stripe_payments", "transactions"] {
        let one = Instant::now();
        let (columns, rows) = match table {
            "customers" => ("customers (tenant_id, id, name, aliases, bank_accounts)", customers(t, data)),
            "invoices" => (
                "invoices (tenant_id, id, number, customer_id, currency, amount_total, issue_date, due_date, status,
                    payment_reference, rf_reference)",
                invoices(t, data),
            ),
            "stripe_payouts" => (
                "stripe_payouts (tenant_id, connection_id, id, status, amount, currency, arrival_date, automatic,
                    method, statement_descriptor, trace_id, gross, refunds, adjustments, fees, net, transaction_count,
                    created, version)",
                payouts(t, &connection, data),
            ),
            "stripe_payments" => (
                "stripe_payments (tenant_id, connection_id, id, status, amount, currency, fee, net, amount_refunded,
                    description, metadata, created, version, payout_id)",
                charges(t, &connection, data),
            ),
            _ => (TRANSACTION_COLUMNS, credits_text(t, &account, &data.credits, 0)),
        };
        let count = copy_into(&mut tx, table, columns, rows).await.with_context(|| format!("seeding {table}"))?;
        eprintln!("bench-reconciliation: {table}: {count} rows in {:.1} s", one.elapsed().as_secs_f64());
    }
    tx.commit().await?;
    copy_truth(&mut session, &data.credits, 0).await?;
    for table in ["customers", "invoices", "stripe_payouts", "stripe_payments", "transactions"] {
        sqlx::query(&format!("vacuum (analyze) {table}")).execute(&mut session).await?;
    }
    sqlx::query("set payymo.platform = 'on'").execute(&mut session).await?;
    eprintln!("bench-reconciliation: seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Seeded { tenant, account, session })
}

/// Adds credits the way an import does (one insert, every index in place), with their truth;
/// `from` numbers their external ids after the seeded ones.
pub async fn add_credits(pool: &PgPool, seeded: &mut Seeded, credits: &[Credit], from: usize) -> anyhow::Result<()> {
    let mut tx = begin_platform(pool).await?;
    let ids: Vec<&str> = credits.iter().map(|c| c.id.as_str()).collect();
    let externals: Vec<String> = (0..credits.len()).map(|n| format!("bench-{}", from + n)).collect();
    let amounts: Vec<i64> = credits.iter().map(|c| c.amount).collect();
    let dates: Vec<chrono::NaiveDate> = credits.iter().map(|c| c.date).collect();
    let descriptions: Vec<Option<&str>> = credits.iter().map(|c| c.description.as_deref()).collect();
    let payers: Vec<Option<&str>> = credits.iter().map(|c| c.payer.as_deref()).collect();
    let references: Vec<Option<&str>> = credits.iter().map(|c| c.reference.as_deref()).collect();
    let raws: Vec<serde_json::Value> = credits.iter().map(raw).collect();
    sqlx::query(
        "insert into transactions (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
             booking_date, value_date, description, counterparty_name, raw, reference, source, external_id)
         select $1, id, $2, 'import:' || external, 'booked', amount, $3, day, day, description, payer, raw, reference,
             'import', external
         from unnest($4::text[], $5::text[], $6::int8[], $7::date[], $8::text[], $9::text[], $10::jsonb[], $11::text[])
             as c(id, external, amount, day, description, payer, raw, reference)",
    )
    .bind(seeded.tenant.as_str())
    .bind(&seeded.account)
    .bind(CURRENCY)
    .bind(&ids)
    .bind(&externals)
    .bind(&amounts)
    .bind(&dates)
    .bind(&descriptions)
    .bind(&payers)
    .bind(&raws)
    .bind(&references)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    copy_truth(&mut seeded.session, credits, 1).await
}

/// The bank's entry: the payer's IBAN where there is one (`counterparty_account` reads it there).
fn raw(credit: &Credit) -> serde_json::Value {
    match &credit.iban {
        Some(iban) => serde_json::json!({ "debtorAccount": { "iban": iban } }),
        None => serde_json::json!({}),
    }
}

const TRANSACTION_COLUMNS: &str = "transactions (tenant_id, id, account_id, provider_transaction_id, status, amount,
    currency, booking_date, value_date, description, counterparty_name, raw, reference, source, external_id)";

/// The truth of `credits`, tagged with `round` (0 seeded, 1 added later).
async fn copy_truth(session: &mut PgConnection, credits: &[Credit], round: u8) -> anyhow::Result<()> {
    let mut rows = String::new();
    let round = round.to_string();
    for c in credits {
        row(&mut rows, &[Some(&c.id), Some(&round), Some(c.scenario.name()), c.truth.as_deref(), Some(&c.shown())]);
    }
    let mut copy =
        session.copy_in_raw("copy bench_truth (transaction_id, round, scenario, truth, shown) from stdin").await?;
    copy.send(rows.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// COPY `rows` into `table` without its secondary indexes and foreign keys, recreated after.
async fn copy_into(conn: &mut PgConnection, table: &str, columns: &str, rows: String) -> anyhow::Result<u64> {
    sqlx::query(&format!("alter table {table} no force row level security")).execute(&mut *conn).await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select i.relname::text, pg_get_indexdef(i.oid)
         from pg_index x join pg_class i on i.oid = x.indexrelid
         where x.indrelid = $1::regclass and not x.indisprimary
           and not exists (select 1 from pg_constraint c where c.conindid = i.oid)
         order by i.relname",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("drop index {}", db::quote_ident(name))).execute(&mut *conn).await?;
    }
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(
        "select conname::text, pg_get_constraintdef(oid) from pg_constraint
         where conrelid = $1::regclass and contype = 'f' order by conname",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &foreign_keys {
        sqlx::query(&format!("alter table {table} drop constraint {}", db::quote_ident(name)))
            .execute(&mut *conn)
            .await?;
    }
    let mut copy = conn.copy_in_raw(&format!("copy {columns} from stdin")).await?;
    for chunk in rows.as_bytes().chunks(CHUNK) {
        copy.send(chunk).await?;
    }
    let count = copy.finish().await?;
    for (_, definition) in &indexes {
        sqlx::query(definition).execute(&mut *conn).await?;
    }
    for (name, definition) in &foreign_keys {
        sqlx::query(&format!("alter table {table} add constraint {} {definition}", db::quote_ident(name)))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(&format!("alter table {table} force row level security")).execute(&mut *conn).await?;
    Ok(count)
}

fn customers(tenant: &str, data: &Dataset) -> String {
    let mut out = String::new();
    for c in &data.customers {
        let aliases = format!(
            "{{{}}}",
            c.aliases
                .iter()
                .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(",")
        );
        let accounts = match &c.iban {
            Some(iban) => serde_json::json!([{ "iban": iban }]).to_string(),
            None => "[]".into(),
        };
        row(&mut out, &[Some(tenant), Some(&c.id), Some(&c.name), Some(&aliases), Some(&accounts)]);
    }
    out
}

fn invoices(tenant: &str, data: &Dataset) -> String {
    let mut out = String::new();
    for i in &data.invoices {
        let (amount, issue, due) = (i.amount.to_string(), i.issue.to_string(), i.due.to_string());
        let customer = &data.customers[i.customer].id;
        row(
            &mut out,
            &[
                Some(tenant),
                Some(&i.id),
                Some(&i.number),
                Some(customer),
                Some(CURRENCY),
                Some(&amount),
                Some(&issue),
                Some(&due),
                Some("open"),
                i.payment_reference.as_deref(),
                i.rf_reference.as_deref(),
            ],
        );
    }
    out
}

fn payouts(tenant: &str, connection: &str, data: &Dataset) -> String {
    let mut out = String::new();
    for p in &data.payouts {
        let created = format!("{} 06:00:00+00", p.arrival - chrono::Days::new(2));
        let figures = [p.net, p.gross, p.refunds, p.adjustments, p.fees, p.net].map(|n| n.to_string());
        let (arrival, count) = (p.arrival.to_string(), p.charges.to_string());
        row(
            &mut out,
            &[
                Some(tenant),
                Some(connection),
                Some(&p.id),
                Some("paid"),
                Some(&figures[0]),
                Some(CURRENCY),
                Some(&arrival),
                Some("t"),
                Some("standard"),
                Some(&p.descriptor),
                Some(&p.trace_id),
                Some(&figures[1]),
                Some(&figures[2]),
                Some(&figures[3]),
                Some(&figures[4]),
                Some(&figures[5]),
                Some(&count),
                Some(&created),
                Some(&created),
            ],
        );
    }
    out
}

fn charges(tenant: &str, connection: &str, data: &Dataset) -> String {
    let mut out = String::new();
    for c in &data.charges {
        let created = format!("{} 12:00:00+00", c.created);
        let metadata = match &c.invoice_number {
            Some(number) => serde_json::json!({ "invoice_number": number }).to_string(),
            None => "{}".into(),
        };
        let figures = [c.amount, c.fee, c.amount - c.fee, c.refunded].map(|n| n.to_string());
        row(
            &mut out,
            &[
                Some(tenant),
                Some(connection),
                Some(&c.id),
                Some("succeeded"),
                Some(&figures[0]),
                Some(CURRENCY),
                Some(&figures[1]),
                Some(&figures[2]),
                Some(&figures[3]),
                Some(&c.description),
                Some(&metadata),
                Some(&created),
                Some(&created),
                Some(&data.payouts[c.payout].id),
            ],
        );
    }
    out
}

/// Imported credits as COPY text, `external_id` `bench-{n}` counting from `from`.
fn credits_text(tenant: &str, account: &str, credits: &[Credit], from: usize) -> String {
    let mut out = String::new();
    for (n, c) in credits.iter().enumerate() {
        let external = format!("bench-{}", from + n);
        let provider = format!("import:{external}");
        let raw = raw(c).to_string();
        let (amount, date) = (c.amount.to_string(), c.date.to_string());
        row(
            &mut out,
            &[
                Some(tenant),
                Some(&c.id),
                Some(account),
                Some(&provider),
                Some("booked"),
                Some(&amount),
                Some(CURRENCY),
                Some(&date),
                Some(&date),
                c.description.as_deref(),
                c.payer.as_deref(),
                Some(&raw),
                c.reference.as_deref(),
                Some("import"),
                Some(&external),
            ],
        );
    }
    out
}

/// One row of COPY text: tab-separated, `\N` for null, backslash, tab and newlines escaped.
fn row(out: &mut String, fields: &[Option<&str>]) {
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push('\t');
        }
        match field {
            None => out.push_str("\\N"),
            Some(value) => {
                for c in value.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        _ => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}
