//! Chain time: what `block.timestamp` of the next block will be, as far as the node can tell.
//!
//! The Marketplace compares a task's deadline with `block.timestamp` (a claim or a proof in a
//! block stamped after the deadline reverts), not with anyone's wall clock. The two drift
//! apart: a chain under load mines many blocks per second while each block must be stamped at
//! least one second after its parent, so its timestamps run ahead of the wall clock (by tens
//! of seconds in a 1,000-task run on the devnet); a chain may also lag a little behind.
//!
//! The follower reads the header of the newest block it handles and keeps its timestamp and
//! the moment it saw it. The estimate of chain now is
//!
//! ```text
//! chain_now = max(head.timestamp + (time elapsed since the head was seen), wall clock)
//! ```
//!
//! - `head.timestamp + elapsed`: chain time advances at least as fast as real time, and a
//!   chain that ran ahead stays ahead (its next block is stamped at least `head + 1`).
//! - `max(…, wall clock)`: a quiet chain (no block for a while) or a node that has not read a
//!   header yet still gets real time; the next block is stamped no earlier than the wall clock
//!   on the devnet, and close to it on a real chain.
//!
//! It can be off both ways. Behind: on a busy chain each block adds at least a second, so the
//! blocks mined since the follower last read the head (it reads it at every new block while
//! subscribed) are missing; the claim margin ([`super::Tuning::deadline_margin`]) covers that.
//! Ahead: when a chain that ran ahead goes quiet, its next block is stamped `head + 1` until
//! the wall clock catches up, not `head + elapsed`; that only makes the node more careful
//! about claiming.
//!
//! The node uses it to claim a task only if `chain_now + margin + run allowance` is still
//! before the deadline ([`claimable`], [`run_allowance`]). Giving up a proof is decided on a
//! bound that cannot be ahead, [`ChainClock::floor`] = `max(head.timestamp + 1, wall clock)`
//! (every later block is stamped after the head, and a devnet never stamps a block before the
//! wall clock): once it is past the deadline ([`past`]) no block can accept the proof, so the
//! node does not send it and pays no gas for a sure refusal.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How many recent task durations the median is taken over.
const SAMPLES: usize = 64;

/// The wall clock, unix seconds.
pub(super) fn wall_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Chain now, unix seconds: `max(head_timestamp + since_seen, wall)` (rounded down), or the
/// wall clock before any header was seen. See the module documentation.
pub(super) fn chain_now(head: Option<(u64, Duration)>, wall: u64) -> u64 {
    head.map_or(wall, |(ts, since)| ts.saturating_add(since.as_secs()).max(wall))
}

/// The earliest timestamp of the next block: after the head's (`head`, if one was seen), and
/// not before the wall clock.
pub(super) fn next_block_floor(head: Option<u64>, wall: u64) -> u64 {
    head.map_or(wall, |ts| ts.saturating_add(1).max(wall))
}

/// Seconds a claimed task is expected to need until its proof is on chain: twice the median of
/// this node's recent claim-to-settlement times (covering the slower half and the jitter),
/// at least `floor` (also used before the node has finished a task), and never more than the
/// task's own run-time limit `max_runtime_s` (plus `floor` for the claim, fetch, upload and
/// submission around the run): a task that may run long is not refused for that if the node
/// runs such tasks quickly, and a cheap task with a short deadline stays claimable.
pub(super) fn run_allowance(max_runtime_s: u32, median: Option<Duration>, floor: Duration) -> u64 {
    let observed = median.map_or(0, |m| m.saturating_mul(2).as_secs_f64().ceil() as u64);
    let wanted = observed.max(floor.as_secs());
    wanted.min(u64::from(max_runtime_s).saturating_add(floor.as_secs()))
}

/// Whether a task with `deadline` may be claimed at chain time `now`: the claim, the run (its
/// `allowance`) and the proof fit before the deadline with `margin` to spare.
pub(super) fn claimable(deadline: u64, now: u64, margin: Duration, allowance: u64) -> bool {
    now.saturating_add(margin.as_secs()).saturating_add(allowance) < deadline
}

/// Whether a task with `deadline` can no longer be proven at chain time `now` (the contract
/// refuses a proof in a block stamped after the deadline).
pub(super) const fn past(deadline: u64, now: u64) -> bool {
    now > deadline
}

/// The newest block header the node saw and its recent task durations.
#[derive(Debug, Default)]
pub(super) struct ChainClock {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Number and timestamp of the newest header seen, and when it was seen.
    head: Option<(u64, u64, Instant)>,
    /// Recent claim-to-settlement durations, oldest first.
    durations: VecDeque<Duration>,
}

impl ChainClock {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the header of block `number`, stamped `timestamp`. An older block than the one
    /// kept is ignored unless the chain went back (a reorganisation or a restarted chain: the
    /// caller then passes `reset`).
    pub(super) fn saw_head(&self, number: u64, timestamp: u64, reset: bool) {
        let mut s = self.state();
        if reset || s.head.is_none_or(|(n, _, _)| number >= n) {
            s.head = Some((number, timestamp, Instant::now()));
        }
    }

    /// Chain now, unix seconds (see the module documentation).
    pub(super) fn now(&self) -> u64 {
        let head = self.state().head.map(|(_, ts, seen)| (ts, seen.elapsed()));
        chain_now(head, wall_unix())
    }

    /// The earliest timestamp the next block can have: `max(head + 1, wall clock)`.
    pub(super) fn floor(&self) -> u64 {
        let head = self.state().head.map(|(_, ts, _)| ts);
        next_block_floor(head, wall_unix())
    }

    /// Records how long a task took from claim to settlement.
    pub(super) fn task_took(&self, took: Duration) {
        let mut s = self.state();
        if s.durations.len() >= SAMPLES {
            s.durations.pop_front();
        }
        s.durations.push_back(took);
    }

    /// The median of the recent claim-to-settlement durations, if any.
    pub(super) fn median(&self) -> Option<Duration> {
        let s = self.state();
        let mut d: Vec<Duration> = s.durations.iter().copied().collect();
        d.sort_unstable();
        d.get(d.len() / 2).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_secs(5);

    #[test]
    fn chain_now_follows_a_chain_running_ahead_and_never_falls_behind_the_wall_clock() {
        // No header yet: the wall clock.
        assert_eq!(chain_now(None, 1_000), 1_000);
        // The chain runs 40 s ahead; 3 s after its head was seen, it is 43 s ahead.
        assert_eq!(chain_now(Some((1_040, Duration::from_secs(3))), 1_003), 1_043);
        // A quiet chain whose last block is old: the wall clock.
        assert_eq!(chain_now(Some((900, Duration::from_secs(10))), 1_000), 1_000);
    }

    #[test]
    fn a_task_is_claimed_only_if_the_margin_and_the_run_fit_before_the_deadline_in_chain_time() {
        // The wall clock is 1_000 and the chain 40 s ahead: a deadline 30 s away by the wall
        // clock has already passed in chain time.
        let now = chain_now(Some((1_040, Duration::ZERO)), 1_000);
        let allowance = run_allowance(10, None, FLOOR);
        assert!(!claimable(1_030, now, MARGIN, allowance));
        // now + margin + allowance = 1_048: a deadline of 1_048 is too near, 1_049 fits.
        assert_eq!(allowance, 3);
        assert!(!claimable(1_048, now, MARGIN, allowance));
        assert!(claimable(1_049, now, MARGIN, allowance));
    }

    #[test]
    fn the_run_allowance_follows_the_observed_median_within_the_floor_and_the_task_limit() {
        // Nothing observed yet: the floor.
        assert_eq!(run_allowance(60, None, FLOOR), 3);
        // Fast tasks (median 0.4 s): still the floor, so a short deadline stays claimable.
        assert_eq!(run_allowance(60, Some(Duration::from_millis(400)), FLOOR), 3);
        // Slower tasks (median 7.2 s): twice the median, rounded up.
        assert_eq!(run_allowance(60, Some(Duration::from_millis(7_200)), FLOOR), 15);
        // Never more than the task may run plus the floor.
        assert_eq!(run_allowance(2, Some(Duration::from_secs(30)), FLOOR), 5);
    }

    #[test]
    fn a_proof_is_doomed_only_once_chain_time_is_past_the_deadline() {
        assert!(!past(1_000, 999));
        assert!(!past(1_000, 1_000), "a block stamped at the deadline still accepts the proof");
        assert!(past(1_000, 1_001));
        // The bound used for proofs: a head stamped at the deadline dooms them (the next block
        // is stamped after it), a head stamped before it does not, however long ago it was
        // seen (a quiet chain that ran ahead stamps its next block head + 1).
        assert!(past(1_000, next_block_floor(Some(1_000), 900)));
        assert!(!past(1_000, next_block_floor(Some(999), 900)));
        assert!(past(1_000, next_block_floor(None, 1_001)));
        assert!(past(1_000, next_block_floor(Some(500), 1_001)), "the wall clock is a floor");
    }

    #[test]
    fn the_clock_keeps_the_newest_header_unless_the_chain_went_back() {
        let c = ChainClock::default();
        let far = wall_unix() + 10_000;
        c.saw_head(10, far, false);
        assert!(c.now() >= far);
        // An older block read later (a catch-up read) does not move the clock back.
        c.saw_head(9, far - 5_000, false);
        assert!(c.now() >= far);
        // After a reorganisation it does; the wall clock is the floor.
        c.saw_head(5, 0, true);
        let now = c.now();
        assert!(now < far && now >= wall_unix().saturating_sub(1), "{now}");
    }

    #[test]
    fn the_median_is_over_recent_tasks() {
        let c = ChainClock::default();
        assert_eq!(c.median(), None);
        for s in [1, 9, 2] {
            c.task_took(Duration::from_secs(s));
        }
        assert_eq!(c.median(), Some(Duration::from_secs(2)));
        for _ in 0..SAMPLES {
            c.task_took(Duration::from_secs(4));
        }
        assert_eq!(c.median(), Some(Duration::from_secs(4)), "old samples drop out");
    }
}
