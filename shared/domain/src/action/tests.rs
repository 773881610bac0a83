//! The lifecycle: status moves, what they do to the invoices, and what is
//! recorded. Each ledger's rules are tested in its own module.

use super::*;
use crate::fixtures::*;

fn session(a: &Action) -> Option<&str> {
    a.checkout_session_id().map(SessionId::as_str)
}

#[test]
fn paid_path_records_history() {
    let a = reserved(&action());
    let open = step(&a, opened("cs_1"));
    assert_eq!(open.action.status(), ActionStatus::CheckoutOpen);
    assert_eq!(session(&open.action), Some("cs_1"));
    let paid = step(&open.action, paid("cs_1"));
    assert_eq!((paid.action.status(), paid.invoices), (ActionStatus::Paid, InvoiceEffect::MarkPaid));
    assert_eq!(
        (paid.action.paid_at(), paid.action.payment_intent_id().map(PaymentIntentId::as_str)),
        (Some(t(10)), Some("pi_cs_1"))
    );
    assert!(paid.changed && paid.outcomes.is_empty(), "the action's own payment alarms no one");
    let h = paid.action.history().entries();
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[2].from, h[2].to, h[2].actor.as_str()),
        (Some(ActionStatus::CheckoutOpen), ActionStatus::Paid, "stripe:evt_1")
    );
}

#[test]
fn duplicates_and_late_events_change_nothing() {
    let paid = step(&open_action(), paid("cs_1")).action;
    for e in [
        crate::fixtures::paid("cs_1"),
        ActionEvent::PaymentProcessing { session_id: sid("cs_1") },
        ActionEvent::PaymentFailed { session_id: sid("cs_1") },
        ActionEvent::CheckoutExpired { session_id: sid("cs_1") },
        opened("cs_1"),
        ActionEvent::Expire { closed: SessionsClosed::default() },
    ] {
        let tr = paid.apply(&e, t(10), &stripe());
        let unchanged =
            tr.as_ref().map(|tr| !tr.changed && tr.action == paid && tr.outcomes.is_empty()).unwrap_or(true);
        assert!(unchanged, "{e:?}");
    }
    assert!(paid.apply(&cancel(), t(1), &stripe()).is_err());
}

#[test]
fn cancel_releases_and_cannot_repeat() {
    let c = step(&action(), cancel());
    assert_eq!((c.action.status(), c.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
    assert!(matches!(
        c.action.apply(&cancel(), t(1), &stripe()),
        Err(DomainError::InvalidTransition(ActionStatus::Cancelled, "cancelled"))
    ));
}

#[test]
fn session_expiry_returns_to_assigned_only_for_the_current_session() {
    let open = open_action();
    assert!(!step(&open, ActionEvent::CheckoutExpired { session_id: sid("cs_0") }).changed);
    let back = step(&open, ActionEvent::CheckoutExpired { session_id: sid("cs_1") }).action;
    assert_eq!((back.status(), session(&back)), (ActionStatus::Assigned, None));
    let again = step(&back.reserve_checkout(t(20)).unwrap(), opened("cs_2")).action;
    assert_eq!((again.status(), again.checkout().attempts()), (ActionStatus::CheckoutOpen, 2));
}

#[test]
fn delayed_methods_end_paid_or_failed() {
    let proc_ = step(&open_action(), ActionEvent::PaymentProcessing { session_id: sid("cs_1") }).action;
    assert_eq!(proc_.status(), ActionStatus::Processing);
    assert!(proc_.apply(&cancel(), t(1), &stripe()).is_err());
    let failed = step(&proc_, ActionEvent::PaymentFailed { session_id: sid("cs_1") });
    assert_eq!((failed.action.status(), failed.invoices), (ActionStatus::Failed, InvoiceEffect::Release));
    assert_eq!(step(&proc_, paid("cs_1")).action.status(), ActionStatus::Paid);

    // Out of order: the failure overtakes "completed, unpaid"; the late one changes nothing.
    let failed_first = step(&open_action(), ActionEvent::PaymentFailed { session_id: sid("cs_1") }).action;
    assert_eq!(failed_first.status(), ActionStatus::Failed);
    assert!(!step(&failed_first, ActionEvent::PaymentProcessing { session_id: sid("cs_1") }).changed);
}

#[test]
fn history_keeps_every_money_movement_and_only_the_first_and_last_routine_entries() {
    let mut a = reserved(&action());
    for n in 0..100 {
        let open = step(&a, opened(&format!("cs_{n}"))).action;
        let back = step(&open, ActionEvent::CheckoutExpired { session_id: sid(&format!("cs_{n}")) }).action;
        a = back.reserve_checkout(t(5)).unwrap();
    }
    let paid = step(&step(&a, opened("cs_last")).action, paid("cs_last")).action;
    let history = paid.history();
    let routine: Vec<&HistoryEntry> = history.entries().iter().filter(|h| h.routine).collect();
    assert_eq!(routine.len(), ROUTINE_HISTORY_HEAD + ROUTINE_HISTORY_TAIL);
    assert_eq!(history.omitted() as usize, 201 - routine.len(), "100 sessions opened and expired, one more opened");
    assert!(routine[0].reason.contains("cs_0 opened"), "the first session stays");
    assert!(routine.last().unwrap().reason.contains("cs_last opened"), "the last session stays");
    assert_eq!(history.entries()[0].to, ActionStatus::Assigned, "the assignment stays first");
    assert_eq!(history.entries().last().unwrap().to, ActionStatus::Paid, "money is never left out");
    assert_eq!(history.entries().len(), 1 + routine.len() + 1);
}

#[test]
fn an_action_ends_only_once_its_current_session_is_closed() {
    let open = open_action();
    for end in [
        ActionEvent::Cancel { closed: SessionsClosed::default() },
        ActionEvent::Expire { closed: SessionsClosed::expired(vec![sid("cs_0")]) },
    ] {
        assert_eq!(open.apply(&end, t(20), &stripe()).unwrap_err(), DomainError::CheckoutChanged, "{end:?}");
    }
    let closed = SessionsClosed::expired(vec![sid("cs_0"), sid("cs_1")]);
    let cancelled = step(&open, ActionEvent::Cancel { closed });
    assert_eq!((cancelled.action.status(), cancelled.invoices), (ActionStatus::Cancelled, InvoiceEffect::Release));
    assert!(cancelled.action.history().entries().last().unwrap().reason.contains("cs_0, cs_1 expired at Stripe"));
    let gone = step(&open, ActionEvent::Expire { closed: SessionsClosed::disconnected() }).action;
    assert_eq!((gone.status(), gone.account_disconnected()), (ActionStatus::Expired, true));
}

#[test]
fn only_an_open_unexpired_action_is_payable() {
    let open = open_action();
    assert_eq!(open.payable(t(100)), Ok(()));
    assert_eq!(open.payable(t(3600)), Err(DomainError::ActionExpired), "its lifetime ends at expires_at");
    let processing = step(&open, ActionEvent::PaymentProcessing { session_id: sid("cs_1") }).action;
    assert_eq!(processing.payable(t(100)), Err(DomainError::PaymentProcessing));
    assert_eq!(paid_action().payable(t(100)), Err(DomainError::AlreadyPaid));
    let cancelled = step(&action(), cancel()).action;
    assert_eq!(cancelled.payable(t(100)), Err(DomainError::ActionClosed(ActionStatus::Cancelled)));
}

#[test]
fn how_the_patient_paid_is_kept_for_the_receipt_once() {
    let paid = paid_action();
    let method = PaymentMethod { kind: "card".into(), brand: Some("visa".into()), last4: Some("4242".into()) };
    let event = ActionEvent::PaymentMethod { payment_intent: pi("pi_cs"), method: method.clone() };
    let told = step(&paid, event.clone());
    assert_eq!((told.changed, told.action.payment_method()), (true, Some(&method)));
    assert!(!step(&told.action, event).changed, "told twice");
    let other = ActionEvent::PaymentMethod { payment_intent: pi("pi_other"), method };
    assert!(!step(&paid, other).changed, "another payment's method is not this one's");
}

/// A store's record must not drive a decision when it contradicts itself.
#[test]
fn a_record_that_contradicts_itself_is_refused() {
    let paid = paid_action();
    let parts = |a: &Action, payment: Option<Payment>| ActionParts {
        clinic_id: a.clinic_id.clone(),
        action_id: a.action_id.clone(),
        visit_id: a.visit_id.clone(),
        patient_id: a.patient_id.clone(),
        label: a.label.clone(),
        locale: a.locale,
        lines: a.lines.clone(),
        total: a.total,
        terms: a.terms.clone(),
        token_hash: a.token_hash.clone(),
        created_at: a.created_at,
        expires_at: a.expires_at,
        status: a.status,
        payment,
        account_disconnected: a.account_disconnected,
        contacts: a.contacts.clone(),
        messages: a.messages.clone(),
        checkout: a.checkout.clone(),
        refunds: a.refunds.clone(),
        disputes: a.disputes.clone(),
        late: a.late.clone(),
        checks: a.checks.clone(),
        history: a.history.clone(),
    };
    assert_eq!(Action::restore(parts(&paid, paid.payment.clone())).unwrap(), paid, "restored whole");
    assert!(Action::restore(parts(&paid, None)).is_err(), "paid without its payment");
    assert!(Action::restore(parts(&action(), paid.payment.clone())).is_err(), "a payment on an unpaid action");
}
