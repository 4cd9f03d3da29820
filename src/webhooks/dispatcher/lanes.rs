//! Lane scheduling: how many attempts this dispatcher holds for each endpoint, and where each
//! endpoint's next claim starts. Pure bookkeeping, no I/O: the claims read it through
//! [`Lanes::snapshot`], and claimed and finished attempts update it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::POLL_INTERVAL;

/// Claimed attempts a lane may hold, as a multiple of the requests it may send at once.
pub const CLAIM_AHEAD: usize = 16;
/// The same for an endpoint that answers within [`FAST_ANSWER`]: enough held to keep sending
/// while a claim and the outcomes' write are on their way (at [`CLAIM_AHEAD`] a fast receiver's
/// lane runs empty between claims), and still sent in seconds, well inside the lease.
pub const CLAIM_AHEAD_FAST: usize = 64;
/// The average answer time under which an endpoint's lane holds [`CLAIM_AHEAD_FAST`].
pub const FAST_ANSWER: Duration = Duration::from_millis(100);
/// The same for an endpoint not heard from yet, or whose last attempt failed: enough to find out.
/// At [`CLAIM_AHEAD`] a receiver that hangs would hold a quarter of the dispatcher's
/// [`Settings::max_in_flight`] waiting behind requests that take the whole timeout, and the
/// healthy lanes beside it would claim in smaller batches and slow down. A healthy endpoint's lane
/// grows to its full size after its first answers.
pub const CLAIM_AHEAD_PROBE: usize = 2;
/// A claimed attempt's place: its endpoint and its position in the endpoint's queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Position<'a> {
    pub tenant_id: &'a str,
    pub endpoint_id: &'a str,
    pub due_at: DateTime<Utc>,
    pub id: &'a str,
}

/// How a sent attempt went, as its lane counts it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answered {
    pub latency_ms: i32,
    pub succeeded: bool,
}

/// One endpoint's lane in this dispatcher.
#[derive(Debug)]
struct Lane {
    tenant_id: String,
    /// Claimed attempts whose outcomes are not written yet.
    held: usize,
    /// Turns to send: `per_endpoint` requests at once.
    sending: Arc<Semaphore>,
    /// Where the lane's last claim ended in the endpoint's queue, and when.
    resume: Option<Resume>,
    /// Moving average of the endpoint's answer times, in milliseconds (None before the first).
    answer_ms: Option<f64>,
    /// Whether the latest outcome written was a failure.
    failing: bool,
}

impl Lane {
    /// Whether the lane's next claim may start from its resume position.
    fn resumable(&self) -> bool {
        self.resume.as_ref().is_some_and(|resume| resume.at.elapsed() < RESUME_FOR)
    }

    /// Whether the lane can go: it holds nothing, and a top-up could no longer resume it.
    fn spent(&self) -> bool {
        self.held == 0 && !self.resumable()
    }

    /// Claimed attempts the lane may hold: a probe's worth until its endpoint answers with a
    /// success, more once it has shown it answers fast.
    fn capacity(&self, per_endpoint: usize) -> usize {
        per_endpoint
            * match self.answer_ms {
                None => CLAIM_AHEAD_PROBE,
                Some(_) if self.failing => CLAIM_AHEAD_PROBE,
                Some(ms) if ms < FAST_ANSWER.as_secs_f64() * 1000.0 => CLAIM_AHEAD_FAST,
                Some(_) => CLAIM_AHEAD,
            }
    }
}

/// A position in an endpoint's queue, in the claim's order `(next_attempt_at, id)`.
///
/// The due index keeps an entry for every row a claim moved (its lease) or an outcome took out of
/// the queue until vacuum removes it, and those entries sit at the front of the endpoint's range,
/// where each claim used to start: draining a backlog, every claim stepped over every entry the
/// drain had left so far, so a claim's cost grew with the drain. A lane's top-ups ([`REFILL_CLAIM`]) start after the
/// rows its last claim took instead, for [`RESUME_FOR`] after it. Rows that fall due before that
/// position (an insert that committed late, a claim another dispatcher rolled back, a lease run
/// out) are found by the search ([`SEARCH_CLAIM`]), which starts from the front of every queue
/// and runs at least every [`POLL_INTERVAL`].
#[derive(Debug, Clone)]
struct Resume {
    due_at: DateTime<Utc>,
    id: String,
    at: Instant,
}

/// How long after a lane's last claim its top-ups may start where that claim ended.
const RESUME_FOR: Duration = POLL_INTERVAL;

/// The lanes' state as one claim binds it, column by column.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub tenants: Vec<String>,
    pub endpoints: Vec<String>,
    pub attempts: Vec<i32>,
    pub capacities: Vec<i32>,
    pub resume_due_at: Vec<Option<DateTime<Utc>>>,
    pub resume_id: Vec<Option<String>>,
}

/// The lanes of the endpoints this dispatcher holds attempts for.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    lanes: Mutex<HashMap<String, Lane>>,
    /// Set when a lane emptied since the last [`Lanes::emptied`]: its endpoint may have more.
    emptied: AtomicBool,
}

impl Lanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn total(&self) -> usize {
        self.lock().values().map(|lane| lane.held).sum()
    }

    /// The lanes as the claim reads them: endpoint, attempts held, and where to resume.
    pub(super) fn snapshot(&self, per_endpoint: usize) -> Held {
        let mut lanes = self.lock();
        let before = lanes.len();
        lanes.retain(|_, lane| !lane.spent());
        if lanes.len() < before {
            self.emptied.store(true, Ordering::Relaxed);
        }
        let mut held = Held::default();
        for (endpoint, lane) in lanes.iter() {
            let resume = lane.resume.as_ref().filter(|_| lane.resumable());
            held.tenants.push(lane.tenant_id.clone());
            held.endpoints.push(endpoint.clone());
            held.attempts.push(i32::try_from(lane.held).unwrap_or(i32::MAX));
            held.capacities.push(i32::try_from(lane.capacity(per_endpoint)).unwrap_or(i32::MAX));
            held.resume_due_at.push(resume.map(|resume| resume.due_at));
            held.resume_id.push(resume.map(|resume| resume.id.clone()));
        }
        held
    }

    /// Whether a lane emptied since last asked (its endpoint may have more: time for a search).
    pub(super) fn emptied(&self) -> bool {
        self.emptied.swap(false, Ordering::Relaxed)
    }

    /// Whether a lane with a resume position has room for a batch (see [`refill_room`]).
    pub(super) fn refillable(&self, per_endpoint: usize) -> bool {
        self.lock().values().any(|lane| {
            let capacity = lane.capacity(per_endpoint);
            capacity.saturating_sub(lane.held) >= refill_room(capacity) && lane.resumable()
        })
    }

    /// Counts a claimed attempt against its endpoint's lane, moving the lane's resume position
    /// past it; returns the lane's turns to send.
    pub(super) fn take(&self, delivery: &Position<'_>, per_endpoint: usize) -> Arc<Semaphore> {
        let mut lanes = self.lock();
        let lane = lanes.entry(delivery.endpoint_id.to_owned()).or_insert_with(|| Lane {
            tenant_id: delivery.tenant_id.to_owned(),
            held: 0,
            sending: Arc::new(Semaphore::new(per_endpoint)),
            resume: None,
            answer_ms: None,
            failing: false,
        });
        lane.held += 1;
        let later = lane.resume.as_ref().is_none_or(|resume| {
            resume.at.elapsed() >= RESUME_FOR || (delivery.due_at, delivery.id) > (resume.due_at, resume.id.as_str())
        });
        if later {
            lane.resume = Some(Resume { due_at: delivery.due_at, id: delivery.id.to_owned(), at: Instant::now() });
        }
        lane.sending.clone()
    }

    /// Frees an attempt's place in its endpoint's lane; `answer` is how it went, if it was sent.
    pub(super) fn release(&self, endpoint: &str, answer: Option<Answered>) {
        let mut lanes = self.lock();
        if let Some(lane) = lanes.get_mut(endpoint) {
            lane.held = lane.held.saturating_sub(1);
            if let Some(answer) = answer {
                let ms = f64::from(answer.latency_ms);
                lane.answer_ms = Some(lane.answer_ms.map_or(ms, |average| average * 0.9 + ms * 0.1));
                lane.failing = !answer.succeeded;
            }
            // An empty lane is kept while it can resume, so that a top-up continues its queue.
            if lane.spent() {
                lanes.remove(endpoint);
                self.emptied.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The free places a lane of `capacity` needs before it claims again: half, so that a busy lane
/// claims in large batches rather than a few rows after every outcome written (each claim has a
/// fixed cost). A lane holding nothing may always claim.
pub(super) fn refill_room(capacity: usize) -> usize {
    (capacity / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(endpoint: &'a str, id: &'a str, seconds: i64) -> Position<'a> {
        Position {
            tenant_id: "ten_1",
            endpoint_id: endpoint,
            due_at: DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap(),
            id,
        }
    }

    const FAST: Answered = Answered { latency_ms: 5, succeeded: true };
    const SLOW: Answered = Answered { latency_ms: 500, succeeded: true };
    const FAILED: Answered = Answered { latency_ms: 5, succeeded: false };

    fn capacity_of(lanes: &Lanes, endpoint: &str) -> i32 {
        let held = lanes.snapshot(8);
        let at = held.endpoints.iter().position(|e| e == endpoint).expect("lane held");
        held.capacities[at]
    }

    #[test]
    fn a_lane_probes_until_it_answers_then_grows_with_its_speed() {
        let lanes = Lanes::default();
        lanes.take(&place("we_a", "wd_1", 0), 8);
        lanes.take(&place("we_a", "wd_2", 1), 8);
        assert_eq!(lanes.total(), 2);
        assert_eq!(capacity_of(&lanes, "we_a"), 8 * CLAIM_AHEAD_PROBE as i32, "not heard from yet");
        lanes.release("we_a", Some(FAST));
        assert_eq!(capacity_of(&lanes, "we_a"), 8 * CLAIM_AHEAD_FAST as i32, "answers fast");
        lanes.release("we_a", Some(FAILED));
        assert_eq!(capacity_of(&lanes, "we_a"), 8 * CLAIM_AHEAD_PROBE as i32, "failing: a probe again");

        lanes.take(&place("we_b", "wd_3", 0), 8);
        lanes.release("we_b", Some(SLOW));
        assert_eq!(capacity_of(&lanes, "we_b"), 8 * CLAIM_AHEAD as i32, "answers slowly");
    }

    #[test]
    fn a_lane_sends_per_endpoint_at_once() {
        let lanes = Lanes::default();
        let turns = lanes.take(&place("we_a", "wd_1", 0), 3);
        assert_eq!(turns.available_permits(), 3);
        let again = lanes.take(&place("we_a", "wd_2", 1), 3);
        assert!(Arc::ptr_eq(&turns, &again), "one lane per endpoint");
        let other = lanes.take(&place("we_b", "wd_3", 0), 3);
        assert!(!Arc::ptr_eq(&turns, &other), "endpoints do not share turns");
    }

    #[test]
    fn a_lane_resumes_after_the_furthest_row_it_claimed() {
        let lanes = Lanes::default();
        lanes.take(&place("we_a", "wd_2", 5), 8);
        lanes.take(&place("we_a", "wd_1", 3), 8);
        lanes.take(&place("we_a", "wd_9", 5), 8);
        let held = lanes.snapshot(8);
        assert_eq!(held.resume_due_at, vec![Some(place("", "", 5).due_at)]);
        assert_eq!(held.resume_id, vec![Some("wd_9".to_owned())], "ties are broken by id");
        assert_eq!(held.attempts, vec![3]);
        assert_eq!(held.tenants, vec!["ten_1".to_owned()]);
    }

    #[test]
    fn an_emptied_lane_is_kept_while_it_can_resume_and_refills_at_half_room() {
        let lanes = Lanes::default();
        for n in 0..10 {
            lanes.take(&place("we_a", &format!("wd_{n}"), n), 1);
        }
        // Capacity 1 × CLAIM_AHEAD_PROBE = 2 while not heard from; 10 held: no room.
        assert!(!lanes.refillable(1));
        for _ in 0..10 {
            lanes.release("we_a", Some(FAST));
        }
        assert_eq!(lanes.total(), 0);
        assert!(lanes.refillable(1), "empty and resumable: a top-up continues its queue");
        assert!(!lanes.emptied(), "kept while it can resume");
        assert_eq!(lanes.snapshot(1).endpoints, vec!["we_a".to_owned()]);
    }

    #[test]
    fn releasing_an_unknown_lane_changes_nothing() {
        let lanes = Lanes::default();
        lanes.release("we_gone", Some(FAST));
        lanes.release("we_gone", None);
        assert_eq!(lanes.total(), 0);
        assert!(!lanes.emptied());
    }

    #[test]
    fn refill_room_is_half_the_capacity_and_at_least_one() {
        assert_eq!(refill_room(128), 64);
        assert_eq!(refill_room(3), 1);
        assert_eq!(refill_room(1), 1);
        assert_eq!(refill_room(0), 1);
    }
}
