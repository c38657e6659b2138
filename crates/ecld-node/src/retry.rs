//! Retries with exponential backoff and full jitter for chain and store calls.

use std::{future::Future, time::Duration};

use rand::Rng;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay (before jitter).
    pub initial: Duration,
    /// Largest delay (before jitter).
    pub max: Duration,
    /// Attempts in total, the first included.
    pub attempts: u32,
}

impl Backoff {
    /// Chain calls: quick first retry, up to ~10 attempts over about half a minute.
    pub const CHAIN: Self =
        Self { initial: Duration::from_millis(100), max: Duration::from_secs(5), attempts: 10 };
    /// Store calls: the store may be down for a while; about a minute in total.
    pub const STORE: Self =
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(8), attempts: 12 };

    /// Upper bound of the delay before attempt `n` (0-based, `n >= 1`): `initial * 2^(n-1)`,
    /// capped at `max`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(20);
        self.initial.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay before attempt `n`: uniform in `[ceiling/2, ceiling]` so that nodes that
    /// failed together do not retry together.
    pub fn delay(&self, n: u32) -> Duration {
        let c = self.ceiling(n);
        let half = c / 2;
        let extra = rand::thread_rng().gen_range(0..=c.saturating_sub(half).as_millis() as u64);
        half + Duration::from_millis(extra)
    }
}

/// What a failed attempt means.
pub trait Retryable {
    /// Whether trying again may succeed (network, timeouts, 5xx), as opposed to a definite
    /// answer (a revert, a hash mismatch).
    fn is_transient(&self) -> bool;
}

/// Runs `op` until it succeeds, fails with a non-transient error, or attempts run out; returns
/// the last error then. `what` names the operation in logs.
pub async fn retry<T, E, F, Fut>(policy: Backoff, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.attempts => {
                let d = policy.delay(attempt);
                tracing::debug!(target: "ecld_node", %e, attempt, delay_ms = d.as_millis() as u64, "{what} failed, retrying");
                metrics::counter!("ecld_node_retries_total", "op" => what.to_owned()).increment(1);
                tokio::time::sleep(d).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug)]
    struct E(bool);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e{}", self.0)
        }
    }
    impl Retryable for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    const FAST: Backoff =
        Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(4), attempts: 5 };

    #[test]
    fn delays_grow_are_capped_and_jittered_within_bounds() {
        let b = Backoff::CHAIN;
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(30), Duration::from_secs(5));
        for n in 1..12 {
            let d = b.delay(n);
            assert!(d >= b.ceiling(n) / 2 && d <= b.ceiling(n), "{d:?} at {n}");
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, E> = retry(FAST, "op", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 3 { Err(E(true)) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test]
    async fn definite_errors_and_exhaustion_stop() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = retry(FAST, "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E(false))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = retry(FAST, "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E(true))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
