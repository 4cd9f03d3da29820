//! What a batch of bank credits might pay, gathered in a few set-wise queries (never one per
//! transaction), each served by an index on open invoices: by reference key, by amount due, by
//! customer; paid, unmatched Stripe payouts by amount; the customers the payers may be, by name
//! word and bank account.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use sqlx::{FromRow, PgConnection};

use crate::{domain::ids::TenantId, reconciliation::text};

/// A bank credit the engine looks at.
#[derive(Debug, Clone, FromRow)]
pub struct Credit {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub date: NaiveDate,
    pub description: Option<String>,
    pub reference: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub customer_id: Option<String>,
}

impl Credit {
    /// Everything the payer wrote: description and reference.
    pub fn text(&self) -> String {
        [self.description.as_deref(), self.reference.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ")
    }
}

/// An open invoice (`open` or `partially_paid`).
#[derive(Debug, Clone, FromRow)]
pub struct OpenInvoice {
    pub id: String,
    pub number: String,
    pub number_key: Option<String>,
    pub payment_reference: Option<String>,
    pub reference_key: Option<String>,
    pub rf_reference: Option<String>,
    pub rf_key: Option<String>,
    pub customer_id: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
}

/// A customer, with its names normalised once.
#[derive(Debug, Clone, FromRow)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub account_keys: Vec<String>,
    /// The name, then each alias, normalised (filled as [`Customers`] takes the row in).
    #[sqlx(skip)]
    pub normalized: Vec<text::NormalizedName>,
}

/// A paid Stripe payout no match holds yet.
#[derive(Debug, Clone, FromRow)]
pub struct OpenPayout {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub arrival_date: NaiveDate,
    pub trace_id: Option<String>,
    pub statement_descriptor: Option<String>,
}

/// A charge inside a payout that names an invoice (by id, number or in its description).
#[derive(Debug, Clone, FromRow)]
pub struct PayoutCharge {
    pub id: String,
    pub payout_id: String,
    pub amount: i64,
    pub description: Option<String>,
    pub invoice_id: Option<String>,
    pub invoice_number: Option<String>,
}

/// The customers a batch's credits may come from, and those its candidate invoices belong to,
/// indexed for lookup by name word and bank account. Asked for per batch (never the tenant's
/// whole customer list): by the payers' bank accounts and name words and the rules' customers
/// ([`Customers::for_payers`]), then the candidate invoices' own ([`Customers::add`]).
#[derive(Debug, Default)]
pub struct Customers {
    pub by_id: HashMap<String, Customer>,
    by_account: HashMap<String, Vec<String>>,
    by_token: HashMap<String, Vec<String>>,
    /// Words more than [`COMMON_TOKEN`] customers share: they say nothing about who paid.
    common: HashSet<String>,
}

/// Name words shared by more customers than this say nothing about who paid.
const COMMON_TOKEN: usize = 50;

/// What a batch's payers show: their accounts (ref keys), the customers rules assigned, and the
/// words of their names (normalised).
#[derive(Debug, Default)]
pub struct Payers {
    pub accounts: BTreeSet<String>,
    pub customer_ids: BTreeSet<String>,
    pub words: BTreeSet<String>,
}

impl Payers {
    pub fn add(&mut self, reading: &super::evaluate::Reading) {
        let credit = &reading.credit;
        self.accounts.extend(credit.counterparty_account.iter().filter(|a| !a.is_empty()).cloned());
        self.customer_ids.extend(reading.hints.customer_id.iter().cloned());
        if let Some(name) = &reading.seen.payer {
            self.words.extend(name.as_str().split(' ').filter(|w| w.len() >= 2).map(str::to_owned));
        }
    }
}

impl Customers {
    /// The customers paying from one of the accounts, assigned by a rule, or sharing a word of
    /// their name (a word more than [`COMMON_TOKEN`] customers share brings none), looked up in
    /// `customer_lookup_keys` (one row per customer and word or account, kept by a trigger).
    pub async fn for_payers(conn: &mut PgConnection, tenant: &TenantId, payers: &Payers) -> Result<Self, sqlx::Error> {
        let keys: Vec<String> = payers
            .words
            .iter()
            .map(|w| format!("w:{w}"))
            .chain(payers.accounts.iter().map(|a| format!("a:{a}")))
            .collect();
        let hits: Vec<(String, String)> = if keys.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "select k.key, c.customer_id from unnest($2::text[]) as k(key)
                 cross join lateral (
                     select customer_id from customer_lookup_keys
                     where tenant_id = $1 and key = k.key order by customer_id limit $3) c",
            )
            .bind(tenant.as_str())
            .bind(&keys)
            .bind(COMMON_TOKEN as i64 + 1)
            .fetch_all(&mut *conn)
            .await?
        };
        let mut per_word: HashMap<&str, usize> = HashMap::new();
        for (key, _) in &hits {
            if let Some(word) = key.strip_prefix("w:") {
                *per_word.entry(word).or_default() += 1;
            }
        }
        let common: HashSet<String> =
            per_word.into_iter().filter(|(_, n)| *n > COMMON_TOKEN).map(|(w, _)| w.to_owned()).collect();
        let mut ids: BTreeSet<String> = payers.customer_ids.clone();
        ids.extend(
            hits.into_iter()
                .filter(|(key, _)| key.strip_prefix("w:").is_none_or(|w| !common.contains(w)))
                .map(|(_, id)| id),
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut customers = Customers { common, ..Customers::default() };
        customers.insert(by_id(conn, tenant, &ids).await?);
        Ok(customers)
    }

    /// Adds the customers of `ids` not loaded yet (the candidate invoices' customers).
    pub async fn add(&mut self, conn: &mut PgConnection, tenant: &TenantId, ids: &[&str]) -> Result<(), sqlx::Error> {
        let missing: BTreeSet<&str> = ids.iter().copied().filter(|id| !self.by_id.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<&str> = missing.into_iter().collect();
        self.insert(by_id(conn, tenant, &missing).await?);
        Ok(())
    }

    fn insert(&mut self, rows: Vec<Customer>) {
        for mut c in rows {
            if self.by_id.contains_key(&c.id) {
                continue;
            }
            c.normalized = std::iter::once(&c.name).chain(&c.aliases).map(|n| text::NormalizedName::new(n)).collect();
            for key in &c.account_keys {
                self.by_account.entry(key.clone()).or_default().push(c.id.clone());
            }
            let mut tokens = BTreeSet::new();
            for name in &c.normalized {
                tokens.extend(name.as_str().split(' ').filter(|t| t.len() >= 2).map(str::to_owned));
            }
            for token in tokens {
                self.by_token.entry(token).or_default().push(c.id.clone());
            }
            self.by_id.insert(c.id.clone(), c);
        }
    }

    /// Customers whose bank account is `account` (a ref key).
    pub fn by_account(&self, account: &str) -> &[String] {
        self.by_account.get(account).map_or(&[], Vec::as_slice)
    }

    /// Customers whose name or an alias shares a distinctive word with `name` (normalised).
    pub fn sharing_a_word(&self, name: &text::NormalizedName) -> Vec<&Customer> {
        let mut found: Vec<&Customer> = Vec::new();
        let mut seen = HashSet::new();
        for token in name.as_str().split(' ').filter(|t| t.len() >= 2) {
            let Some(ids) = self.by_token.get(token) else { continue };
            if ids.len() > COMMON_TOKEN || self.common.contains(token) {
                continue;
            }
            for id in ids {
                if seen.insert(id.as_str())
                    && let Some(c) = self.by_id.get(id)
                {
                    found.push(c);
                }
            }
        }
        found
    }
}

/// The customers of `ids`.
async fn by_id(conn: &mut PgConnection, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Customer>, sqlx::Error> {
    sqlx::query_as("select id, name, aliases, account_keys from customers where tenant_id = $1 and id = any($2)")
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(conn)
        .await
}

const INVOICE_COLUMNS: &str =
    "id, number, number_key, payment_reference, reference_key, rf_reference, rf_key, customer_id,
    currency, amount_due, issue_date, due_date";

/// Most invoices an amount or a customer brings in: beyond that the signal is too common to help.
/// The queries return one more, so that `Pool` can tell a complete group from a cut one.
pub const PER_AMOUNT: i64 = 20;
pub const PER_CUSTOMER: i64 = 50;

/// Which of `keys` are the number or payment reference of an invoice that is no longer open
/// (paid, void, uncollectible, draft): a text quoting one names that invoice, not a typo of an
/// open one.
pub async fn closed_keys(
    conn: &mut PgConnection,
    tenant: &TenantId,
    keys: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<String> = sqlx::query_scalar(
        "select number_key from invoices
         where tenant_id = $1 and status not in ('open', 'partially_paid') and number_key = any($2)
         union
         select reference_key from invoices
         where tenant_id = $1 and status not in ('open', 'partially_paid') and reference_key = any($2)",
    )
    .bind(tenant.as_str())
    .bind(keys)
    .fetch_all(conn)
    .await?;
    Ok(found.into_iter().collect())
}

/// Open invoices whose number, payment reference or RF reference is one of `keys`.
pub async fn invoices_by_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    keys: &[String],
) -> Result<Vec<OpenInvoice>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "select {INVOICE_COLUMNS} from invoices
         where tenant_id = $1 and status in ('open', 'partially_paid') and number_key = any($2)
         union
         select {INVOICE_COLUMNS} from invoices
         where tenant_id = $1 and status in ('open', 'partially_paid') and reference_key = any($2)
         union
         select {INVOICE_COLUMNS} from invoices
         where tenant_id = $1 and status in ('open', 'partially_paid') and rf_key = any($2)"
    ))
    .bind(tenant.as_str())
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// Open invoices owing exactly one of the `(currency, amount)` pairs, at most [`PER_AMOUNT`] + 1
/// each (the extra one only says the group was cut).
pub async fn invoices_by_amount(
    conn: &mut PgConnection,
    tenant: &TenantId,
    amounts: &[(String, i64)],
) -> Result<Vec<OpenInvoice>, sqlx::Error> {
    if amounts.is_empty() {
        return Ok(Vec::new());
    }
    let (currencies, values): (Vec<&str>, Vec<i64>) = amounts.iter().map(|(c, a)| (c.as_str(), *a)).unzip();
    sqlx::query_as(&format!(
        "select i.* from unnest($2::text[], $3::int8[]) as a(currency, amount)
         cross join lateral (
             select {INVOICE_COLUMNS} from invoices
             where tenant_id = $1 and status in ('open', 'partially_paid') and currency = a.currency
               and amount_due = a.amount
             order by due_date nulls last, id limit $4) i"
    ))
    .bind(tenant.as_str())
    .bind(&currencies)
    .bind(&values)
    .bind(PER_AMOUNT + 1)
    .fetch_all(conn)
    .await
}

/// The open invoices of these customers, oldest due first, at most [`PER_CUSTOMER`] + 1 each (the
/// extra one only says the customer has more).
pub async fn invoices_of_customers(
    conn: &mut PgConnection,
    tenant: &TenantId,
    customers: &[String],
) -> Result<Vec<OpenInvoice>, sqlx::Error> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "select i.* from unnest($2::text[]) as c(id)
         cross join lateral (
             select {INVOICE_COLUMNS} from invoices
             where tenant_id = $1 and status in ('open', 'partially_paid') and customer_id = c.id
             order by due_date nulls last, id limit $3) i"
    ))
    .bind(tenant.as_str())
    .bind(customers)
    .bind(PER_CUSTOMER + 1)
    .fetch_all(conn)
    .await
}

/// Paid payouts no active match holds, of one of these `(currency, amount)` pairs.
pub async fn payouts_by_amount(
    conn: &mut PgConnection,
    tenant: &TenantId,
    amounts: &[(String, i64)],
) -> Result<Vec<OpenPayout>, sqlx::Error> {
    if amounts.is_empty() {
        return Ok(Vec::new());
    }
    let (currencies, values): (Vec<&str>, Vec<i64>) = amounts.iter().map(|(c, a)| (c.as_str(), *a)).unzip();
    sqlx::query_as(
        "select p.id, p.amount, p.currency, p.arrival_date, p.trace_id, p.statement_descriptor
         from stripe_payouts p
         join (select distinct * from unnest($2::text[], $3::int8[])) as a(currency, amount)
           on p.currency = a.currency and p.amount = a.amount
         where p.tenant_id = $1 and p.status = 'paid'
           and not exists (select 1 from reconciliation_allocations r
                           where r.tenant_id = p.tenant_id and r.target_type = 'stripe_payout'
                             and r.target_id = p.id and r.active)",
    )
    .bind(tenant.as_str())
    .bind(&currencies)
    .bind(&values)
    .fetch_all(conn)
    .await
}

/// The charges inside these payouts that name an invoice, or might in their description.
pub async fn payout_charges(
    conn: &mut PgConnection,
    tenant: &TenantId,
    payouts: &[String],
) -> Result<Vec<PayoutCharge>, sqlx::Error> {
    if payouts.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "select id, payout_id, amount - amount_refunded as amount, description,
                metadata ->> 'invoice_id' as invoice_id, metadata ->> 'invoice_number' as invoice_number
         from stripe_payments
         where tenant_id = $1 and payout_id = any($2) and status = 'succeeded' and amount > amount_refunded
         order by payout_id, id",
    )
    .bind(tenant.as_str())
    .bind(payouts)
    .fetch_all(conn)
    .await
}

/// Open invoices by id (those charges name).
pub async fn invoices_by_id(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> Result<Vec<OpenInvoice>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "select {INVOICE_COLUMNS} from invoices
         where tenant_id = $1 and status in ('open', 'partially_paid') and id = any($2)"
    ))
    .bind(tenant.as_str())
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The target keys a person rejected, per transaction.
pub async fn rejections(
    conn: &mut PgConnection,
    tenant: &TenantId,
    transactions: &[String],
) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        transaction_id: String,
        target_key: String,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select transaction_id, target_key from reconciliation_rejections where tenant_id = $1 and transaction_id = any($2)",
    )
    .bind(tenant.as_str())
    .bind(transactions)
    .fetch_all(conn)
    .await?;
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        by.entry(r.transaction_id).or_default().push(r.target_key);
    }
    Ok(by)
}
