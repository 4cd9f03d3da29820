//! The demo's side of the ledger: customers and open invoices that the sandbox bank's incoming
//! payments refer to, so reconciliation has something real to match. Some payments quote their
//! invoice exactly, some with a typo, some pay two invoices at once and some pay part of one; a
//! few invoices are not paid yet, and the payments the demo adds while it runs have invoices
//! waiting for them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use sqlx::PgPool;

use crate::{
    db::tenant::{begin_tenant, end_read},
    domain::ids::TenantId,
    invoices::{
        batch::{self, BatchResult},
        customer::NewCustomer,
        invoice::NewInvoice,
    },
};

/// Where demo customers and invoices come from: re-running the demo updates them in place.
const SOURCE: &str = "demo";

/// A credit on a demo account, as the plan reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub counterparty: String,
    pub description: String,
    /// Minor units, positive.
    pub amount: i64,
    pub currency: String,
    pub booking_date: NaiveDate,
}

/// The `n`th payment the running demo adds, from "Acme Widgets Ltd" (every third is a card
/// payment out instead, and has no invoice): its amount in minor units and its remittance text.
pub fn arrival(n: u64) -> Option<(i64, String)> {
    if n.is_multiple_of(3) {
        return None;
    }
    let cents = i64::try_from((100 + n * 17 % 900) * 100 + n % 100).unwrap_or(i64::MAX);
    Some((cents, format!("Payment INV-2026-{:04}", 100 + n)))
}

/// The invoice number a remittance text quotes (`INV-2026-0104`, any case), if it quotes one.
fn quoted_number(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let start = upper.find("INV-")?;
    let candidate: String = upper[start..].chars().take(13).collect();
    let shaped = candidate.len() == 13
        && candidate[4..8].chars().all(|c| c.is_ascii_digit())
        && &candidate[8..9] == "-"
        && candidate[9..].chars().all(|c| c.is_ascii_digit());
    shaped.then_some(candidate)
}

/// `number` with its last two digits swapped: the typo a payer makes (`…0104` quoted as `…0140`).
fn swapped(number: &str) -> Option<String> {
    let mut chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    (chars[n - 1] != chars[n - 2]).then(|| {
        chars.swap(n - 1, n - 2);
        chars.into_iter().collect()
    })
}

/// The next number after `number` (`…0104` → `…0105`), for a second invoice paid together.
fn next_number(number: &str) -> Option<String> {
    let (prefix, digits) = number.split_at(number.len() - 4);
    let next: u32 = digits.parse::<u32>().ok()? + 1;
    (next < 10_000).then(|| format!("{prefix}{next:04}"))
}

/// An external id for a customer name: lowercase, dashes.
fn slug(name: &str) -> String {
    name.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The invoices planned so far, each number once.
#[derive(Default)]
struct Book {
    taken: BTreeSet<String>,
    invoices: Vec<NewInvoice>,
}

impl Book {
    fn free(&self, number: &str) -> bool {
        !self.taken.contains(number)
    }

    /// Plans an invoice for the customer with external id `customer`, unless `number` is taken.
    fn add(&mut self, number: String, customer: String, currency: &str, total: i64, issued: NaiveDate) -> bool {
        if !self.taken.insert(number.clone()) {
            return false;
        }
        self.invoices.push(NewInvoice {
            source: Some(SOURCE.to_owned()),
            external_id: Some(number.clone()),
            payment_reference: Some(number.clone()),
            number,
            currency: currency.to_owned(),
            amount_total: total,
            issue_date: Some(issued),
            due_date: issued.checked_add_days(Days::new(30)),
            customer: Some(Box::new(NewCustomer { external_id: Some(customer), ..NewCustomer::default() })),
            ..NewInvoice::default()
        });
        true
    }
}

/// Customers and invoices for `credits` (and the payments still to arrive), by scenario in turn:
/// three quoted exactly, then one quoted with a typo, one paying two invoices, one paying part.
pub fn plan(credits: &[Credit], arrivals: u64, today: NaiveDate) -> (Vec<NewCustomer>, Vec<NewInvoice>) {
    let mut customers: BTreeMap<String, NewCustomer> = BTreeMap::new();
    let mut customer = |name: &str| {
        let external_id = slug(name);
        customers.entry(external_id.clone()).or_insert_with(|| NewCustomer {
            name: name.to_owned(),
            email: Some(format!("accounts@{external_id}.example")),
            source: Some(SOURCE.to_owned()),
            external_id: Some(external_id.clone()),
            aliases: vec![name.to_ascii_uppercase()],
            ..NewCustomer::default()
        });
        external_id
    };
    let mut book = Book::default();
    let mut scenario = 0;
    for credit in credits {
        let Some(quoted) = quoted_number(&credit.description) else { continue };
        let payer = customer(&credit.counterparty);
        let issued = credit.booking_date.checked_sub_days(Days::new(14)).unwrap_or(credit.booking_date);
        let (currency, amount) = (credit.currency.as_str(), credit.amount);
        let made = match scenario % 6 {
            3 => swapped(&quoted).is_some_and(|number| book.add(number, payer, currency, amount, issued)),
            4 => match next_number(&quoted) {
                Some(second) if book.free(&quoted) && book.free(&second) => {
                    let first_part = amount * 3 / 5;
                    book.add(quoted, payer.clone(), currency, first_part, issued)
                        && book.add(second, payer, currency, amount - first_part, issued)
                }
                _ => false,
            },
            5 => book.add(quoted, payer, currency, amount + amount / 2, issued),
            _ => book.add(quoted, payer, currency, amount, issued),
        };
        if made {
            scenario += 1;
        }
    }
    // The payments the demo adds while it runs, and a few that nothing pays yet.
    let acme = customer("Acme Widgets Ltd");
    for n in 1..=arrivals {
        if let Some((cents, remittance)) = arrival(n)
            && let Some(number) = quoted_number(&remittance)
        {
            book.add(number, acme.clone(), "GBP", cents, today);
        }
    }
    for (n, name) in ["Northwind Traders", "Globex UK", "Initech Ltd"].iter().enumerate() {
        let owner = customer(name);
        book.add(format!("INV-2027-{:04}", 9001 + n), owner, "GBP", 125_000 * (n as i64 + 1), today);
    }
    // The customer objects themselves are upserted first, in full; invoices refer to them by
    // external id only, so fill in their names for the inline upsert.
    let mut invoices = book.invoices;
    for invoice in &mut invoices {
        if let Some(inline) = invoice.customer.as_mut()
            && let Some(full) = inline.external_id.as_ref().and_then(|id| customers.get(id))
        {
            **inline = full.clone();
        }
    }
    (customers.into_values().collect(), invoices)
}

/// Creates (or, on a re-run, updates) the demo's customers and invoices from the tenant's synced
/// credits; returns the invoice batch's result.
pub async fn seed(db: &PgPool, tenant: &TenantId, arrivals: u64) -> anyhow::Result<BatchResult> {
    #[derive(sqlx::FromRow)]
    struct Row {
        counterparty_name: Option<String>,
        description: Option<String>,
        amount: i64,
        currency: String,
        booking_date: Option<NaiveDate>,
    }
    let mut tx = begin_tenant(db, tenant).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "select counterparty_name, description, amount, currency, booking_date from transactions
         where tenant_id = $1 and amount > 0 and status = 'booked' and description ilike '%inv-%'
         order by booking_date, id",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    let credits: Vec<Credit> = rows
        .into_iter()
        .filter_map(|row| {
            Some(Credit {
                counterparty: row.counterparty_name?,
                description: row.description?,
                amount: row.amount,
                currency: row.currency,
                booking_date: row.booking_date?,
            })
        })
        .collect();
    let (customers, invoices) = plan(&credits, arrivals, chrono::Utc::now().date_naive());
    let mut tx = begin_tenant(db, tenant).await?;
    if !customers.is_empty() {
        batch::upsert_customers(&mut tx, tenant, customers).await?;
    }
    let result = batch::upsert_invoices(&mut tx, tenant, invoices).await?;
    // The payments they refer to may have arrived already: the engine looks at them again.
    crate::reconciliation::runs::invoices_changed(&mut tx, tenant, &result.written_ids()).await?;
    tx.commit().await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(counterparty: &str, description: &str, amount: i64) -> Credit {
        Credit {
            counterparty: counterparty.into(),
            description: description.into(),
            amount,
            currency: "GBP".into(),
            booking_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        }
    }

    #[test]
    fn invoice_numbers_are_read_from_remittance_text_in_any_case() {
        assert_eq!(quoted_number("Payment INV-2026-0104").as_deref(), Some("INV-2026-0104"));
        assert_eq!(quoted_number("Ref 4411 inv inv-2026-0007").as_deref(), Some("INV-2026-0007"));
        assert_eq!(quoted_number("INV-2026-01 thanks"), None);
        assert_eq!(quoted_number("Card payment Tesco"), None);
        assert_eq!(swapped("INV-2026-0104").as_deref(), Some("INV-2026-0140"));
        assert_eq!(swapped("INV-2026-0100"), None);
        assert_eq!(next_number("INV-2026-0104").as_deref(), Some("INV-2026-0105"));
    }

    #[test]
    fn the_plan_covers_exact_typo_split_and_partial_payments() {
        let credits: Vec<Credit> = (0..6)
            .map(|n| credit("Globex UK", &format!("Payment INV-2026-{:04}", 110 + n * 10), 10_000 + n as i64))
            .chain([credit("Globex UK", "Payment INV-2026-0110", 1)]) // quoted again: no second invoice
            .collect();
        let today = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let (customers, invoices) = plan(&credits, 4, today);
        let by_number: BTreeMap<&str, i64> = invoices.iter().map(|i| (i.number.as_str(), i.amount_total)).collect();
        // Exact: number and amount as paid.
        assert_eq!(by_number["INV-2026-0110"], 10_000);
        assert_eq!(by_number["INV-2026-0130"], 10_002);
        // A typo: the payment quotes …0140, the invoice is …0104.
        assert_eq!(by_number["INV-2026-0104"], 10_003);
        assert!(!by_number.contains_key("INV-2026-0140"));
        // Two invoices paid together add up to the payment.
        assert_eq!(by_number["INV-2026-0150"] + by_number["INV-2026-0151"], 10_004);
        // A part payment: the invoice is half as much again.
        assert_eq!(by_number["INV-2026-0160"], 10_005 + 5_002);
        // Arrivals 1, 2 and 4 (3 is a card payment out), and three unpaid invoices.
        assert_eq!(by_number["INV-2026-0101"], arrival(1).unwrap().0);
        assert!(by_number.contains_key("INV-2026-0102") && by_number.contains_key("INV-2026-0104"));
        assert!(by_number.contains_key("INV-2027-9003"));
        let names: Vec<&str> = customers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["Acme Widgets Ltd", "Globex UK", "Initech Ltd", "Northwind Traders"]);
        // Every invoice checks, and names its customer inline in full.
        for invoice in invoices {
            assert_eq!(invoice.customer.as_ref().unwrap().source.as_deref(), Some("demo"));
            invoice.clone().check().unwrap_or_else(|e| panic!("{}: {e:?}", invoice.number));
        }
    }
}
