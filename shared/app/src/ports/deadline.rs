//! The time by which the work in hand must be done: a Lambda invocation's
//! deadline (less a margin for the answer), carried with the task that does
//! the work. Calls to the outside (Stripe) end within it, however many a use
//! case makes: an answer late is worth nothing, and a function killed at its
//! timeout answers nothing at all.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the time its outside calls must end by.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// What is left of the current deadline, if the work in hand has one.
pub fn remaining() -> Option<Duration> {
    DEADLINE.try_with(|deadline| deadline.saturating_duration_since(Instant::now())).ok()
}

/// The deadline of a Lambda invocation that ends at `deadline_ms` (epoch
/// milliseconds, as Lambda's `Lambda-Runtime-Deadline-Ms` gives it), less
/// `margin` to answer in.
pub fn from_epoch_millis(deadline_ms: u64, margin: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(margin);
    Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_goes_with_the_work_and_only_with_it() {
        assert_eq!(remaining(), None);
        let left = within(Instant::now() + Duration::from_secs(5), async { remaining() }).await.unwrap();
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4), "{left:?}");
        assert_eq!(remaining(), None);
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let at = from_epoch_millis(now_ms + 10_000, Duration::from_secs(2));
        let until = at.saturating_duration_since(Instant::now());
        assert!(until <= Duration::from_secs(8) && until > Duration::from_secs(7), "{until:?}");
        assert!(from_epoch_millis(now_ms, Duration::from_secs(2)) <= Instant::now(), "a past deadline is now");
    }
}
