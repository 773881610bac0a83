//! Reconcile's checks of an action with Stripe, and the order they come in.

use super::Action;
use crate::Timestamp;

/// Reconcile's checks of an action: when it last asked Stripe and learnt
/// nothing new, and, after failures in a row, when it may ask again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    pub checked_at: Option<Timestamp>,
    pub failed: u32,
    pub retry_after: Option<Timestamp>,
}

impl Action {
    /// When the action last changed or was last checked by reconcile, or,
    /// after failed checks, when it may be checked again: the order reconcile
    /// takes actions waiting on Stripe in.
    pub fn last_touched(&self) -> Timestamp {
        let changed = self.history.last_at().unwrap_or(self.created_at);
        [self.checks.checked_at, self.checks.retry_after].into_iter().flatten().fold(changed, Timestamp::max)
    }

    /// When reconcile should expire the action: the end of its lifetime, or
    /// later while failed checks back it off.
    pub fn lifetime_due(&self) -> Timestamp {
        self.checks.retry_after.map_or(self.expires_at, |r| r.max(self.expires_at))
    }

    /// Reconcile asked Stripe and learnt nothing new: not again before a while.
    pub fn mark_checked(&self, now: Timestamp) -> Action {
        Action { checks: Checks { checked_at: Some(now), failed: 0, retry_after: None }, ..self.clone() }
    }

    /// Reconcile could not ask Stripe about this action: it tries again
    /// after a backoff that doubles with each failure in a row (from `base`,
    /// at most six hours), behind the actions that are due.
    pub fn check_failed(&self, now: Timestamp, base: time::Duration) -> Action {
        let failed = self.checks.failed.saturating_add(1);
        let backoff = (base * 2i32.pow(failed.min(10) - 1)).min(time::Duration::hours(6));
        Action { checks: Checks { checked_at: Some(now), failed, retry_after: Some(now + backoff) }, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::*;

    #[test]
    fn a_failing_check_waits_behind_healthy_ones() {
        let open = open_action();
        let base = time::Duration::minutes(5);
        let once = open.check_failed(t(100), base);
        let twice = once.check_failed(t(200), base);
        assert_eq!((once.checks().failed, once.checks().retry_after), (1, Some(t(100) + base)));
        assert_eq!(twice.checks().retry_after, Some(t(200) + base * 2), "the backoff doubles");
        assert!(twice.last_touched() > open.last_touched());
        assert_eq!(twice.lifetime_due(), t(3600), "the backoff is shorter than its lifetime here");
        let many = (0..20).fold(open.clone(), |a, _| a.check_failed(t(300), base));
        assert_eq!(many.checks().retry_after, Some(t(300) + time::Duration::hours(6)), "at most six hours");
        let healthy = twice.mark_checked(t(400));
        assert_eq!((healthy.checks().failed, healthy.checks().retry_after), (0, None));
    }
}
