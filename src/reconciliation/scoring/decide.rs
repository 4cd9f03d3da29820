//! What the engine does with a transaction's scored candidates: match automatically only when one
//! is certain, else put the plausible ones before a person.

use super::{Scored, Tuning, round4};

/// How far ahead of the runner-up the best candidate must be to be matched automatically.
pub const AMBIGUITY_MARGIN: f64 = 0.15;

/// The most candidates suggested for one transaction.
const MAX_SUGGESTIONS: usize = 5;

/// What the engine does with a transaction's candidates.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Match automatically: `candidates[index]` is certain.
    AutoMatch(usize),
    /// Suggest these candidates (indexes, best first, at most 5) for a person to decide;
    /// [`decide_explained`] tells why auto-match was refused.
    Suggest(Vec<usize>),
    /// Nothing worth suggesting.
    Nothing,
}

/// Why the best candidate was not matched automatically (for the audit log and the inbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its score is below the auto-match threshold.
    BelowThreshold,
    /// No reference, creditor reference, bank account, rule or Stripe trace supports it.
    NotStrong,
    /// Another candidate scores within [`AMBIGUITY_MARGIN`] of it.
    Ambiguous,
}

/// The auto-match rule: AutoMatch only when the best candidate scores at least the auto-match
/// threshold, is strong, and no other comes close (the runner-up scores below best −
/// [`AMBIGUITY_MARGIN`], or below the suggest threshold). Otherwise Suggest the candidates at or
/// above the suggest threshold, ranked by score then target key; else Nothing. Candidates whose
/// target key is in `rejected` (a person rejected them for this transaction) are dropped first.
pub fn decide(candidates: &[Scored], rejected: &[String], tuning: &Tuning) -> Decision {
    decide_explained(candidates, rejected, tuning).0
}

/// [`decide`], with why auto-match was refused when it was (None for AutoMatch and Nothing).
pub fn decide_explained(candidates: &[Scored], rejected: &[String], tuning: &Tuning) -> (Decision, Option<Refusal>) {
    let mut ranked: Vec<(usize, String)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.target.key()))
        .filter(|(_, key)| !rejected.contains(key))
        .collect();
    ranked.sort_by(|(a, a_key), (b, b_key)| {
        candidates[*b].score.total_cmp(&candidates[*a].score).then_with(|| a_key.cmp(b_key))
    });
    let plausible: Vec<usize> =
        ranked.iter().map(|(i, _)| *i).filter(|&i| candidates[i].score >= tuning.suggest_threshold).collect();
    let Some(&best) = plausible.first() else { return (Decision::Nothing, None) };
    let best_score = candidates[best].score;
    let refusal = if best_score < tuning.auto_match_threshold {
        Some(Refusal::BelowThreshold)
    } else if !candidates[best].strong {
        Some(Refusal::NotStrong)
    } else if plausible.get(1).is_some_and(|&next| candidates[next].score >= round4(best_score - AMBIGUITY_MARGIN)) {
        Some(Refusal::Ambiguous)
    } else {
        None
    };
    match refusal {
        None => (Decision::AutoMatch(best), None),
        Some(why) => (Decision::Suggest(plausible.into_iter().take(MAX_SUGGESTIONS).collect()), Some(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciliation::scoring::Target;

    fn candidate(id: &str, score: f64, strong: bool) -> Scored {
        Scored { target: Target::Invoices(vec![id.to_owned()]), score, reasons: Vec::new(), strong }
    }

    fn run(candidates: &[Scored], rejected: &[&str]) -> (Decision, Option<Refusal>) {
        let rejected: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
        decide_explained(candidates, &rejected, &Tuning::default())
    }

    #[test]
    fn a_certain_strong_unrivalled_candidate_is_matched() {
        let candidates = [candidate("inv_b", 0.5, false), candidate("inv_a", 1.0, true)];
        assert_eq!(run(&candidates, &[]), (Decision::AutoMatch(1), None));
        assert_eq!(decide(&candidates, &[], &Tuning::default()), Decision::AutoMatch(1));
        let rival_too_weak = [candidate("inv_a", 0.95, true), candidate("inv_b", 0.35, true)];
        assert_eq!(run(&rival_too_weak, &[]).0, Decision::AutoMatch(0), "below the suggest threshold");
    }

    #[test]
    fn a_weak_or_low_or_contested_best_is_only_suggested() {
        let not_strong = [candidate("inv_a", 0.95, false)];
        assert_eq!(run(&not_strong, &[]), (Decision::Suggest(vec![0]), Some(Refusal::NotStrong)));
        let low = [candidate("inv_a", 0.89, true)];
        assert_eq!(run(&low, &[]), (Decision::Suggest(vec![0]), Some(Refusal::BelowThreshold)));
        let contested = [candidate("inv_a", 1.0, true), candidate("inv_b", 0.85, false)];
        assert_eq!(run(&contested, &[]), (Decision::Suggest(vec![0, 1]), Some(Refusal::Ambiguous)));
        let clear = [candidate("inv_a", 1.0, true), candidate("inv_b", 0.8499, false)];
        assert_eq!(run(&clear, &[]).0, Decision::AutoMatch(0), "just outside the margin");
    }

    #[test]
    fn two_equal_candidates_are_both_suggested_in_key_order() {
        let twins = [candidate("inv_b", 0.5333, false), candidate("inv_a", 0.5333, false)];
        assert_eq!(run(&twins, &[]).0, Decision::Suggest(vec![1, 0]));
        let strong_twins = [candidate("inv_b", 1.0, true), candidate("inv_a", 1.0, true)];
        assert_eq!(run(&strong_twins, &[]), (Decision::Suggest(vec![1, 0]), Some(Refusal::Ambiguous)));
    }

    #[test]
    fn rejected_targets_are_never_returned() {
        let candidates = [candidate("inv_a", 1.0, true), candidate("inv_b", 0.6, false)];
        assert_eq!(run(&candidates, &["invoice:inv_a"]).0, Decision::Suggest(vec![1]));
        assert_eq!(run(&candidates, &["invoice:inv_a", "invoice:inv_b"]), (Decision::Nothing, None));
        let contested = [candidate("inv_a", 1.0, true), candidate("inv_b", 0.95, true)];
        assert_eq!(run(&contested, &["invoice:inv_b"]).0, Decision::AutoMatch(0), "the rival was rejected");
    }

    #[test]
    fn at_most_five_plausible_candidates_are_suggested_best_first() {
        let scores = [0.41, 0.5, 0.39, 0.7, 0.6, 0.45, 0.8];
        let candidates: Vec<Scored> =
            scores.iter().enumerate().map(|(i, &s)| candidate(&format!("inv_{i}"), s, false)).collect();
        assert_eq!(run(&candidates, &[]).0, Decision::Suggest(vec![6, 3, 4, 1, 5]));
        assert_eq!(run(&[candidate("inv_a", 0.39, true)], &[]), (Decision::Nothing, None));
        assert_eq!(run(&[], &[]), (Decision::Nothing, None));
    }
}
