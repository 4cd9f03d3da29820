//! What the engine did, against the ground truth: each credit's active automatic match (its
//! target key read from the allocations) and its open suggestions, joined with `bench_truth`.
//!
//! A match's target key: `stripe_payout:…` when it allocates to a payout, else its direct invoice
//! ids sorted (`invoice:x` for one, `invoices:a,b` for several); allocations `via_payout_id` (an
//! invoice paid by a charge inside the payout) are part of the payout and ignored.

use std::collections::BTreeMap;

use payymo::domain::ids::TenantId;
use sqlx::{FromRow, PgConnection};

use super::generate::Scenario;

#[derive(Debug, FromRow)]
struct Outcome {
    scenario: String,
    truth: Option<String>,
    shown: String,
    auto_key: Option<String>,
    auto_score: Option<f64>,
    auto_reasons: Option<String>,
    top3: Vec<String>,
    suggested: bool,
}

/// How one kind of credit fared.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub credits: u64,
    pub auto_right: u64,
    pub auto_wrong: u64,
    /// Not matched automatically, the truth ranked first among the open suggestions.
    pub top1: u64,
    /// … ranked 2nd or 3rd.
    pub top3: u64,
    /// Suggestions, the truth not among the first three (or, for noise, any suggestion).
    pub suggested_other: u64,
    /// Neither matched nor suggested.
    pub nothing: u64,
}

/// A wrong automatic match, for whoever tunes the scoring.
pub struct Wrong {
    pub scenario: String,
    pub shown: String,
    pub truth: Option<String>,
    pub matched: String,
    pub score: Option<f64>,
    pub reasons: Option<String>,
}

/// A credit with a true target that was neither matched nor had it in its top 3.
pub struct Missed {
    pub scenario: String,
    pub shown: String,
    pub truth: String,
    pub top3: Vec<String>,
}

#[derive(Default)]
pub struct Quality {
    pub per_scenario: BTreeMap<Scenario, Tally>,
    pub wrong: Vec<Wrong>,
    pub missed: Vec<Missed>,
}

impl Quality {
    fn total(&self) -> Tally {
        self.per_scenario.values().fold(Tally::default(), |mut t, s| {
            t.credits += s.credits;
            t.auto_right += s.auto_right;
            t.auto_wrong += s.auto_wrong;
            t.top1 += s.top1;
            t.top3 += s.top3;
            t.suggested_other += s.suggested_other;
            t.nothing += s.nothing;
            t
        })
    }

    /// Credits with a true target (all but noise).
    fn with_truth(&self) -> Tally {
        let mut total = self.total();
        if let Some(noise) = self.per_scenario.get(&Scenario::Noise) {
            total.credits -= noise.credits;
            total.auto_wrong -= noise.auto_wrong;
            total.suggested_other -= noise.suggested_other;
            total.nothing -= noise.nothing;
        }
        total
    }

    /// Correct automatic matches ÷ all automatic matches.
    pub fn precision(&self) -> f64 {
        let t = self.total();
        ratio(t.auto_right, t.auto_right + t.auto_wrong)
    }

    /// Correct automatic matches ÷ credits with a true target.
    pub fn recall(&self) -> f64 {
        let t = self.with_truth();
        ratio(t.auto_right, t.credits)
    }

    /// Of the credits with a true target not matched automatically, the share whose truth is
    /// among their first three open suggestions; and how many they are.
    pub fn top3(&self) -> (f64, u64) {
        let t = self.with_truth();
        let left = t.credits - t.auto_right - t.auto_wrong;
        (ratio(t.top1 + t.top3, left), left)
    }

    pub fn auto_matches(&self) -> u64 {
        let t = self.total();
        t.auto_right + t.auto_wrong
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

/// The outcome of the credits of `round` (0 seeded, 1 added for the incremental run).
pub async fn read(session: &mut PgConnection, tenant: &TenantId, round: i32) -> anyhow::Result<Quality> {
    let rows: Vec<Outcome> = sqlx::query_as(
        r#"with auto as (
               select mt.transaction_id, m.score::float8 as score,
                      (select string_agg(r ->> 'detail', '; ') from jsonb_array_elements(m.reasons) r) as reasons,
                      (select coalesce(
                                  max('stripe_payout:' || a.target_id) filter (where a.target_type = 'stripe_payout'),
                                  case when count(*) filter (where a.via_payout_id is null) = 1
                                       then 'invoice:' || min(a.target_id) filter (where a.via_payout_id is null)
                                       else 'invoices:' || string_agg(a.target_id, ',' order by a.target_id collate "C")
                                                             filter (where a.via_payout_id is null) end)
                       from reconciliation_allocations a
                       where a.tenant_id = m.tenant_id and a.match_id = m.id and a.active) as key
               from reconciliation_matches m
               join reconciliation_match_transactions mt
                 on mt.tenant_id = m.tenant_id and mt.match_id = m.id and mt.active
               where m.tenant_id = $1 and m.origin = 'auto' and m.status = 'active')
           select b.scenario, b.truth, b.shown, auto.key as auto_key, auto.score as auto_score,
                  auto.reasons as auto_reasons,
                  coalesce((select array_agg(s.target_key order by s.rank) from reconciliation_suggestions s
                            where s.tenant_id = $1 and s.transaction_id = b.transaction_id and s.status = 'open'
                              and s.rank <= 3), '{}') as top3,
                  exists (select 1 from reconciliation_suggestions s
                          where s.tenant_id = $1 and s.transaction_id = b.transaction_id and s.status = 'open') as suggested
           from bench_truth b
           left join auto on auto.transaction_id = b.transaction_id
           where b.round = $2
           order by b.transaction_id"#,
    )
    .bind(tenant.as_str())
    .bind(round)
    .fetch_all(session)
    .await?;
    let mut quality = Quality::default();
    for row in rows {
        let scenario = Scenario::parse(&row.scenario).unwrap_or(Scenario::Noise);
        let tally = quality.per_scenario.entry(scenario).or_default();
        tally.credits += 1;
        let truth = row.truth.as_deref();
        match (&row.auto_key, truth) {
            (Some(key), Some(truth)) if key == truth => tally.auto_right += 1,
            (Some(key), _) => {
                tally.auto_wrong += 1;
                quality.wrong.push(Wrong {
                    scenario: row.scenario.clone(),
                    shown: row.shown.clone(),
                    truth: row.truth.clone(),
                    matched: key.clone(),
                    score: row.auto_score,
                    reasons: row.auto_reasons.clone(),
                });
            }
            (None, Some(truth)) if row.top3.first().is_some_and(|k| k == truth) => tally.top1 += 1,
            (None, Some(truth)) if row.top3.iter().any(|k| k == truth) => tally.top3 += 1,
            (None, _) if row.suggested => {
                tally.suggested_other += 1;
                if let Some(truth) = truth {
                    quality.missed.push(Missed {
                        scenario: row.scenario.clone(),
                        shown: row.shown.clone(),
                        truth: truth.to_owned(),
                        top3: row.top3.clone(),
                    });
                }
            }
            (None, _) => {
                tally.nothing += 1;
                if let Some(truth) = truth {
                    quality.missed.push(Missed {
                        scenario: row.scenario.clone(),
                        shown: row.shown.clone(),
                        truth: truth.to_owned(),
                        top3: Vec::new(),
                    });
                }
            }
        }
    }
    Ok(quality)
}

/// The per-scenario table, the wrong automatic matches (up to 10) and some misses, on stderr.
pub fn print_details(quality: &Quality) {
    eprintln!(
        "\n{:<18} {:>7} | {:>7} {:>6} | {:>6} {:>6} {:>7} {:>7}",
        "scenario", "credits", "auto ok", "wrong", "top-1", "top-3", "other", "nothing"
    );
    let line = |name: &str, t: &Tally| {
        eprintln!(
            "{name:<18} {:>7} | {:>7} {:>6} | {:>6} {:>6} {:>7} {:>7}",
            t.credits, t.auto_right, t.auto_wrong, t.top1, t.top3, t.suggested_other, t.nothing
        );
    };
    for (scenario, tally) in &quality.per_scenario {
        line(scenario.name(), tally);
    }
    line("all", &quality.total());
    eprintln!(
        "(auto ok/wrong: matched automatically to the true target or not; top-1/top-3: not matched, the true \
         target ranked 1st or 2nd–3rd among the open suggestions; other: suggestions without it (noise: any); \
         nothing: no match, no suggestion)"
    );
    if !quality.wrong.is_empty() {
        eprintln!("\nwrong automatic matches ({} in all, up to 10 shown):", quality.wrong.len());
        for w in quality.wrong.iter().take(10) {
            eprintln!(
                "- [{}] {}\n    truth {} | matched {} (score {}) | {}",
                w.scenario,
                w.shown,
                w.truth.as_deref().unwrap_or("none (pays nothing)"),
                w.matched,
                w.score.map_or("?".into(), |s| format!("{s:.4}")),
                w.reasons.as_deref().unwrap_or("")
            );
        }
    }
    if !quality.missed.is_empty() {
        eprintln!(
            "\nmissed (true target neither matched nor in the top 3; {} in all, up to 10 shown):",
            quality.missed.len()
        );
        for m in quality.missed.iter().take(10) {
            eprintln!("- [{}] {}\n    truth {} | top 3 {:?}", m.scenario, m.shown, m.truth, m.top3);
        }
    }
}

/// The target-table rows: precision, recall and top-3 against their targets, then one
/// information row per scenario.
pub fn rows(quality: &Quality, label: &str, row: &dyn Fn(&str, &str, &str)) {
    const PRECISION: f64 = 0.995;
    const RECALL: f64 = 0.85;
    const TOP3: f64 = 0.97;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let t = quality.total();
    let precision = quality.precision();
    row(
        &format!("{label} precision"),
        &format!("{:.2}% ({} of {} automatic matches right)", 100.0 * precision, t.auto_right, quality.auto_matches()),
        &format!(">= {:.1}% {}", 100.0 * PRECISION, verdict(precision >= PRECISION)),
    );
    let recall = quality.recall();
    row(
        &format!("{label} recall"),
        &format!("{:.2}% ({} of {} credits with a target)", 100.0 * recall, t.auto_right, quality.with_truth().credits),
        &format!(">= {:.0}% {}", 100.0 * RECALL, verdict(recall >= RECALL)),
    );
    let (top3, left) = quality.top3();
    let w = quality.with_truth();
    row(
        &format!("{label} top-3"),
        &format!("{:.2}% ({} of {} left to a person)", 100.0 * top3, w.top1 + w.top3, left),
        &format!(">= {:.0}% {}", 100.0 * TOP3, verdict(top3 >= TOP3)),
    );
    for (scenario, s) in &quality.per_scenario {
        row(
            &format!("{label} {}", scenario.name()),
            &format!(
                "{} credits: auto {} ok, {} wrong; top-1 {}, top-3 {}, other {}, nothing {}",
                s.credits, s.auto_right, s.auto_wrong, s.top1, s.top3, s.suggested_other, s.nothing
            ),
            "information",
        );
    }
}
