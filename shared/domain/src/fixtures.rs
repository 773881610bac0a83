//! Fixtures for tests of the domain and of the crates above it (feature
//! `fixtures`): one action of 45.00 CAD, at fixed times, and the events
//! Stripe sends about it.

use crate::action::*;
use crate::{
    ActionId, Charged, ClinicId, ClinicTimeZone, Currency, InvoiceId, LineItemText, Locale, Money, PatientId,
    ReceiptIssuer, RefundRecord, RefundState, StripeAccountId, Timestamp, UserId, VisitId,
};

pub fn t(s: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
}

pub fn action() -> Action {
    Action::assign(
        NewAction {
            clinic_id: ClinicId::parse("c").unwrap(),
            action_id: ActionId::parse("a").unwrap(),
            visit_id: VisitId::parse("v").unwrap(),
            patient_id: PatientId::parse("p").unwrap(),
            label: "Payer".into(),
            locale: Locale::FrCa,
            lines: vec![ActionLine::new(InvoiceId::parse("1").unwrap(), 4500)],
            total: Money::new(4500, Currency::parse("cad").unwrap()).unwrap(),
            token_hash: "h".into(),
            expires_at: t(3600),
            stripe_account_id: StripeAccountId::parse("acct_1").unwrap(),
            checkout_ttl_minutes: 60,
            line_item_text: LineItemText::Generic,
            receipt_issuer: ReceiptIssuer::default(),
            time_zone: ClinicTimeZone::default(),
        },
        t(0),
        &Actor::Staff(UserId::parse("u").unwrap()),
    )
}

pub fn stripe() -> Actor {
    Actor::Stripe { event_id: "evt_1".into() }
}

pub fn step(a: &Action, e: ActionEvent) -> Transition {
    a.apply(&e, t(10), &stripe()).unwrap()
}

pub fn opened(sid: &str) -> ActionEvent {
    ActionEvent::CheckoutOpened { session_id: sid.into(), url: format!("https://pay.test/{sid}"), expires_at: t(1800) }
}

pub fn reserved(a: &Action) -> Action {
    a.reserve_checkout(t(5)).unwrap()
}

/// What Stripe says a session of the action's own charged.
pub fn charged(amount: i64) -> Option<Charged> {
    Some(Charged {
        amount: Some(amount),
        currency: Some("cad".into()),
        mode: Some("payment".into()),
        account: Some("acct_1".into()),
    })
}

pub fn paid(sid: &str) -> ActionEvent {
    ActionEvent::PaymentSucceeded {
        session_id: sid.into(),
        payment_intent: Some(format!("pi_{sid}")),
        charged: charged(4500),
    }
}

pub fn cancel() -> ActionEvent {
    ActionEvent::Cancel { closed: SessionsClosed::default() }
}

pub fn refunded(pi: &str, refunds: &[(&str, i64, RefundState)]) -> ActionEvent {
    ActionEvent::Refunded {
        payment_intent: pi.into(),
        refunds: refunds.iter().map(|(id, amount, status)| RefundRecord::new(*id, *amount, *status)).collect(),
        attempt: None,
    }
}
