//! What the engine makes of one credit, given what might pay it: the tenant's rules first (an
//! exclusion, a customer, a preferred kind of counterpart), then every candidate scored, then the
//! auto-match rule. Pure: a credit read once ([`Reading`]) and what might pay it come in, a
//! verdict goes out, with the match drawn up for each candidate it keeps ([`super::proposal`]).

use std::collections::HashMap;

use super::{
    candidates::{Credit, Customer, Customers, OpenInvoice, OpenPayout},
    pool::Pool,
    proposal::{invoice_proposal, payout_proposal, tolerance},
};
use crate::reconciliation::{
    matches::NewMatch,
    rules::{CompiledRules, RuleAction, RulePreference, RuleSubject},
    scoring::{
        self, CustomerFacts, Decision, InvoiceFacts, PayoutFacts, Rivals, Scored, Seen, Target, Tuning, TxFacts,
        quotes_exactly_seen, score_invoice_among, score_invoice_set, score_payout, score_sole_quoted_set, subset_sums,
    },
};

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

/// A claimed credit as the engine reads it, once: the hints of the tenant's rules, its text, what
/// the text quotes, and (filled by `engine::gather` once the batch's customers are known) who
/// may have paid it.
pub struct Reading {
    pub credit: Credit,
    pub hints: RuleHints,
    /// Description and reference ([`Credit::text`]).
    pub text: String,
    /// The text tokenised, its reference keys and RF references, the payer's name normalised.
    pub seen: Seen,
    /// Ids of the customers the credit may come from ([`likely_customers`]).
    pub likely: Vec<String>,
}

impl Reading {
    pub fn new(credit: Credit, hints: RuleHints) -> Self {
        let text = credit.text();
        let seen = Seen::new(&text, credit.counterparty_name.as_deref());
        Self { credit, hints, text, seen, likely: Vec::new() }
    }

    /// Every key the text may quote an invoice by: reference keys, then RF references.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.seen.keys.iter().chain(&self.seen.rfs)
    }
}

/// What a scored candidate would pay, to draw its match up from when it is kept.
enum Plan<'p> {
    Invoices(Vec<&'p OpenInvoice>),
    Payout(&'p OpenPayout),
}

/// The customers the credit may come from: by bank account, by the rule's assignment, and by a
/// name similar enough to theirs.
pub fn likely_customers<'c>(reading: &Reading, customers: &'c Customers) -> Vec<&'c Customer> {
    let (credit, hints) = (&reading.credit, &reading.hints);
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
    if let Some(payer) = &reading.seen.payer {
        for c in customers.sharing_a_word(payer) {
            let best = c.normalized.iter().map(|n| payer.similarity(n)).fold(0.0, f64::max);
            if best >= NAME_CUSTOMER {
                push(c);
            }
        }
    }
    found
}

/// The customers of the open invoices in the pool that the credit's text quotes exactly and that
/// owe less than it: a credit quoting "INV-1 INV-2" pays a set of that customer's invoices even
/// when the payer's name says nothing (a name shared by many customers, or none given). Gathering
/// asks for their open invoices; scoring takes the same customers from the invoices it sees quoted.
pub fn customers_of_quoted_parts(reading: &Reading, pool: &Pool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for key in reading.keys() {
        for invoice in pool.by_key.get(key).into_iter().flatten().map(|id| &pool.invoices[id.as_str()]) {
            if let Some(c) =
                invoice.customer_id.as_ref().filter(|c| may_be_part(invoice, &reading.credit) && !found.contains(c))
                && quotes_exactly_seen(&reading.seen, &facts(invoice))
            {
                found.push(c.clone());
            }
        }
    }
    found
}

/// Whether the credit may pay `invoice` together with others of its customer's.
fn may_be_part(invoice: &OpenInvoice, credit: &Credit) -> bool {
    invoice.currency == credit.currency && invoice.amount_due < credit.amount
}

/// How similar a payer's name must be to a customer's for the customer's open invoices to be
/// considered on that ground alone.
const NAME_CUSTOMER: f64 = 0.85;

/// Scores everything that might pay the credit read and decides.
pub fn evaluate<'a>(reading: &'a Reading, pool: &'a Pool, rejected: &[String], tuning: &Tuning) -> Verdict {
    let (credit, hints, seen) = (&reading.credit, &reading.hints, &reading.seen);
    let customers = &pool.customers;
    let likely: Vec<&Customer> = reading.likely.iter().filter_map(|id| customers.by_id.get(id)).collect();
    let tx = TxFacts {
        amount: credit.amount,
        currency: &credit.currency,
        date: credit.date,
        text: &reading.text,
        counterparty_name: credit.counterparty_name.as_deref(),
        counterparty_account: credit.counterparty_account.as_deref(),
        customer_id: hints.customer_id.as_deref(),
        seen: Some(seen),
    };
    // Invoices the text names exactly, owe exactly the credit, or belong to the likely payers: a
    // reference one typo away is found by scoring among the last two.
    let mut ids: Vec<&String> = Vec::new();
    let mut names_a_closed_invoice = false;
    for key in reading.keys() {
        ids.extend(pool.by_key.get(key).into_iter().flatten());
        names_a_closed_invoice |= pool.closed_keys.contains(key);
    }
    let quoted: Vec<&OpenInvoice> =
        ids.iter().map(|id| &pool.invoices[id.as_str()]).filter(|i| quotes_exactly_seen(seen, &facts(i))).collect();
    let amount = (credit.currency.clone(), credit.amount);
    let owing: Vec<&String> = pool.by_amount.get(&amount).into_iter().flatten().collect();
    ids.extend(&owing);
    for c in &likely {
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
    // The payer compared with each likely customer once, not once per invoice or set of theirs.
    let similarities: HashMap<&str, Vec<f64>> = match &seen.payer {
        Some(payer) => {
            likely.iter().map(|c| (c.id.as_str(), c.normalized.iter().map(|n| payer.similarity(n)).collect())).collect()
        }
        None => HashMap::new(),
    };
    let customer_facts = |c: &'a Customer| CustomerFacts {
        id: &c.id,
        name: &c.name,
        aliases: &c.aliases,
        account_keys: &c.account_keys,
        normalized: Some(&c.normalized),
        payer_similarity: similarities.get(c.id.as_str()).map(Vec::as_slice),
    };
    // Scored, each with what it would pay; the match is drawn up only for those kept.
    let mut candidates: Vec<Scored> = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    for id in &ids {
        let invoice = &pool.invoices[id.as_str()];
        let customer = invoice.customer_id.as_ref().and_then(|c| customers.by_id.get(c)).map(customer_facts);
        if let Some(scored) = score_invoice_among(&tx, &facts(invoice), customer.as_ref(), &rivals, tuning) {
            candidates.push(scored);
            plans.push(Plan::Invoices(vec![invoice]));
        }
    }
    // One credit paying several of one customer's invoices (a likely payer's, or the customer of
    // an invoice it quotes): the only set holding an invoice the text quotes, when all the
    // customer's open invoices are known and the text quotes none of anyone else's; then the sets
    // the amounts make.
    let mut set_payers = likely.clone();
    let quoted_parts = quoted.iter().filter(|i| may_be_part(i, credit));
    for c in quoted_parts.filter_map(|i| i.customer_id.as_ref().and_then(|id| customers.by_id.get(id))) {
        if !set_payers.iter().any(|p| p.id == c.id) {
            set_payers.push(c);
        }
    }
    for &c in &set_payers {
        let all: Vec<&OpenInvoice> =
            pool.by_customer.get(&c.id).into_iter().flatten().map(|id| &pool.invoices[id]).collect();
        let mut sole = None;
        let quoted_elsewhere = quoted.iter().any(|i| i.customer_id.as_ref() != Some(&c.id));
        if !quoted.is_empty() && !quoted_elsewhere && pool.complete_customers.contains(&c.id) {
            let all_facts: Vec<InvoiceFacts> = all.iter().map(|i| facts(i)).collect();
            if let Some((set, scored)) = score_sole_quoted_set(&tx, &all_facts, Some(&customer_facts(c)), tuning) {
                let chosen: Vec<&OpenInvoice> = set.iter().map(|&k| all[k]).collect();
                sole = Some(scored.target.clone());
                candidates.push(scored);
                plans.push(Plan::Invoices(chosen));
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
                candidates.push(scored);
                plans.push(Plan::Invoices(chosen));
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
            candidates.push(scored);
            plans.push(Plan::Payout(payout));
        }
    }
    if let Some(prefer) = hints.prefer {
        let preferred = |c: &Scored| match prefer {
            RulePreference::Invoice => matches!(c.target, Target::Invoices(_)),
            RulePreference::StripePayout => matches!(c.target, Target::Payout(_)),
        };
        if candidates.iter().any(preferred) {
            (candidates, plans) = candidates.into_iter().zip(plans).filter(|(c, _)| preferred(c)).unzip();
        }
    }
    let draw_up = |i: usize, candidates: &[Scored]| Candidate {
        scored: candidates[i].clone(),
        proposal: match &plans[i] {
            Plan::Invoices(chosen) => invoice_proposal(credit, chosen, tuning),
            Plan::Payout(payout) => payout_proposal(credit, payout, pool),
        },
    };
    match scoring::decide(&candidates, rejected, tuning) {
        Decision::AutoMatch(i) => Verdict::Auto(draw_up(i, &candidates)),
        Decision::Suggest(ranked) => Verdict::Suggest(ranked.into_iter().map(|i| draw_up(i, &candidates)).collect()),
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
