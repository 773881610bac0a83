//! An action's Checkout Sessions: each attempt reserved before Stripe is
//! called (so concurrent clicks and retries send the very same request), the
//! current one, and every one that may still be open, by id, so that ending
//! or paying the action closes exactly those.

use serde::{Deserialize, Serialize};

use super::{Action, ActionStatus, SessionsClosed};
use crate::{DomainError, SessionId, Timestamp};

/// One Checkout attempt: reserved first (so concurrent clicks agree on its
/// idempotency key and parameters), then opened with Stripe's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub reserved_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A Checkout Session visitpay asked Stripe for that may still be open:
/// recorded when its attempt is reserved, before Stripe is called, and given
/// its id once Stripe answers. An attempt whose answer was lost is still
/// found: its idempotency key gives back the same session for as long as any
/// session can be open (Stripe keeps a key's answer 24 hours; a session
/// lives at most 24). Closing sessions reads this list, never the clinic's
/// whole Stripe account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// When Stripe ends it (the attempt's `expires_at`): no longer open after.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// At most this many sessions of one action may be open at once. A session
/// is replaced only once it is near its end, so a patient has one or two;
/// the bound keeps the action small whatever a client does.
pub const MAX_OPEN_SESSIONS: usize = 20;

/// Stripe's clock and ours may differ: a session is taken as open until
/// this long after its `expires_at`.
pub const SESSION_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// A reserved attempt is reused only this long: long enough for concurrent
/// clicks and quick retries, short enough that its expiry stays in Stripe's bounds.
pub const RESERVATION_REUSE: time::Duration = time::Duration::seconds(60);

/// The action's Checkout attempts and sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkouts {
    /// How many attempts were reserved; each has its own idempotency key.
    pub(crate) attempts: u32,
    pub(crate) current: Option<Checkout>,
    pub(crate) open: Vec<OpenSession>,
}

impl Checkouts {
    pub fn new(attempts: u32, current: Option<Checkout>, open: Vec<OpenSession>) -> Self {
        Checkouts { attempts, current, open }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn current(&self) -> Option<&Checkout> {
        self.current.as_ref()
    }

    /// Every session recorded that may still be open (pruned when written).
    pub fn open(&self) -> &[OpenSession] {
        &self.open
    }

    pub fn current_session(&self) -> Option<&SessionId> {
        self.current.as_ref().and_then(|c| c.session_id.as_ref())
    }

    /// Reserves the next attempt, expiring `ttl_minutes` after `now`
    /// (within Stripe's 30 minutes to 24 hours, two minutes of margin each
    /// side for retries and clock skew), recorded among the open sessions.
    pub(crate) fn reserve(&mut self, now: Timestamp, ttl_minutes: u32) -> Result<(), DomainError> {
        let minutes = i64::from(ttl_minutes).clamp(32, 24 * 60 - 2);
        // Sessions past their end at Stripe are no longer open.
        self.open.retain(|s| s.expires_at + SESSION_CLOCK_SKEW > now);
        if self.open.len() >= MAX_OPEN_SESSIONS {
            return Err(DomainError::TooManyCheckoutSessions(MAX_OPEN_SESSIONS));
        }
        self.attempts += 1;
        let expires_at = now + time::Duration::minutes(minutes);
        self.current =
            Some(Checkout { attempt: self.attempts, reserved_at: now, expires_at, session_id: None, url: None });
        // Recorded before Stripe is called: whatever becomes of its answer,
        // the attempt's key finds its session again.
        self.open.push(OpenSession { attempt: self.attempts, session_id: None, expires_at });
        Ok(())
    }

    /// The reserved attempt to (re)send to Stripe, if it is recent enough.
    pub fn usable_reservation(&self, now: Timestamp) -> Option<&Checkout> {
        self.current.as_ref().filter(|c| c.session_id.is_none() && now - c.reserved_at < RESERVATION_REUSE)
    }

    /// Forgets a reserved attempt Stripe refused: no session was made.
    pub(crate) fn drop_reservation(&mut self, attempt: u32) -> bool {
        let reserved = self.current.as_ref().is_some_and(|c| c.attempt == attempt && c.session_id.is_none());
        if reserved {
            self.current = None;
            self.open.retain(|s| s.attempt != attempt);
        }
        reserved
    }

    /// The reserved attempt's session, as Stripe opened it; `false` if no
    /// attempt was reserved.
    pub(crate) fn opened(&mut self, session_id: &SessionId, url: &str, expires_at: Timestamp) -> bool {
        let Some(reserved) = self.current.as_ref() else { return false };
        let attempt = reserved.attempt;
        self.current = Some(Checkout {
            session_id: Some(session_id.clone()),
            url: Some(url.to_owned()),
            expires_at,
            ..reserved.clone()
        });
        let slot = OpenSession { attempt, session_id: Some(session_id.clone()), expires_at };
        match self.open.iter_mut().find(|s| s.attempt == attempt) {
            Some(recorded) => *recorded = slot,
            None => self.open.push(slot),
        }
        true
    }

    /// The current session expired at Stripe: the patient may open another.
    pub(crate) fn current_expired(&mut self, session_id: &SessionId) {
        self.current = None;
        self.forget(session_id);
    }

    /// A session Stripe reports expired or completed is no longer open.
    pub(crate) fn forget(&mut self, session_id: &SessionId) {
        self.open.retain(|s| s.session_id.as_ref() != Some(session_id));
    }

    /// Every session is closed (the action ended).
    pub(crate) fn all_closed(&mut self) {
        self.open.clear();
    }

    /// Whether `closed` closes every session that may still be open: the
    /// current one and every one recorded.
    pub(crate) fn closed_by(&self, closed: &SessionsClosed) -> bool {
        let current_open = self
            .current_session()
            .is_some_and(|current| !closed.account_disconnected && !closed.expired.contains(current));
        !current_open && self.open.iter().all(|s| covers(closed, s))
    }

    /// The sessions that may still be open at `now`: each recorded, not yet
    /// past its end at Stripe; and, for an action still open to payment
    /// recorded before the list existed, its current session.
    pub(crate) fn to_close(&self, now: Timestamp, open_to_payment: bool) -> Vec<OpenSession> {
        let mut open: Vec<OpenSession> =
            self.open.iter().filter(|s| s.expires_at + SESSION_CLOCK_SKEW > now).cloned().collect();
        if let (true, Some(Checkout { attempt, session_id: Some(id), expires_at, .. })) =
            (open_to_payment, &self.current)
        {
            if !self.open.iter().any(|s| s.attempt == *attempt) && *expires_at + SESSION_CLOCK_SKEW > now {
                open.push(OpenSession { attempt: *attempt, session_id: Some(id.clone()), expires_at: *expires_at });
            }
        }
        open
    }

    /// Forgets the sessions `closed` closed; whether any was.
    pub(crate) fn closed(&mut self, closed: &SessionsClosed) -> bool {
        let before = self.open.len();
        self.open.retain(|s| !covers(closed, s));
        self.open.len() != before
    }
}

/// Whether `closed` closes `session`: by its attempt, or by its id.
fn covers(closed: &SessionsClosed, session: &OpenSession) -> bool {
    closed.account_disconnected
        || closed.attempts.contains(&session.attempt)
        || session.session_id.as_ref().is_some_and(|id| closed.expired.contains(id))
}

/// The patient paying: whether they may, and the sessions that lets them open.
impl Action {
    /// Whether the patient may pay now, and why not.
    pub fn payable(&self, now: Timestamp) -> Result<(), DomainError> {
        match self.status {
            ActionStatus::Assigned | ActionStatus::CheckoutOpen if self.expires_at <= now => {
                Err(DomainError::ActionExpired)
            }
            ActionStatus::Assigned | ActionStatus::CheckoutOpen => Ok(()),
            ActionStatus::Processing => Err(DomainError::PaymentProcessing),
            ActionStatus::Paid | ActionStatus::PartiallyRefunded | ActionStatus::Refunded => {
                Err(DomainError::AlreadyPaid)
            }
            s @ (ActionStatus::Failed | ActionStatus::Cancelled | ActionStatus::Expired) => {
                Err(DomainError::ActionClosed(s))
            }
        }
    }

    /// Reserves a Checkout attempt: the next attempt number (its idempotency
    /// key) and its expiry, fixed before Stripe is called so that concurrent
    /// clicks and retries send Stripe the very same request.
    pub fn reserve_checkout(&self, now: Timestamp) -> Result<Action, DomainError> {
        if !self.status.is_open_to_payment() {
            return Err(DomainError::InvalidTransition(self.status, "opened for checkout"));
        }
        let mut next = self.clone();
        next.checkout.reserve(now, self.terms.checkout_ttl_minutes)?;
        Ok(next)
    }

    /// The reserved attempt to (re)send to Stripe, if it is recent enough.
    pub fn usable_reservation(&self, now: Timestamp) -> Option<&Checkout> {
        self.checkout.usable_reservation(now)
    }

    /// Forgets a reserved Checkout attempt Stripe refused: Stripe keeps that
    /// answer under its key, so the next click must reserve a new attempt.
    pub fn drop_reservation(&self, attempt: u32) -> Option<Action> {
        let mut next = self.clone();
        next.checkout.drop_reservation(attempt).then_some(next)
    }

    /// The sessions of this action that may still be open at `now`.
    pub fn sessions_to_close(&self, now: Timestamp) -> Vec<OpenSession> {
        self.checkout.to_close(now, self.status.is_open_to_payment())
    }

    /// The action once its other sessions are known closed (after a payment):
    /// bookkeeping, nothing a person sees.
    pub fn sessions_closed(&self, closed: &SessionsClosed) -> Option<Action> {
        let mut next = self.clone();
        next.checkout.closed(closed).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::ActionEvent;

    #[test]
    fn opening_needs_a_reservation_and_reservations_have_bounded_expiry() {
        assert!(action().apply(&opened("cs_1"), t(1), &stripe()).is_err());
        let r = action_with_ttl(30).reserve_checkout(t(0)).unwrap();
        let c = r.checkout().current().unwrap();
        assert_eq!((c.attempt, c.expires_at), (1, t(0) + time::Duration::minutes(32)));
        assert!(r.usable_reservation(t(59)).is_some());
        assert!(r.usable_reservation(t(60)).is_none(), "stale reservations are not reused");
        let opened = step(&r, opened("cs_1")).action;
        assert!(opened.usable_reservation(t(1)).is_none(), "an opened attempt is not a reservation");
        assert_eq!(opened.reserve_checkout(t(100)).unwrap().checkout().current().unwrap().attempt, 2);
        let paid_action = step(&opened, paid("cs_1")).action;
        assert!(paid_action.reserve_checkout(t(100)).is_err());
    }

    /// Every session the action asks Stripe for is recorded by its attempt
    /// before Stripe is called, given its id once Stripe answers, and
    /// forgotten once Stripe says it ended; the action cannot end while one
    /// it recorded is not closed; the list is bounded.
    #[test]
    fn the_actions_sessions_are_recorded_before_stripe_answers() {
        let reserved = reserved(&action());
        assert_eq!(
            reserved.checkout().open(),
            [OpenSession { attempt: 1, session_id: None, expires_at: t(5) + time::Duration::minutes(60) }]
        );
        let open = step(&reserved, opened("cs_1")).action;
        assert_eq!(open.checkout().open()[0].session_id, Some(sid("cs_1")));
        // A second attempt whose answer was lost: recorded, no id.
        let lost = open.reserve_checkout(t(100)).unwrap();
        assert_eq!(lost.checkout().open().len(), 2);
        let only_current = SessionsClosed::expired(vec![sid("cs_1")]);
        assert_eq!(
            lost.apply(&ActionEvent::Cancel { closed: only_current.clone() }, t(101), &stripe()).unwrap_err(),
            DomainError::CheckoutChanged,
            "the lost attempt's session may be open: the action does not end"
        );
        let both = SessionsClosed { attempts: vec![1, 2], ..only_current };
        let cancelled = step(&lost, ActionEvent::Cancel { closed: both });
        assert!(cancelled.action.checkout().open().is_empty());
        // Stripe's word that a session ended, or completed, forgets it.
        let expired = step(&open, ActionEvent::CheckoutExpired { session_id: sid("cs_1") }).action;
        assert!(expired.checkout().open().is_empty());
        let paid = step(&open, paid("cs_1")).action;
        assert!(paid.checkout().open().is_empty());
        // A refused attempt made no session.
        assert!(reserved.drop_reservation(1).unwrap().checkout().open().is_empty());
        // Bounded: sessions past their end are dropped; more than the bound
        // open at once is refused.
        let mut busy = action_with_ttl(24 * 60);
        for n in 0..MAX_OPEN_SESSIONS as i64 {
            busy = busy.reserve_checkout(t(n * 61)).unwrap();
        }
        assert_eq!(
            busy.reserve_checkout(t(2000)).unwrap_err(),
            DomainError::TooManyCheckoutSessions(MAX_OPEN_SESSIONS)
        );
        let next_day = t(2000) + time::Duration::days(1) + SESSION_CLOCK_SKEW;
        assert_eq!(busy.reserve_checkout(next_day).unwrap().checkout().open().len(), 1, "ended sessions are dropped");
    }

    /// After a payment, the action's other sessions are closed and recorded
    /// so; the payment's own session is no longer among those to close.
    #[test]
    fn after_a_payment_only_the_other_sessions_remain_to_close() {
        let open = step(&reserved(&action()), opened("cs_1")).action;
        let second = step(&open.reserve_checkout(t(100)).unwrap(), opened("cs_2")).action;
        let paid = step(&second, paid("cs_2")).action;
        let to_close: Vec<_> = paid.sessions_to_close(t(200)).into_iter().map(|s| s.session_id).collect();
        assert_eq!(to_close, [Some(sid("cs_1"))]);
        let closed = paid.sessions_closed(&SessionsClosed::expired(vec![sid("cs_1")])).unwrap();
        assert!(closed.sessions_to_close(t(200)).is_empty());
        assert!(
            closed.sessions_closed(&SessionsClosed::expired(vec![sid("cs_1")])).is_none(),
            "nothing more to record"
        );
    }
}
