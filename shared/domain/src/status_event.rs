//! What the clinic's EMR learns when an action changes: the event published
//! to EventBridge (`publish-action-events`) and, on a laptop, streamed by the
//! local runner. Ids and money only: no invoice text, no patient name, no
//! link token. Its JSON Schema is `docs/events/payment-action-changed.schema.json`.

use serde::{Deserialize, Serialize};

use super::{Action, ActionId, ActionStatus, ClinicId, Currency, Timestamp, VisitId};

/// EventBridge's `Source` of every visitpay event.
pub const EVENT_SOURCE: &str = "visitpay";
/// EventBridge's `DetailType` of a change of an action.
pub const ACTION_CHANGED: &str = "Payment action changed";

/// One committed change of an action that someone watching it would see.
/// `(action_id, version)` names it: a consumer de-duplicates on that pair
/// and orders an action's events by `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionChanged {
    pub clinic_id: ClinicId,
    pub visit_id: VisitId,
    pub action_id: ActionId,
    pub status: ActionStatus,
    /// `None` for the action's first event (assigned).
    pub previous_status: Option<ActionStatus>,
    pub amount: i64,
    pub currency: Currency,
    pub refunded_amount: i64,
    pub disputed: bool,
    pub refund_needed: bool,
    pub version: u64,
    /// When the change was committed (the action's last history entry).
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

/// The part of an action its event shows: a write that leaves it alone
/// (reconcile noting it checked, a refund attempt reserved, a replacement
/// Checkout Session) publishes nothing.
fn visible(action: &Action) -> (ActionStatus, i64, bool, bool) {
    (action.status(), action.refunded().amount, action.disputed(), action.refund_needed())
}

impl ActionChanged {
    /// The event for `action` as committed at `version`, `previous` as it was
    /// before the write, at its version (`None` when the write created it);
    /// `None` when nothing an observer sees changed.
    pub fn between(previous: Option<(&Action, u64)>, action: &Action, version: u64) -> Option<ActionChanged> {
        if previous.is_some_and(|(p, at)| at >= version || visible(p) == visible(action)) {
            return None;
        }
        Some(ActionChanged {
            clinic_id: action.clinic_id().clone(),
            visit_id: action.visit_id().clone(),
            action_id: action.action_id().clone(),
            status: action.status(),
            previous_status: previous.map(|(p, _)| p.status()),
            amount: action.total().amount,
            currency: action.currency(),
            refunded_amount: action.refunded().amount,
            disputed: action.disputed(),
            refund_needed: action.refund_needed(),
            version,
            at: action.history().last_at().unwrap_or(action.created_at()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{action, opened, paid, refunded, reserved, step};
    use crate::RefundState;

    #[test]
    fn the_first_event_is_the_assignment_and_has_no_previous_status() {
        let assigned = action();
        let event = ActionChanged::between(None, &assigned, 1).unwrap();
        assert_eq!((event.status, event.previous_status, event.version), (ActionStatus::Assigned, None, 1));
        assert_eq!((event.amount, event.currency.code(), event.refunded_amount), (4500, "cad", 0));
        assert_eq!(event.at, assigned.created_at());
    }

    /// Versions as the store counts its writes: assign 1, reserve 2, open 3, pay 4…
    #[test]
    fn each_visible_change_is_one_event_and_bookkeeping_writes_are_none() {
        let assigned = action();
        let reserved = reserved(&assigned);
        assert_eq!(
            ActionChanged::between(Some((&assigned, 1)), &reserved, 2),
            None,
            "a reserved attempt shows nothing"
        );
        let open = step(&reserved, opened("cs_1")).action;
        let event = ActionChanged::between(Some((&reserved, 2)), &open, 3).unwrap();
        assert_eq!((event.previous_status, event.status), (Some(ActionStatus::Assigned), ActionStatus::CheckoutOpen));
        let paid = step(&open, paid("cs_1")).action;
        let event = ActionChanged::between(Some((&open, 3)), &paid, 4).unwrap();
        assert_eq!((event.status, event.version), (ActionStatus::Paid, 4));
        assert_eq!(event.at, paid.history().entries().last().unwrap().at);
        let part = step(&paid, refunded("pi_cs_1", &[("re_1", 1000, RefundState::Succeeded)])).action;
        let event = ActionChanged::between(Some((&paid, 4)), &part, 5).unwrap();
        assert_eq!((event.status, event.refunded_amount), (ActionStatus::PartiallyRefunded, 1000));
        let more = step(
            &part,
            refunded("pi_cs_1", &[("re_1", 1000, RefundState::Succeeded), ("re_2", 500, RefundState::Succeeded)]),
        )
        .action;
        let event = ActionChanged::between(Some((&part, 5)), &more, 6).unwrap();
        assert_eq!(
            (event.previous_status, event.status, event.refunded_amount),
            (Some(ActionStatus::PartiallyRefunded), ActionStatus::PartiallyRefunded, 1500),
            "a second partial refund keeps the status and is still an event"
        );
    }

    #[test]
    fn an_old_image_not_older_than_the_new_one_is_no_change() {
        let assigned = action();
        let open = step(&reserved(&assigned), opened("cs_1")).action;
        assert_eq!(ActionChanged::between(Some((&open, 3)), &assigned, 1), None);
        assert_eq!(ActionChanged::between(Some((&open, 3)), &open, 3), None);
    }

    #[test]
    fn the_event_carries_ids_and_money_only() {
        let json = serde_json::to_value(ActionChanged::between(None, &action(), 1).unwrap()).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = [
            "clinic_id",
            "visit_id",
            "action_id",
            "status",
            "previous_status",
            "amount",
            "currency",
            "refunded_amount",
            "disputed",
            "refund_needed",
            "version",
            "at",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let text = json.to_string();
        for private in ["Payer", "token", "patient", "label", "description"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
}
