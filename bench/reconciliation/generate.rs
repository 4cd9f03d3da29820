//! The seeded tenant, built in memory before it is written: customers, open invoices, paid
//! Stripe payouts with their charges, and bank credits, each credit with the target key it
//! really pays (its ground truth) and the scenario that made it. Everything follows from the
//! seed; dates are fixed (around [`ANCHOR`]) so that two runs with one seed write the same rows.

use std::collections::HashSet;

use chrono::{Days, NaiveDate};

/// The bank statement's last day; invoices are issued in the 120 days before it.
pub const ANCHOR: (i32, u32, u32) = (2026, 11, 30);
/// The tenant's one currency.
pub const CURRENCY: &str = "EUR";
/// What a subscription costs: many open invoices owe exactly this.
const SUBSCRIPTION: i64 = 4_900;

/// How a credit came about, so the report can say how each kind fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// The invoice number in the text, among noise words and in varied spellings.
    ExactReference,
    /// The invoice's payment reference (not its number) in the text.
    PaymentReference,
    /// The invoice's ISO 11649 creditor reference, grouped in fours or run together.
    Rf,
    /// The invoice number with one typo (never one that spells another invoice's number).
    Typo,
    /// No reference: the payer's name (as the bank prints it) and the amount due.
    NameAmount,
    /// No reference: the payer's IBAN (one of the customer's) and the amount due.
    IbanAmount,
    /// No reference: one of the customer's aliases as payer name, and the amount due.
    Alias,
    /// One credit paying 2–3 invoices of one customer, all their numbers in the text.
    SharedAll,
    /// The same, only some of the numbers in the text.
    SharedSome,
    /// One of two instalments paying an invoice, each with its number.
    Instalment,
    /// No reference: the sum of 2–3 of a customer's open invoices, from the customer's IBAN or
    /// name.
    Combined,
    /// A 49.00 subscription paid with its number, among hundreds of 49.00 invoices.
    SubscriptionReference,
    /// A 49.00 subscription paid by name only, among hundreds of 49.00 invoices.
    SubscriptionName,
    /// A Stripe payout (fees, refunds, adjustments netted), its trace id or descriptor in the
    /// text.
    Payout,
    /// Pays nothing: interest, own transfers, supplier refunds, tax repayments, with digits.
    Noise,
}

impl Scenario {
    pub const ALL: [Scenario; 15] = [
        Scenario::ExactReference,
        Scenario::PaymentReference,
        Scenario::Rf,
        Scenario::Typo,
        Scenario::NameAmount,
        Scenario::IbanAmount,
        Scenario::Alias,
        Scenario::SharedAll,
        Scenario::SharedSome,
        Scenario::Instalment,
        Scenario::Combined,
        Scenario::SubscriptionReference,
        Scenario::SubscriptionName,
        Scenario::Payout,
        Scenario::Noise,
    ];

    /// How often the scenario is drawn, in percent (they sum to 100); each draw makes one credit,
    /// except an instalment's, which makes two (bench/README.md gives the resulting shares).
    pub fn percent(self) -> u64 {
        match self {
            Scenario::ExactReference => 25,
            Scenario::PaymentReference => 5,
            Scenario::Rf => 6,
            Scenario::Typo => 6,
            Scenario::NameAmount => 7,
            Scenario::IbanAmount => 6,
            Scenario::Alias => 5,
            Scenario::SharedAll => 3,
            Scenario::SharedSome => 3,
            Scenario::Instalment => 3,
            Scenario::Combined => 4,
            Scenario::SubscriptionReference => 4,
            Scenario::SubscriptionName => 4,
            Scenario::Payout => 9,
            Scenario::Noise => 10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::ExactReference => "exact_reference",
            Scenario::PaymentReference => "payment_reference",
            Scenario::Rf => "rf_reference",
            Scenario::Typo => "typo",
            Scenario::NameAmount => "name_amount",
            Scenario::IbanAmount => "iban_amount",
            Scenario::Alias => "alias_amount",
            Scenario::SharedAll => "shared_all_refs",
            Scenario::SharedSome => "shared_some_refs",
            Scenario::Instalment => "instalment",
            Scenario::Combined => "combined_no_ref",
            Scenario::SubscriptionReference => "subscription_ref",
            Scenario::SubscriptionName => "subscription_name",
            Scenario::Payout => "stripe_payout",
            Scenario::Noise => "noise",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// splitmix64: small, fast and good enough to shape test data (no cryptographic use).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_2026_1205_0001)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }

    /// An id of `prefix` and 32 hex digits, like the ids `domain::ids` makes, from the seed.
    pub fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}{:016x}", self.next(), self.next())
    }

    /// `len` characters of uppercase letters and digits.
    pub fn code(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..len).map(|_| CHARS[self.next() as usize % CHARS.len()] as char).collect()
    }
}

pub struct Customer {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub iban: Option<String>,
}

pub struct Invoice {
    pub id: String,
    pub number: String,
    pub payment_reference: Option<String>,
    pub rf_reference: Option<String>,
    pub customer: usize,
    pub amount: i64,
    pub issue: NaiveDate,
    pub due: NaiveDate,
}

pub struct Payout {
    pub id: String,
    pub net: i64,
    pub gross: i64,
    pub refunds: i64,
    pub adjustments: i64,
    pub fees: i64,
    pub charges: usize,
    pub arrival: NaiveDate,
    pub trace_id: String,
    pub descriptor: String,
}

pub struct Charge {
    pub id: String,
    pub payout: usize,
    pub amount: i64,
    pub fee: i64,
    pub refunded: i64,
    pub description: String,
    pub invoice_number: Option<String>,
    pub created: NaiveDate,
}

pub struct Credit {
    pub id: String,
    pub amount: i64,
    pub date: NaiveDate,
    pub description: Option<String>,
    pub reference: Option<String>,
    pub payer: Option<String>,
    pub iban: Option<String>,
    /// The target key it really pays, or None for noise.
    pub truth: Option<String>,
    pub scenario: Scenario,
}

impl Credit {
    /// Everything the engine reads as text, for the report.
    pub fn shown(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.description {
            parts.push(format!("description {d:?}"));
        }
        if let Some(r) = &self.reference {
            parts.push(format!("reference {r:?}"));
        }
        if let Some(p) = &self.payer {
            parts.push(format!("payer {p:?}"));
        }
        if let Some(i) = &self.iban {
            parts.push(format!("iban {i}"));
        }
        parts.join(", ")
    }
}

#[derive(Default)]
pub struct Dataset {
    pub customers: Vec<Customer>,
    pub invoices: Vec<Invoice>,
    pub payouts: Vec<Payout>,
    pub charges: Vec<Charge>,
    pub credits: Vec<Credit>,
    /// Open invoices no credit pays (distractors), by index: the incremental run pays some.
    pub unpaid: Vec<usize>,
    /// The statement descriptor every payout without its own shows.
    pub account_descriptor: String,
}

/// A tenant with about `credits` credits and at least `invoices` open invoices, `spare` of them at
/// least distractors nobody pays (a tenth of them 49.00 subscriptions).
pub fn dataset(seed: u64, credits: usize, invoices: usize, spare: usize) -> Dataset {
    let mut g = Generator {
        rng: Rng::new(seed),
        data: Dataset { account_descriptor: "BENCHCO ONLINE".into(), ..Dataset::default() },
        keys: HashSet::new(),
    };
    let customers = (credits / 6).max(60);
    for _ in 0..customers {
        g.customer();
    }
    let total: u64 = Scenario::ALL.iter().map(|s| s.percent()).sum();
    while g.data.credits.len() < credits {
        let mut roll = g.rng.range(0, total);
        let scenario = Scenario::ALL
            .into_iter()
            .find(|s| {
                if roll < s.percent() {
                    return true;
                }
                roll -= s.percent();
                false
            })
            .unwrap_or(Scenario::Noise);
        g.credit(scenario);
    }
    while g.data.invoices.len() < invoices || g.data.unpaid.len() < spare {
        let customer = g.rng.range(0, g.data.customers.len() as u64) as usize;
        let amount = if g.rng.chance(10) { SUBSCRIPTION } else { g.amount() };
        let index = g.invoice(customer, amount);
        g.data.unpaid.push(index);
    }
    // A typo made early may spell a number given out later: make it again against them all.
    let numbers: std::collections::HashMap<String, String> =
        g.data.invoices.iter().map(|i| (format!("invoice:{}", i.id), i.number.clone())).collect();
    for n in 0..g.data.credits.len() {
        let credit = &g.data.credits[n];
        let typed = credit.description.as_deref().and_then(|d| d.strip_prefix("PAYMENT ")).map(key);
        if credit.scenario == Scenario::Typo && typed.is_some_and(|t| g.keys.contains(&t)) {
            let number = credit.truth.as_ref().and_then(|t| numbers.get(t)).cloned().unwrap_or_default();
            let typo = g.typo(&number);
            g.data.credits[n].description = Some(format!("PAYMENT {typo}"));
        }
    }
    g.data
}

/// Credits for the incremental run: `count` new ones paying open invoices nobody paid yet (by
/// number, by number with a typo, by name and amount) or nothing, after the statement's end.
pub fn more_credits(data: &Dataset, seed: u64, count: usize, skip: usize) -> Vec<Credit> {
    let mut g = Generator {
        rng: Rng::new(seed ^ 0x1ec),
        data: Dataset::default(),
        keys: data.invoices.iter().map(|i| key(&i.number)).collect(),
    };
    let mut credits = Vec::with_capacity(count);
    for n in 0..count {
        let Some(&index) = data.unpaid.get(skip + n) else { break };
        let invoice = &data.invoices[index];
        let customer = &data.customers[invoice.customer];
        let date = invoice.due.min(anchor()) + Days::new(g.rng.range(1, 6));
        let truth = Some(format!("invoice:{}", invoice.id));
        let (scenario, description, payer) = match g.rng.range(0, 100) {
            0..60 => (Scenario::ExactReference, Some(g.spelled(&invoice.number)), Some(g.bank_name(&customer.name))),
            60..70 => (Scenario::Typo, Some(g.typo(&invoice.number)), Some(g.bank_name(&customer.name))),
            70..85 => (Scenario::NameAmount, Some("SEPA CREDIT TRANSFER".into()), Some(g.bank_name(&customer.name))),
            _ => {
                credits.push(g.noise(date));
                continue;
            }
        };
        credits.push(Credit {
            id: g.rng.id("txn"),
            amount: invoice.amount,
            date,
            description,
            reference: None,
            payer,
            iban: None,
            truth,
            scenario,
        });
    }
    credits
}

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(ANCHOR.0, ANCHOR.1, ANCHOR.2).unwrap_or_default()
}

/// A reference's key as `payymo_ref_key` makes it.
fn key(value: &str) -> String {
    value.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

struct Generator {
    rng: Rng,
    data: Dataset,
    /// Every invoice number's key, so that a typo never spells another invoice's number.
    keys: HashSet<String>,
}

const SYLLABLES: &[&str] = &[
    "ar", "bel", "cor", "dan", "el", "fen", "gar", "hol", "in", "jor", "kel", "lum", "mar", "nor", "or", "pel", "quin",
    "ros", "sol", "tor", "ul", "ven", "wes", "xan", "yor", "zen", "bra", "cla", "dro", "fra", "gle", "tri",
];
const TRADES: &[&str] = &[
    "Widgets",
    "Trading",
    "Logistics",
    "Foods",
    "Engineering",
    "Consulting",
    "Design",
    "Holdings",
    "Media",
    "Systems",
    "Supplies",
    "Motors",
    "Textiles",
    "Labs",
    "Partners",
    "Builders",
    "Dental",
    "Bakery",
    "Print",
    "Solutions",
];
const FORMS: &[&str] = &["Ltd", "Limited", "GmbH", "BV", "SARL", "Inc", "LLP", "plc", "", ""];
const SUPPLIERS: &[&str] =
    &["AMAZON EU SARL", "OFFICE DEPOT", "SHELL FLEET", "VODAFONE", "DHL EXPRESS", "IKEA BV", "LYRECO", "WURTH"];

impl Generator {
    fn word(&mut self) -> String {
        let n = self.rng.range(2, 4);
        let mut word: String = (0..n).map(|_| *self.rng.pick(SYLLABLES)).collect();
        if let Some(first) = word.get(..1) {
            word = first.to_uppercase() + &word[1..];
        }
        word
    }

    fn customer(&mut self) -> usize {
        let (first, trade, form) = (self.word(), *self.rng.pick(TRADES), *self.rng.pick(FORMS));
        let name =
            [first.as_str(), trade, form].iter().filter(|w| !w.is_empty()).copied().collect::<Vec<_>>().join(" ");
        let mut aliases = Vec::new();
        if self.rng.chance(20) {
            // A trading name, unlike the legal one, as people pay under it.
            aliases.push(format!("{} {}", self.word(), self.rng.pick(TRADES)));
        }
        if self.rng.chance(10) {
            aliases.push(format!("{} {} Limited", first, trade));
        }
        let iban = self.rng.chance(60).then(|| self.iban());
        self.data.customers.push(Customer { id: self.rng.id("cus"), name, aliases, iban });
        self.data.customers.len() - 1
    }

    /// A German IBAN with valid check digits.
    fn iban(&mut self) -> String {
        let bban = format!("{:08}{:010}", self.rng.range(10_000_000, 99_999_999), self.rng.range(0, 9_999_999_999));
        // "DE00" moved to the end, D=13, E=14.
        let check = 98 - mod97(&format!("{bban}131400"));
        format!("DE{check:02}{bban}")
    }

    fn amount(&mut self) -> i64 {
        // Log-uniform from 20.00 to 20,000.00.
        let exponent = 3.3 + 3.0 * (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        10f64.powf(exponent) as i64
    }

    fn invoice(&mut self, customer: usize, amount: i64) -> usize {
        let seq = self.data.invoices.len() + 1;
        let number = format!("INV-2026-{seq:06}");
        let issue = anchor() - Days::new(self.rng.range(10, 120));
        let due = issue + Days::new(*self.rng.pick(&[14, 30, 30, 45]));
        let payment_reference = self.rng.chance(15).then(|| format!("PR-{}", self.rng.code(8)));
        let rf_reference = self.rng.chance(15).then(|| self.rf());
        self.keys.insert(key(&number));
        self.data.invoices.push(Invoice {
            id: self.rng.id("inv"),
            number,
            payment_reference,
            rf_reference,
            customer,
            amount,
            issue,
            due,
        });
        self.data.invoices.len() - 1
    }

    /// A valid ISO 11649 creditor reference: RF, check digits, 9–15 characters.
    fn rf(&mut self) -> String {
        let len = self.rng.range(9, 16) as usize;
        let base: String = if self.rng.chance(70) {
            (0..len).map(|_| char::from(b'0' + self.rng.range(0, 10) as u8)).collect()
        } else {
            self.rng.code(len)
        };
        let check = 98 - mod97(&format!("{base}RF00"));
        format!("RF{check:02}{base}")
    }

    /// A customer for a scenario; with `iban`, one that has an IBAN.
    fn some_customer(&mut self, iban: bool, alias: bool) -> usize {
        for _ in 0..50 {
            let c = self.rng.range(0, self.data.customers.len() as u64) as usize;
            let customer = &self.data.customers[c];
            if (!iban || customer.iban.is_some()) && (!alias || !customer.aliases.is_empty()) {
                return c;
            }
        }
        let c = self.customer();
        let customer = &mut self.data.customers[c];
        if iban && customer.iban.is_none() {
            customer.iban = Some(format!("DE89370400440532013{:03}", c % 1000));
        }
        if alias && customer.aliases.is_empty() {
            customer.aliases.push(format!("{} Group", customer.name.split(' ').next().unwrap_or("Bench")));
        }
        c
    }

    /// The date a payment of `invoice` arrives: mostly before its due date, some late.
    fn paid_on(&mut self, invoice: usize) -> NaiveDate {
        let (issue, due) = (self.data.invoices[invoice].issue, self.data.invoices[invoice].due);
        let span = (due - issue).num_days().max(1) as u64;
        let date = if self.rng.chance(80) {
            issue + Days::new(self.rng.range(1, span + 1))
        } else {
            due + Days::new(self.rng.range(1, 20))
        };
        date.min(anchor())
    }

    /// How a bank prints a payer's name: upper case, legal form abbreviated, sometimes cut at 18.
    fn bank_name(&mut self, name: &str) -> String {
        let upper = name.to_uppercase().replace("LIMITED", "LTD");
        if self.rng.chance(25) && upper.len() > 18 { upper.chars().take(18).collect() } else { upper }
    }

    /// An invoice number as payers write it, among noise words.
    fn spelled(&mut self, number: &str) -> String {
        let digits = number.trim_start_matches("INV-2026-");
        match self.rng.range(0, 8) {
            0 => format!("PAYMENT {number} THANK YOU"),
            1 => format!("inv 2026 {digits}"),
            2 => format!("Inv/2026/{digits}"),
            3 => format!("{} ORDER 44{}", number.replace('-', ""), self.rng.range(10, 99)),
            4 => format!("Invoice {number} 2 items"),
            5 => format!("SEPA CT {number} DATED 12.11.2026"),
            6 => number.to_lowercase(),
            _ => format!("RE: {number} / CUST {}", self.rng.range(1000, 9999)),
        }
    }

    /// The number with one typo (a transposition, a doubled or dropped digit, a letter slip)
    /// that spells no other invoice's number.
    fn typo(&mut self, number: &str) -> String {
        let digits: Vec<char> = number.trim_start_matches("INV-2026-").chars().collect();
        for _ in 0..8 {
            let at = self.rng.range(0, digits.len() as u64) as usize;
            let mut d = digits.clone();
            let prefix = match self.rng.range(0, 4) {
                0 if at + 1 < d.len() && d[at] != d[at + 1] => {
                    d.swap(at, at + 1);
                    "INV-2026-"
                }
                1 => {
                    d.insert(at, d[at]);
                    "INV-2026-"
                }
                2 => {
                    d.remove(at);
                    "INV-2026-"
                }
                _ => *self.rng.pick(&["IVN-2026-", "INV-2062-", "INB-2026-", "INV-2O26-"]),
            };
            let typed = format!("{prefix}{}", d.iter().collect::<String>());
            if typed != number && !self.keys.contains(&key(&typed)) {
                return typed;
            }
        }
        format!("IVN-2026-{}", digits.iter().collect::<String>())
    }

    fn push(&mut self, credit: Credit) {
        self.data.credits.push(credit);
    }

    fn new_credit(&mut self, scenario: Scenario, amount: i64, date: NaiveDate, truth: Option<String>) -> Credit {
        Credit {
            id: self.rng.id("txn"),
            amount,
            date,
            description: None,
            reference: None,
            payer: None,
            iban: None,
            truth,
            scenario,
        }
    }

    fn credit(&mut self, scenario: Scenario) {
        match scenario {
            Scenario::ExactReference
            | Scenario::PaymentReference
            | Scenario::Rf
            | Scenario::Typo
            | Scenario::NameAmount
            | Scenario::IbanAmount
            | Scenario::Alias => self.single(scenario),
            Scenario::SharedAll | Scenario::SharedSome | Scenario::Combined => self.several(scenario),
            Scenario::Instalment => self.instalments(),
            Scenario::SubscriptionReference | Scenario::SubscriptionName => self.subscription(scenario),
            Scenario::Payout => self.payout(),
            Scenario::Noise => {
                let date = anchor() - Days::new(self.rng.range(0, 90));
                let noise = self.noise(date);
                self.push(noise);
            }
        }
    }

    /// One credit paying one invoice.
    fn single(&mut self, scenario: Scenario) {
        let c = self.some_customer(scenario == Scenario::IbanAmount, scenario == Scenario::Alias);
        let amount = self.amount();
        let i = self.invoice(c, amount);
        match scenario {
            Scenario::PaymentReference if self.data.invoices[i].payment_reference.is_none() => {
                self.data.invoices[i].payment_reference = Some(format!("PR-{}", self.rng.code(8)));
            }
            Scenario::Rf if self.data.invoices[i].rf_reference.is_none() => {
                self.data.invoices[i].rf_reference = Some(self.rf());
            }
            _ => {}
        }
        let date = self.paid_on(i);
        let invoice = &self.data.invoices[i];
        let (number, pr, rf) =
            (invoice.number.clone(), invoice.payment_reference.clone(), invoice.rf_reference.clone());
        let truth = Some(format!("invoice:{}", invoice.id));
        let customer_name = self.data.customers[c].name.clone();
        let mut credit = self.new_credit(scenario, amount, date, truth);
        credit.payer = Some(self.bank_name(&customer_name));
        match scenario {
            Scenario::ExactReference => {
                let text = self.spelled(&number);
                if self.rng.chance(30) {
                    credit.description = Some("SEPA CREDIT TRANSFER".into());
                    credit.reference = Some(text);
                } else {
                    credit.description = Some(text);
                }
            }
            Scenario::PaymentReference => {
                credit.description =
                    Some(format!("{} {}", pr.unwrap_or_default(), self.rng.pick(&["", "THANKS", "INVOICE"])));
            }
            Scenario::Rf => {
                let rf = rf.unwrap_or_default();
                let grouped =
                    rf.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>();
                credit.reference = Some(if self.rng.chance(50) { grouped.join(" ") } else { rf });
                credit.description = Some("SEPA CREDIT TRANSFER".into());
            }
            Scenario::Typo => credit.description = Some(format!("PAYMENT {}", self.typo(&number))),
            Scenario::NameAmount => {
                credit.description =
                    Some(self.rng.pick(&["SEPA CREDIT TRANSFER", "TRANSFER", "ONLINE BANKING"]).to_string())
            }
            Scenario::IbanAmount => {
                credit.description = Some("SEPA CREDIT TRANSFER".into());
                credit.iban = self.data.customers[c].iban.clone();
                if self.rng.chance(50) {
                    credit.payer = None;
                }
            }
            Scenario::Alias => {
                let alias = self.rng.pick(&self.data.customers[c].aliases).clone();
                credit.payer = Some(self.bank_name(&alias));
                credit.description = Some("TRANSFER".into());
            }
            _ => {}
        }
        self.push(credit);
    }

    /// One credit paying 2–3 invoices of one customer.
    fn several(&mut self, scenario: Scenario) {
        let by_iban = scenario == Scenario::Combined && self.rng.chance(50);
        let c = self.some_customer(by_iban, false);
        let n = self.rng.range(2, 4) as usize;
        let invoices: Vec<usize> = (0..n)
            .map(|_| {
                let amount = self.amount();
                self.invoice(c, amount)
            })
            .collect();
        let total: i64 = invoices.iter().map(|&i| self.data.invoices[i].amount).sum();
        let date = invoices.iter().map(|&i| self.paid_on(i)).max().unwrap_or_else(anchor);
        let mut ids: Vec<String> = invoices.iter().map(|&i| self.data.invoices[i].id.clone()).collect();
        ids.sort();
        let numbers: Vec<String> = invoices.iter().map(|&i| self.data.invoices[i].number.clone()).collect();
        let mut credit = self.new_credit(scenario, total, date, Some(format!("invoices:{}", ids.join(","))));
        let customer = &self.data.customers[c];
        let (name, iban) = (customer.name.clone(), customer.iban.clone());
        credit.payer = Some(self.bank_name(&name));
        credit.description = Some(match scenario {
            Scenario::SharedAll => format!("PAYMENT {}", numbers.join(" ")),
            Scenario::SharedSome => format!("PAYMENT {} ETC", numbers[..n - 1].join(", ")),
            _ => "SEPA CREDIT TRANSFER".into(),
        });
        if scenario == Scenario::Combined && iban.is_some() {
            credit.iban = iban;
        }
        self.push(credit);
    }

    /// Two credits paying one invoice, half and the rest, a month apart, each with its number.
    fn instalments(&mut self) {
        let c = self.some_customer(false, false);
        let amount = self.amount().max(2_000);
        let i = self.invoice(c, amount);
        let first = amount * self.rng.range(30, 71) as i64 / 100;
        let date = self.data.invoices[i].issue + Days::new(self.rng.range(1, 10));
        let (number, id, name) = (
            self.data.invoices[i].number.clone(),
            self.data.invoices[i].id.clone(),
            self.data.customers[c].name.clone(),
        );
        for (n, (part, on)) in [(first, date), (amount - first, date + Days::new(30))].into_iter().enumerate() {
            let mut credit =
                self.new_credit(Scenario::Instalment, part, on.min(anchor()), Some(format!("invoice:{id}")));
            credit.payer = Some(self.bank_name(&name));
            credit.description = Some(format!("{number} INSTALMENT {}/2", n + 1));
            self.push(credit);
        }
    }

    /// A 49.00 subscription invoice paid with its number or by name only.
    fn subscription(&mut self, scenario: Scenario) {
        let c = self.some_customer(false, false);
        let i = self.invoice(c, SUBSCRIPTION);
        let date = self.paid_on(i);
        let (number, id, name) = (
            self.data.invoices[i].number.clone(),
            self.data.invoices[i].id.clone(),
            self.data.customers[c].name.clone(),
        );
        let mut credit = self.new_credit(scenario, SUBSCRIPTION, date, Some(format!("invoice:{id}")));
        credit.payer = Some(self.bank_name(&name));
        credit.description = Some(if scenario == Scenario::SubscriptionReference {
            format!("SUBSCRIPTION {number}")
        } else {
            "SUBSCRIPTION NOVEMBER".into()
        });
        self.push(credit);
    }

    /// A paid payout of 3–8 charges (some naming an invoice), fees, sometimes a refund or an
    /// adjustment, and its bank credit.
    fn payout(&mut self) {
        let payout = self.data.payouts.len();
        let arrival = anchor() - Days::new(self.rng.range(2, 90));
        let (mut gross, mut fees, mut refunds) = (0, 0, 0);
        let count = self.rng.range(3, 9) as usize;
        for n in 0..count {
            let amount = self.rng.range(1_000, 30_000) as i64;
            let fee = amount * 15 / 1000 + 25;
            let refunded = if n == 0 && self.rng.chance(30) { amount / 2 } else { 0 };
            let invoice_number = self.rng.chance(30).then(|| {
                let c = self.some_customer(false, false);
                let i = self.invoice(c, amount);
                self.data.invoices[i].number.clone()
            });
            let description = match &invoice_number {
                Some(number) => format!("Card payment for {number}"),
                None => format!("Order #{}", self.rng.range(10_000, 99_999)),
            };
            self.data.charges.push(Charge {
                id: self.rng.id("ch"),
                payout,
                amount,
                fee,
                refunded,
                description,
                invoice_number,
                created: arrival - Days::new(self.rng.range(2, 5)),
            });
            gross += amount;
            fees += fee;
            refunds -= refunded;
        }
        let adjustments = if self.rng.chance(5) { -1_500 } else { 0 };
        let net = gross + refunds + adjustments - fees;
        let trace_id = format!("ST{}", self.rng.code(12));
        let specific = self.rng.range(0, 100);
        let descriptor = if (55..80).contains(&specific) {
            format!("BENCHCO PO {}", self.rng.code(8))
        } else {
            self.data.account_descriptor.clone()
        };
        let text = match specific {
            0..55 => format!("STRIPE PAYMENTS {trace_id}"),
            55..80 => descriptor.clone(),
            _ => format!("STRIPE {}", self.data.account_descriptor),
        };
        let id = self.rng.id("po");
        self.data.payouts.push(Payout {
            id: id.clone(),
            net,
            gross,
            refunds,
            adjustments,
            fees,
            charges: count,
            arrival,
            trace_id,
            descriptor,
        });
        let date = (arrival + Days::new(self.rng.range(0, 3))).min(anchor());
        let mut credit = self.new_credit(Scenario::Payout, net, date, Some(format!("stripe_payout:{id}")));
        credit.payer = Some("STRIPE PAYMENTS EUROPE LTD".into());
        credit.description = Some(text);
        self.push(credit);
    }

    /// A credit that pays nothing, with digit fragments that must not match, now and then at a
    /// subscription's 49.00.
    fn noise(&mut self, date: NaiveDate) -> Credit {
        let amount = if self.rng.chance(15) { SUBSCRIPTION } else { self.amount() / 3 + 1 };
        let seq = self.rng.range(1, self.keys.len().max(2) as u64);
        let (description, payer) = match self.rng.range(0, 6) {
            0 => (
                format!("INTEREST PAID 01/11/2026-30/11/2026 {}", self.rng.range(100, 999)),
                Some("BENCH BANK".to_owned()),
            ),
            1 => (
                format!("TRANSFER FROM SAVINGS 40-12-88 {:08}", self.rng.range(0, 99_999_999)),
                Some("BENCH TRADING LTD".to_owned()),
            ),
            2 => (
                format!("REFUND ORDER {}-2026-{seq:06}", self.rng.range(1000, 9999)),
                Some(self.rng.pick(SUPPLIERS).to_string()),
            ),
            3 => (
                format!("VAT REPAYMENT REF {}", self.rng.range(100_000_000, 999_999_999)),
                Some("TAX OFFICE".to_owned()),
            ),
            4 => (
                format!("CARD REFUND {} {seq:06}", self.rng.range(1000, 9999)),
                Some(self.rng.pick(SUPPLIERS).to_string()),
            ),
            _ => (format!("CASH DEPOSIT BRANCH {} 2026", self.rng.range(100, 999)), None),
        };
        let mut credit = self.new_credit(Scenario::Noise, amount, date, None);
        credit.description = Some(description);
        credit.payer = payer;
        credit
    }
}

/// `digits` (letters read A=10 … Z=35) mod 97, as ISO 7064 computes check digits.
fn mod97(value: &str) -> u32 {
    value.bytes().fold(0_u32, |rest, b| match b {
        b'0'..=b'9' => (rest * 10 + u32::from(b - b'0')) % 97,
        _ => (rest * 100 + u32::from(b.to_ascii_uppercase() - b'A') + 10) % 97,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creditor_references_and_ibans_carry_valid_check_digits() {
        let mut g = Generator { rng: Rng::new(1), data: Dataset::default(), keys: HashSet::new() };
        for _ in 0..200 {
            let rf = g.rf();
            assert!(payymo::reconciliation::text::rf_is_valid(&rf), "{rf}");
            let iban = g.iban();
            assert_eq!(mod97(&format!("{}{}", &iban[4..], &iban[..4])), 1, "{iban}");
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_tenant() {
        let (a, b) = (dataset(7, 300, 400, 0), dataset(7, 300, 400, 0));
        assert_eq!(a.credits.len(), b.credits.len());
        assert!(
            a.credits.iter().zip(&b.credits).all(|(x, y)| x.id == y.id && x.truth == y.truth && x.amount == y.amount)
        );
        assert!(a.invoices.len() >= 400);
    }

    #[test]
    fn typos_never_spell_another_invoice() {
        let data = dataset(3, 2_000, 2_500, 0);
        let keys: HashSet<String> = data.invoices.iter().map(|i| key(&i.number)).collect();
        for credit in data.credits.iter().filter(|c| c.scenario == Scenario::Typo) {
            let text = credit.description.as_deref().unwrap_or_default();
            let typed = key(text.trim_start_matches("PAYMENT "));
            assert!(!keys.contains(&typed), "{text}");
        }
    }
}
