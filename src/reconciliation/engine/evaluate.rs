//! What the engine makes of one credit, given what might pay it: the tenant's rules first (an
//! exclusion, a customer, a preferred kind of counterpart), then every candidate scored, then the
//! auto-match rule. Pure: the candidates come in, a verdict goes out, with the match each
//! candidate would make.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use super::candidates::{Credit, Customer, Customers, OpenInvoice, OpenPayout, PER_AMOUNT, PER_CUSTOMER, PayoutCharge};
use crate::domain::ids::TenantId;
use crate::reconciliation::{
    matches::{AdjustmentKind, NewAdjustment, NewAllocation, NewMatch, TargetType},
    rules::{CompiledRules, RuleAction, RulePreference, RuleSubject},
    scoring::{
        self, CustomerFacts, Decision, InvoiceFacts, PayoutFacts, Rivals, Scored, Seen, Target, Tuning, TxFacts,
        quotes_exactly_seen, score_invoice_among, score_invoice_set, score_payout, score_sole_quoted_set, subset_sums,
    },
    text,
};

/// What might pay a batch's credits, by id.
#[derive(Debug, Default)]
pub struct Pool {
    pub invoices: HashMap<String, OpenInvoice>,
    pub by_key: HashMap<String, Vec<String>>,
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
        self.add_invoices(kept);
    }

    /// Adds what `candidates::invoices_of_customers` found for `customers`, the same way with
    /// [`PER_CUSTOMER`].
    pub fn add_customer_groups(&mut self, customers: &[String], invoices: Vec<OpenInvoice>) {
        let (kept, complete) = capped(customers, invoices, |i| i.customer_id.clone().unwrap_or_default(), PER_CUSTOMER);
        self.complete_customers.extend(complete);
        self.add_invoices(kept);
    }

    pub fn add_invoices(&mut self, invoices: Vec<OpenInvoice>) {
        for i in invoices {
            if self.invoices.contains_key(&i.id) {
                continue;
            }
            for key in [&i.number_key, &i.reference_key, &i.rf_key].into_iter().flatten() {
                self.by_key.entry(key.clone()).or_default().push(i.id.clone());
            }
            self.by_amount.entry((i.currency.clone(), i.amount_due)).or_default().push(i.id.clone());
            if let Some(c) = &i.customer_id {
                self.by_customer.entry(c.clone()).or_default().push(i.id.clone());
            }
            self.invoices.insert(i.id.clone(), i);
        }
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

/// A candidate, scored, with the match it would make.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub scored: Scored,
    pub proposal: NewMatch,
}

/// The engine's verdict on one credit.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Certain: match it.
    Auto(Candidate),
    /// For a person: ranked, best first.
    Suggest(Vec<Candidate>),
    /// Nothing plausible.
    Nothing,
}

/// The customer a credit's rules assign, and the kind of counterpart they prefer.
pub struct RuleHints {
    pub customer_id: Option<String>,
    pub prefer: Option<RulePreference>,
}

/// Applies the tenant's first matching rule to the credit.
pub fn apply_rules(rules: &CompiledRules, credit: &Credit) -> Result<RuleHints, String> {
    let subject = RuleSubject {
        description: credit.description.as_deref(),
        counterparty_name: credit.counterparty_name.as_deref(),
        reference: credit.reference.as_deref(),
        counterparty_account: credit.counterparty_account.as_deref(),
        amount: credit.amount,
    };
    let mut hints = RuleHints { customer_id: credit.customer_id.clone(), prefer: None };
    if let Some(rule) = rules.first_match(&subject) {
        match rule.action {
            RuleAction::Exclude => return Err(rule.name.clone()),
            RuleAction::AssignCustomer => hints.customer_id = rule.customer_id.clone(),
            RuleAction::Prefer => hints.prefer = rule.prefer,
        }
    }
    Ok(hints)
}

/// The customers the credit may come from: by bank account, by the rule's assignment, and by a
/// name similar enough to theirs.
pub fn likely_customers<'c>(credit: &Credit, hints: &RuleHints, customers: &'c Customers) -> Vec<&'c Customer> {
    let mut found: Vec<&Customer> = Vec::new();
    let mut push = |c: &'c Customer| {
        if !found.iter().any(|f| f.id == c.id) {
            found.push(c);
        }
    };
    if let Some(account) = &credit.counterparty_account {
        for id in customers.by_account(account) {
            if let Some(c) = customers.by_id.get(id) {
                push(c);
            }
        }
    }
    if let Some(c) = hints.customer_id.as_ref().and_then(|id| customers.by_id.get(id)) {
        push(c);
    }
    if let Some(name) = &credit.counterparty_name {
        let payer = text::NormalizedName::new(name);
        for c in customers.sharing_a_word(&payer) {
            let best = c.normalized.iter().map(|n| payer.similarity(n)).fold(0.0, f64::max);
            if best >= NAME_CUSTOMER {
                push(c);
            }
        }
    }
    found
}

/// How similar a payer's name must be to a customer's for the customer's open invoices to be
/// considered on that ground alone.
const NAME_CUSTOMER: f64 = 0.85;

/// Scores everything that might pay `credit` and decides.
pub fn evaluate(
    credit: &Credit,
    hints: &RuleHints,
    likely: &[&Customer],
    pool: &Pool,
    customers: &Customers,
    rejected: &[String],
    tuning: &Tuning,
) -> Verdict {
    let text = credit.text();
    let seen = Seen::new(&text, credit.counterparty_name.as_deref());
    let tx = TxFacts {
        amount: credit.amount,
        currency: &credit.currency,
        date: credit.date,
        text: &text,
        counterparty_name: credit.counterparty_name.as_deref(),
        counterparty_account: credit.counterparty_account.as_deref(),
        customer_id: hints.customer_id.as_deref(),
        seen: Some(&seen),
    };
    // Invoices the text names exactly, owe exactly the credit, or belong to the likely payers: a
    // reference one typo away is found by scoring among the last two.
    let mut ids: Vec<&String> = Vec::new();
    let mut names_a_closed_invoice = false;
    for key in text::candidate_keys(&text).iter().chain(&seen.rfs) {
        ids.extend(pool.by_key.get(key).into_iter().flatten());
        names_a_closed_invoice |= pool.closed_keys.contains(key);
    }
    let quoted: Vec<&OpenInvoice> =
        ids.iter().map(|id| &pool.invoices[id.as_str()]).filter(|i| quotes_exactly_seen(&seen, &facts(i))).collect();
    let amount = (credit.currency.clone(), credit.amount);
    let owing: Vec<&String> = pool.by_amount.get(&amount).into_iter().flatten().collect();
    ids.extend(&owing);
    for c in likely {
        ids.extend(pool.by_customer.get(&c.id).into_iter().flatten());
    }
    ids.sort();
    ids.dedup();

    let owing_the_credit: Option<Vec<InvoiceFacts>> = pool
        .complete_amounts
        .contains(&amount)
        .then(|| owing.iter().map(|id| facts(&pool.invoices[id.as_str()])).collect());
    let quoted_in_full: Vec<String> = quoted
        .iter()
        .filter(|i| i.currency == credit.currency && i.amount_due == credit.amount)
        .flat_map(|i| [&i.number_key, &i.reference_key, &i.rf_key])
        .flatten()
        .cloned()
        .collect();
    let rivals = Rivals {
        owing_the_credit: owing_the_credit.as_deref(),
        // An invoice paid already counts too: paying it twice is no typo of its neighbour's number.
        quotes_an_invoice: !quoted.is_empty() || names_a_closed_invoice,
        quoted_in_full: &quoted_in_full,
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    for id in &ids {
        let invoice = &pool.invoices[id.as_str()];
        let customer = invoice.customer_id.as_ref().and_then(|c| customers.by_id.get(c)).map(customer_facts);
        if let Some(scored) = score_invoice_among(&tx, &facts(invoice), customer.as_ref(), &rivals, tuning) {
            let proposal = invoice_proposal(credit, &[invoice], tuning);
            candidates.push(Candidate { scored, proposal });
        }
    }
    // One credit paying several of one customer's invoices: the only set holding an invoice the
    // text quotes, when all the customer's open invoices are known and the text quotes none of
    // anyone else's; then the sets the amounts make.
    for c in likely {
        let all: Vec<&OpenInvoice> =
            pool.by_customer.get(&c.id).into_iter().flatten().map(|id| &pool.invoices[id]).collect();
        let mut sole = None;
        let quoted_elsewhere = quoted.iter().any(|i| i.customer_id.as_ref() != Some(&c.id));
        if !quoted.is_empty() && !quoted_elsewhere && pool.complete_customers.contains(&c.id) {
            let all_facts: Vec<InvoiceFacts> = all.iter().map(|i| facts(i)).collect();
            if let Some((set, scored)) = score_sole_quoted_set(&tx, &all_facts, Some(&customer_facts(c)), tuning) {
                let chosen: Vec<&OpenInvoice> = set.iter().map(|&k| all[k]).collect();
                sole = Some(scored.target.clone());
                candidates.push(Candidate { scored, proposal: invoice_proposal(credit, &chosen, tuning) });
            }
        }
        let open: Vec<&OpenInvoice> =
            all.into_iter().filter(|i| i.currency == credit.currency && i.amount_due < credit.amount).collect();
        if open.len() < 2 {
            continue;
        }
        let dues: Vec<i64> = open.iter().map(|i| i.amount_due).collect();
        let slack = tolerance(credit.amount, tuning);
        for set in subset_sums(credit.amount, &dues, slack, 3) {
            let chosen: Vec<&OpenInvoice> = set.iter().map(|&k| open[k]).collect();
            let set_facts: Vec<InvoiceFacts> = chosen.iter().map(|i| facts(i)).collect();
            let refs: Vec<&InvoiceFacts> = set_facts.iter().collect();
            if let Some(scored) = score_invoice_set(&tx, &refs, Some(&customer_facts(c)), tuning)
                .filter(|scored| sole.as_ref() != Some(&scored.target))
            {
                candidates.push(Candidate { scored, proposal: invoice_proposal(credit, &chosen, tuning) });
            }
        }
    }
    for payout in &pool.payouts {
        if payout.currency != credit.currency || payout.amount != credit.amount {
            continue;
        }
        let p = PayoutFacts {
            id: &payout.id,
            net: payout.amount,
            currency: &payout.currency,
            arrival_date: payout.arrival_date,
            trace_id: payout.trace_id.as_deref(),
            statement_descriptor: payout.statement_descriptor.as_deref(),
        };
        if let Some(scored) = score_payout(&tx, &p, tuning) {
            candidates.push(Candidate { scored, proposal: payout_proposal(credit, payout, pool) });
        }
    }
    if let Some(prefer) = hints.prefer {
        let preferred = |c: &Candidate| match prefer {
            RulePreference::Invoice => matches!(c.scored.target, Target::Invoices(_)),
            RulePreference::StripePayout => matches!(c.scored.target, Target::Payout(_)),
        };
        if candidates.iter().any(preferred) {
            candidates.retain(preferred);
        }
    }
    let scored: Vec<Scored> = candidates.iter().map(|c| c.scored.clone()).collect();
    match scoring::decide(&scored, rejected, tuning) {
        Decision::AutoMatch(i) => Verdict::Auto(candidates.swap_remove(i)),
        Decision::Suggest(ranked) => Verdict::Suggest(ranked.into_iter().map(|i| candidates[i].clone()).collect()),
        Decision::Nothing => Verdict::Nothing,
    }
}

fn facts(i: &OpenInvoice) -> InvoiceFacts<'_> {
    InvoiceFacts {
        id: &i.id,
        number: &i.number,
        payment_reference: i.payment_reference.as_deref(),
        rf_reference: i.rf_reference.as_deref(),
        customer_id: i.customer_id.as_deref(),
        currency: &i.currency,
        amount_due: i.amount_due,
        issue_date: i.issue_date,
        due_date: i.due_date,
    }
}

fn customer_facts(c: &Customer) -> CustomerFacts<'_> {
    CustomerFacts {
        id: &c.id,
        name: &c.name,
        aliases: &c.aliases,
        account_keys: &c.account_keys,
        normalized: Some(&c.normalized),
    }
}

/// The difference still counted as the amount: the larger of the fixed and the relative one.
fn tolerance(amount: i64, tuning: &Tuning) -> i64 {
    tuning.amount_tolerance.max(amount.saturating_mul(tuning.amount_tolerance_permille) / 1000)
}

/// The match a credit paying these invoices makes. The credit pays them in order of due date;
/// what it lacks is a short payment when within tolerance (else the last invoice is paid in
/// part), and what it has over is an overpayment.
fn invoice_proposal(credit: &Credit, invoices: &[&OpenInvoice], tuning: &Tuning) -> NewMatch {
    let mut ordered = invoices.to_vec();
    ordered.sort_by(|a, b| a.due_date.cmp(&b.due_date).then_with(|| a.id.cmp(&b.id)));
    let due: i64 = ordered.iter().map(|i| i.amount_due).sum();
    let mut allocations = Vec::new();
    let mut adjustments = Vec::new();
    let short = due - credit.amount;
    let mut left = credit.amount;
    for (k, invoice) in ordered.iter().enumerate() {
        let last = k + 1 == ordered.len();
        // Paid in full: a short payment within tolerance (written off), or an overpayment (the
        // last invoice takes its due, the rest is booked). Otherwise what is left of the credit.
        let in_full = (short > 0 && short <= tolerance(credit.amount, tuning)) || (last && short < 0);
        let amount = if in_full { invoice.amount_due } else { invoice.amount_due.min(left) };
        if amount <= 0 {
            continue;
        }
        left -= amount;
        allocations.push(allocation(TargetType::Invoice, &invoice.id, Some(amount)));
    }
    let allocated: i64 = allocations.iter().filter_map(|a| a.amount).sum();
    let difference = credit.amount - allocated;
    if difference != 0 {
        let kind = if difference > 0 { AdjustmentKind::Overpayment } else { AdjustmentKind::ShortPayment };
        adjustments.push(NewAdjustment {
            kind,
            amount: difference,
            currency: Some(credit.currency.clone()),
            description: Some(match kind {
                AdjustmentKind::Overpayment => "Paid more than was due".into(),
                _ => "Short payment within the tenant's tolerance, written off".into(),
            }),
        });
    }
    NewMatch {
        transaction_ids: vec![credit.id.clone()],
        allocations,
        adjustments,
        note: None,
        metadata: BTreeMap::new(),
    }
}

/// The match a credit that is a payout makes: the payout at its gross (its refunds, fees and
/// adjustments booked as `stripe_*` adjustments by the match), and every invoice its charges
/// name, paid through it.
fn payout_proposal(credit: &Credit, payout: &OpenPayout, pool: &Pool) -> NewMatch {
    let mut allocations = vec![allocation(TargetType::StripePayout, &payout.id, None)];
    let mut paid: HashMap<&str, i64> = HashMap::new();
    for charge in pool.charges.get(&payout.id).into_iter().flatten() {
        let Some(invoice) = charge_invoice(charge, pool) else { continue };
        let left = invoice.amount_due - paid.get(invoice.id.as_str()).copied().unwrap_or(0);
        let amount = charge.amount.min(left);
        if amount <= 0 || invoice.currency != payout.currency {
            continue;
        }
        *paid.entry(&invoice.id).or_default() += amount;
        allocations.push(NewAllocation {
            target_type: TargetType::Invoice,
            target_id: invoice.id.clone(),
            amount: Some(amount),
            via_payout_id: Some(payout.id.clone()),
            via_payment_id: Some(charge.id.clone()),
        });
    }
    NewMatch {
        transaction_ids: vec![credit.id.clone()],
        allocations,
        adjustments: Vec::new(),
        note: None,
        metadata: BTreeMap::new(),
    }
}

/// The open invoice a charge names: its metadata `invoice_id`, else `invoice_number`, else an
/// invoice number in its description.
pub fn charge_invoice<'p>(charge: &PayoutCharge, pool: &'p Pool) -> Option<&'p OpenInvoice> {
    if let Some(invoice) = charge.invoice_id.as_ref().and_then(|id| pool.invoices.get(id)) {
        return Some(invoice);
    }
    let mut keys: Vec<String> = charge.invoice_number.iter().map(|n| text::ref_key(n)).collect();
    keys.extend(charge.description.iter().flat_map(|d| text::candidate_keys(d)));
    keys.iter()
        .flat_map(|k| pool.by_key.get(k).into_iter().flatten())
        .filter_map(|id| pool.invoices.get(id))
        .find(|i| i.number_key.as_deref().is_some_and(|n| keys.iter().any(|k| k == n)))
}

fn allocation(target_type: TargetType, id: &str, amount: Option<i64>) -> NewAllocation {
    NewAllocation { target_type, target_id: id.to_owned(), amount, via_payout_id: None, via_payment_id: None }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
