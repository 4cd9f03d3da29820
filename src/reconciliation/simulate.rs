//! What a change of settings or rules would do, before anyone switches it on: the engine's
//! verdicts on the tenant's recent credits under the current configuration and under the
//! proposed one, side by side, and how each agrees with what people decided by hand. Nothing is
//! written: the caller reads in a transaction it rolls back.
//!
//! Credits already matched are judged as if they were not: the invoices and payout their match
//! took are put back in the candidates with what the match paid added back to their due.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::{
    ReconciliationError,
    engine::{
        self, Context,
        candidates::{self, Credit, OpenInvoice},
        evaluate::{self, Reading, Verdict},
        pool::Pool,
    },
    rules::{self, CompiledRules, Rule, RuleSpec},
    settings::{self, SettingsPatch},
};
use crate::domain::{ids::TenantId, validation::FieldError};

/// Most credits a simulation looks at.
pub const MAX_CREDITS: i64 = 10_000;
/// Most differing credits shown as examples.
const EXAMPLES: usize = 25;

/// The change to evaluate.
#[derive(Debug, Default)]
pub struct Proposed {
    pub settings: Option<SettingsPatch>,
    /// The whole rule set as it would be (None: the rules as they are).
    pub rules: Option<Vec<RuleSpec>>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    pub limit: i64,
}

/// How many credits each verdict got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerdictCounts {
    pub auto_matched: u64,
    pub suggested: u64,
    pub unmatched: u64,
    pub excluded: u64,
}

/// How automatic matches differ from the current configuration's.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct AutoMatchChanges {
    /// Credits the proposal would match automatically and the current configuration would not.
    pub appear: u64,
    /// Credits the current configuration matches automatically and the proposal would not.
    pub disappear: u64,
    /// Credits both match automatically, to different counterparts.
    pub change: u64,
}

/// How the engine's automatic matches agree with what people matched by hand (or accepted).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Agreement {
    /// Would match the same counterpart automatically.
    pub agree: u64,
    /// Would match a different counterpart automatically: the figure to watch.
    pub disagree: u64,
    /// Would leave it to a person (suggest or nothing).
    pub not_automatic: u64,
}

/// People's decisions, against each configuration.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct PeopleAgreement {
    /// Credits people matched (by hand or by accepting a suggestion) in the window.
    pub decisions: u64,
    pub current: Agreement,
    pub proposed: Agreement,
}

/// One credit's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Outcome {
    /// `auto_match`, `suggest`, `nothing` or `exclude`.
    pub verdict: String,
    /// What it would match, or its best suggestion (`invoice:inv_…`, `invoices:…`, `stripe_payout:po_…`).
    pub target: Option<String>,
    pub score: Option<f64>,
}

/// A credit the proposal decides differently.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Difference {
    pub transaction_id: String,
    pub amount: i64,
    pub currency: String,
    pub text: String,
    pub current: Outcome,
    pub proposed: Outcome,
    /// What a person matched it to, if one did.
    pub person: Option<String>,
}

/// What the proposal would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Simulation {
    /// Credits looked at: the most recent in the window, at most `limit`.
    pub examined: u64,
    pub current: VerdictCounts,
    pub proposed: VerdictCounts,
    pub auto_matches: AutoMatchChanges,
    pub people: PeopleAgreement,
    /// Up to 25 credits decided differently.
    pub examples: Vec<Difference>,
    pub simulated_at: DateTime<Utc>,
}

/// Runs the simulation; the caller rolls its transaction back.
pub async fn simulate(
    conn: &mut PgConnection,
    tenant: &TenantId,
    proposed: Proposed,
) -> Result<Simulation, ReconciliationError> {
    let current = Context::load(conn, tenant).await?;
    let mut errors: Vec<FieldError> = Vec::new();
    let settings_now = settings::load(conn, tenant).await?;
    let settings_then = match &proposed.settings {
        Some(patch) => patch.apply_to(&settings_now).unwrap_or_else(|mut e| {
            e.iter_mut().for_each(|f| f.field = format!("settings.{}", f.field));
            errors.append(&mut e);
            settings_now.clone()
        }),
        None => settings_now.clone(),
    };
    let rules_then = match proposed.rules {
        Some(specs) => {
            let mut rules = Vec::with_capacity(specs.len());
            for (i, spec) in specs.into_iter().enumerate() {
                for mut e in spec.check() {
                    e.field = format!("rules[{i}].{}", e.field);
                    errors.push(e);
                }
                rules.push(Rule::proposed(i, spec));
            }
            CompiledRules::compile(rules)
        }
        None => CompiledRules::compile(rules::list_all(conn, tenant).await?),
    };
    if !errors.is_empty() {
        return Err(ReconciliationError::Invalid(errors));
    }
    let then = Context { tuning: engine::tuning(&settings_then), rules: rules_then };

    let credits: Vec<Credit> = sqlx::query_as(
        "select id, amount, currency, coalesce(booking_date, value_date, created_at::date) as date, description,
                reference, counterparty_name, counterparty_account, customer_id
         from transactions
         where tenant_id = $1 and amount > 0 and match_status <> 'excluded'
           and ($2::date is null or list_date >= $2) and ($3::date is null or list_date <= $3)
         order by list_date desc nulls last, id desc limit $4",
    )
    .bind(tenant.as_str())
    .bind(proposed.date_from)
    .bind(proposed.date_to)
    .bind(proposed.limit.clamp(1, MAX_CREDITS))
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = credits.iter().map(|c| c.id.clone()).collect();
    let people = decisions(conn, tenant, &ids).await?;
    let restored = (restored_invoices(conn, tenant, &ids).await?, restored_payouts(conn, tenant, &ids).await?);
    let rejected = candidates::rejections(conn, tenant, &ids).await?;

    let mut sim = Simulation {
        examined: credits.len() as u64,
        current: VerdictCounts::default(),
        proposed: VerdictCounts::default(),
        auto_matches: AutoMatchChanges::default(),
        people: PeopleAgreement::default(),
        examples: Vec::new(),
        simulated_at: Utc::now(),
    };
    for chunk in credits.chunks(engine::BATCH as usize) {
        let now = judge(conn, tenant, &current, chunk, &restored, &rejected).await?;
        let then = judge(conn, tenant, &then, chunk, &restored, &rejected).await?;
        for ((credit, now), then) in chunk.iter().zip(now).zip(then) {
            count(&mut sim.current, &now);
            count(&mut sim.proposed, &then);
            let auto = |o: &Outcome| (o.verdict == "auto_match").then(|| o.target.clone()).flatten();
            match (auto(&now), auto(&then)) {
                (None, Some(_)) => sim.auto_matches.appear += 1,
                (Some(_), None) => sim.auto_matches.disappear += 1,
                (Some(a), Some(b)) if a != b => sim.auto_matches.change += 1,
                _ => {}
            }
            let person = people.get(&credit.id).cloned();
            if let Some(key) = &person {
                sim.people.decisions += 1;
                agree(&mut sim.people.current, auto(&now), key);
                agree(&mut sim.people.proposed, auto(&then), key);
            }
            if now != then && sim.examples.len() < EXAMPLES {
                sim.examples.push(Difference {
                    transaction_id: credit.id.clone(),
                    amount: credit.amount,
                    currency: credit.currency.clone(),
                    text: credit.text(),
                    current: now,
                    proposed: then,
                    person,
                });
            }
        }
    }
    Ok(sim)
}

/// Each credit's verdict under `context`, with the restored invoices among the candidates.
async fn judge(
    conn: &mut PgConnection,
    tenant: &TenantId,
    context: &Context,
    credits: &[Credit],
    restored: &(Vec<OpenInvoice>, Vec<candidates::OpenPayout>),
    rejected: &HashMap<String, Vec<String>>,
) -> Result<Vec<Outcome>, ReconciliationError> {
    let mut live = Vec::new();
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(credits.len());
    for credit in credits {
        match evaluate::apply_rules(&context.rules, credit) {
            Err(_) => outcomes.push(Some(Outcome { verdict: "exclude".into(), target: None, score: None })),
            Ok(hints) => {
                outcomes.push(None);
                live.push(Reading::new(credit.clone(), hints));
            }
        }
    }
    let mut pool: Pool = engine::gather(conn, tenant, &mut live).await?;
    pool.add_restored(restored.0.clone());
    pool.payouts
        .extend(restored.1.iter().filter(|p| !pool.payouts.iter().any(|q| q.id == p.id)).cloned().collect::<Vec<_>>());
    pool.add_customers(conn, tenant).await?;
    let none = Vec::new();
    let mut verdicts = live.iter().map(|reading| {
        let rejected = rejected.get(&reading.credit.id).unwrap_or(&none);
        match evaluate::evaluate(reading, &pool, rejected, &context.tuning) {
            Verdict::Auto(c) => Outcome {
                verdict: "auto_match".into(),
                target: Some(c.scored.target.key()),
                score: Some(c.scored.score),
            },
            Verdict::Suggest(cs) => Outcome {
                verdict: "suggest".into(),
                target: cs.first().map(|c| c.scored.target.key()),
                score: cs.first().map(|c| c.scored.score),
            },
            Verdict::Nothing => Outcome { verdict: "nothing".into(), target: None, score: None },
        }
    });
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| verdicts.next().expect("one verdict per live credit")))
        .collect())
}

fn count(counts: &mut VerdictCounts, o: &Outcome) {
    match o.verdict.as_str() {
        "auto_match" => counts.auto_matched += 1,
        "suggest" => counts.suggested += 1,
        "exclude" => counts.excluded += 1,
        _ => counts.unmatched += 1,
    }
}

fn agree(a: &mut Agreement, auto: Option<String>, person: &str) {
    match auto {
        Some(key) if key == person => a.agree += 1,
        Some(_) => a.disagree += 1,
        None => a.not_automatic += 1,
    }
}

/// What people matched these credits to (active matches made by hand or by accepting a
/// suggestion), as target keys: the payout when the match has one, else its invoices.
async fn decisions(
    conn: &mut PgConnection,
    tenant: &TenantId,
    credits: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        transaction_id: String,
        target_type: String,
        target_id: String,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select t.transaction_id, a.target_type, a.target_id
         from reconciliation_match_transactions t
         join reconciliation_matches m on m.tenant_id = t.tenant_id and m.id = t.match_id
         join reconciliation_allocations a on a.tenant_id = t.tenant_id and a.match_id = t.match_id
         where t.tenant_id = $1 and t.transaction_id = any($2) and t.active and m.origin <> 'auto'
         order by t.transaction_id, a.target_id",
    )
    .bind(tenant.as_str())
    .bind(credits)
    .fetch_all(conn)
    .await?;
    let mut targets: HashMap<String, (Option<String>, std::collections::BTreeSet<String>)> = HashMap::new();
    for r in rows {
        let entry = targets.entry(r.transaction_id).or_default();
        if r.target_type == "stripe_payout" {
            entry.0 = Some(r.target_id);
        } else {
            entry.1.insert(r.target_id);
        }
    }
    Ok(targets
        .into_iter()
        .map(|(t, (payout, invoices))| {
            let key = match payout {
                Some(p) => format!("stripe_payout:{p}"),
                None if invoices.len() == 1 => format!("invoice:{}", invoices.into_iter().next().unwrap_or_default()),
                None => format!("invoices:{}", invoices.into_iter().collect::<Vec<_>>().join(",")),
            };
            (t, key)
        })
        .collect())
}

/// The payouts the credits' active matches took: candidates again, as before the match.
async fn restored_payouts(
    conn: &mut PgConnection,
    tenant: &TenantId,
    credits: &[String],
) -> Result<Vec<candidates::OpenPayout>, sqlx::Error> {
    sqlx::query_as(
        "select p.id, p.amount, p.currency, p.arrival_date, p.trace_id, p.statement_descriptor
         from reconciliation_match_transactions t
         join reconciliation_allocations a on a.tenant_id = t.tenant_id and a.match_id = t.match_id and a.active
         join stripe_payouts p on p.tenant_id = a.tenant_id and p.id = a.target_id
         where t.tenant_id = $1 and t.transaction_id = any($2) and t.active and a.target_type = 'stripe_payout'",
    )
    .bind(tenant.as_str())
    .bind(credits)
    .fetch_all(conn)
    .await
}

/// The invoices the credits' active matches paid, with what those matches paid added back to
/// their due: what the engine would have seen before the match.
async fn restored_invoices(
    conn: &mut PgConnection,
    tenant: &TenantId,
    credits: &[String],
) -> Result<Vec<OpenInvoice>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        invoice: OpenInvoice,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "with paid as (
             select a.target_id, sum(a.amount)::int8 as amount
             from reconciliation_match_transactions t
             join reconciliation_allocations a on a.tenant_id = t.tenant_id and a.match_id = t.match_id and a.active
             where t.tenant_id = $1 and t.transaction_id = any($2) and t.active and a.target_type = 'invoice'
             group by a.target_id)
         select i.id, i.number, i.number_key, i.payment_reference, i.reference_key, i.rf_reference, i.rf_key,
                i.customer_id, i.currency, i.amount_total - i.amount_paid + p.amount as amount_due, i.issue_date,
                i.due_date
         from invoices i join paid p on p.target_id = i.id where i.tenant_id = $1",
    )
    .bind(tenant.as_str())
    .bind(credits)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.invoice).collect())
}
