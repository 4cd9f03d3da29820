//! What might pay a batch's credits, gathered once for the batch (`engine::gather`) and read by
//! every credit's evaluation: open invoices by id, reference key, amount due and customer; open
//! payouts and their charges; the customers; and which groups a cap left incomplete.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::candidates::{Customers, OpenInvoice, OpenPayout, PER_AMOUNT, PER_CUSTOMER, PayoutCharge};
use crate::domain::ids::TenantId;

/// What might pay a batch's credits, by id.
#[derive(Debug, Default)]
pub struct Pool {
    pub invoices: HashMap<String, OpenInvoice>,
    pub by_key: HashMap<String, Vec<String>>,
    /// What the amount lookups brought ([`Pool::add_amount_groups`]), by `(currency, amount due)`,
    /// and the customer lookups ([`Pool::add_customer_groups`]), by customer: never invoices of
    /// that amount or customer that came in another way (for another credit of the batch), so a
    /// credit meets the same rivals whichever batch it is in, and a common amount does not bring
    /// every such invoice of the batch to each credit owing it.
    pub by_amount: HashMap<(String, i64), Vec<String>>,
    pub by_customer: HashMap<String, Vec<String>>,
    pub payouts: Vec<OpenPayout>,
    /// Charges inside those payouts, by payout.
    pub charges: HashMap<String, Vec<PayoutCharge>>,
    /// Who may have paid, and the invoices' customers.
    pub customers: Customers,
    /// Keys in the batch's texts that name an invoice no longer open (`candidates::closed_keys`).
    pub closed_keys: HashSet<String>,
    /// The `(currency, amount due)` groups and the customers whose open invoices are *all* in
    /// the pool. Evidence that rests on "no other open invoice" (a typo'd reference, the only set
    /// a credit can pay) holds only for these: for the others a cap left some out.
    pub complete_amounts: HashSet<(String, i64)>,
    pub complete_customers: HashSet<String>,
}

impl Pool {
    /// Loads the customers of the pool's invoices that are not loaded yet.
    pub async fn add_customers(&mut self, conn: &mut sqlx::PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
        let ids: Vec<&str> = self.invoices.values().filter_map(|i| i.customer_id.as_deref()).collect();
        self.customers.add(conn, tenant, &ids).await
    }

    /// Adds what `candidates::invoices_by_amount` found for `amounts`: it asks for one more than
    /// [`PER_AMOUNT`] of each, so an amount that brings more is cut to [`PER_AMOUNT`] (the first
    /// that came) and known incomplete; the others are complete.
    pub fn add_amount_groups(&mut self, amounts: &[(String, i64)], invoices: Vec<OpenInvoice>) {
        let (kept, complete) = capped(amounts, invoices, |i| (i.currency.clone(), i.amount_due), PER_AMOUNT);
        self.complete_amounts.extend(complete);
        for i in &kept {
            index(&mut self.by_amount, (i.currency.clone(), i.amount_due), &i.id);
        }
        self.add_invoices(kept);
    }

    /// Adds what `candidates::invoices_of_customers` found for `customers`, the same way with
    /// [`PER_CUSTOMER`].
    pub fn add_customer_groups(&mut self, customers: &[String], invoices: Vec<OpenInvoice>) {
        let (kept, complete) = capped(customers, invoices, |i| i.customer_id.clone().unwrap_or_default(), PER_CUSTOMER);
        self.complete_customers.extend(complete);
        for i in &kept {
            index(&mut self.by_customer, i.customer_id.clone().unwrap_or_default(), &i.id);
        }
        self.add_invoices(kept);
    }

    /// Adds invoices to be found by their amount due and their customer as well: those a
    /// simulation puts back as if still open.
    pub fn add_restored(&mut self, invoices: Vec<OpenInvoice>) {
        for i in &invoices {
            index(&mut self.by_amount, (i.currency.clone(), i.amount_due), &i.id);
            if let Some(c) = &i.customer_id {
                index(&mut self.by_customer, c.clone(), &i.id);
            }
        }
        self.add_invoices(invoices);
    }

    /// Adds invoices (found by key, by id, or in a group above), indexed by their keys.
    pub fn add_invoices(&mut self, invoices: Vec<OpenInvoice>) {
        for i in invoices {
            if self.invoices.contains_key(&i.id) {
                continue;
            }
            for key in [&i.number_key, &i.reference_key, &i.rf_key].into_iter().flatten() {
                self.by_key.entry(key.clone()).or_default().push(i.id.clone());
            }
            self.invoices.insert(i.id.clone(), i);
        }
    }
}

/// Files `id` under `group`, once.
fn index<K: Eq + Hash>(by: &mut HashMap<K, Vec<String>>, group: K, id: &str) {
    let ids = by.entry(group).or_default();
    if !ids.iter().any(|i| i == id) {
        ids.push(id.to_owned());
    }
}

/// At most `cap` of `invoices` per group (the first, in the order given) and the groups asked
/// for that the cap did not cut: those that brought `cap` or fewer.
fn capped<K: Eq + Hash + Clone>(
    asked: &[K],
    invoices: Vec<OpenInvoice>,
    group: impl Fn(&OpenInvoice) -> K,
    cap: i64,
) -> (Vec<OpenInvoice>, HashSet<K>) {
    let cap = usize::try_from(cap).unwrap_or(0);
    let mut counts: HashMap<K, usize> = HashMap::new();
    let mut kept = Vec::with_capacity(invoices.len());
    for invoice in invoices {
        let count = counts.entry(group(&invoice)).or_default();
        *count += 1;
        if *count <= cap {
            kept.push(invoice);
        }
    }
    let complete = asked.iter().filter(|k| counts.get(*k).is_none_or(|&n| n <= cap)).cloned().collect();
    (kept, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::text;

    fn open(id: &str, customer: &str, amount_due: i64) -> OpenInvoice {
        OpenInvoice {
            id: id.into(),
            number: id.to_uppercase(),
            number_key: Some(text::ref_key(id)),
            payment_reference: None,
            reference_key: None,
            rf_reference: None,
            rf_key: None,
            customer_id: Some(customer.into()),
            currency: "EUR".into(),
            amount_due,
            issue_date: None,
            due_date: None,
        }
    }

    #[test]
    fn an_amount_group_the_cap_cut_is_kept_to_the_cap_and_known_incomplete() {
        let cap = usize::try_from(PER_AMOUNT).unwrap();
        let mut found: Vec<OpenInvoice> = (0..=cap).map(|n| open(&format!("inv_s{n:02}"), "cus_a", 4_900)).collect();
        found.push(open("inv_x", "cus_b", 12_345));
        let asked = [("EUR".to_owned(), 4_900), ("EUR".to_owned(), 12_345), ("EUR".to_owned(), 777)];
        let mut pool = Pool::default();
        pool.add_amount_groups(&asked, found);
        assert_eq!(pool.by_amount[&asked[0]].len(), cap, "the extra one only told the group was cut");
        assert!(!pool.invoices.contains_key(&format!("inv_s{cap:02}")));
        assert!(!pool.complete_amounts.contains(&asked[0]));
        assert!(pool.complete_amounts.contains(&asked[1]));
        assert!(pool.complete_amounts.contains(&asked[2]), "none owes it: complete, and empty");
    }

    #[test]
    fn a_customer_with_more_open_invoices_than_the_cap_is_known_incomplete() {
        let cap = usize::try_from(PER_CUSTOMER).unwrap();
        let mut found: Vec<OpenInvoice> =
            (0..=cap).map(|n| open(&format!("inv_a{n:02}"), "cus_a", 100 + n as i64)).collect();
        found.extend((0..cap).map(|n| open(&format!("inv_b{n:02}"), "cus_b", 100 + n as i64)));
        let mut pool = Pool::default();
        pool.add_customer_groups(&["cus_a".to_owned(), "cus_b".to_owned()], found);
        assert_eq!((pool.by_customer["cus_a"].len(), pool.by_customer["cus_b"].len()), (cap, cap));
        assert!(!pool.complete_customers.contains("cus_a"));
        assert!(pool.complete_customers.contains("cus_b"), "exactly the cap is all of them");
    }

    #[test]
    fn an_invoice_another_credit_brought_in_is_no_rival_by_amount_or_customer() {
        let mut pool = Pool::default();
        pool.add_invoices(vec![open("inv_quoted", "cus_a", 4_900)]);
        let amount = ("EUR".to_owned(), 4_900);
        pool.add_amount_groups(std::slice::from_ref(&amount), vec![open("inv_owing", "cus_b", 4_900)]);
        pool.add_customer_groups(&["cus_c".to_owned()], vec![open("inv_c", "cus_c", 4_900)]);
        assert_eq!(pool.by_amount[&amount], ["inv_owing"], "what the amount lookup brought, no more");
        assert!(!pool.by_customer.contains_key("cus_a"), "cus_a was not looked up");
        assert_eq!(pool.by_key[&text::ref_key("inv_quoted")], ["inv_quoted"]);
        pool.add_restored(vec![open("inv_back", "cus_a", 4_900)]);
        assert_eq!(pool.by_amount[&amount], ["inv_owing", "inv_back"]);
        assert_eq!(pool.by_customer["cus_a"], ["inv_back"]);
    }
}
