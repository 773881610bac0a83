//! Fixtures for tests of the domain and of the crates above it (feature
//! `fixtures`): one action of 45.00 CAD, at fixed times, and the events
//! Stripe sends about it.

use crate::action::*;
use crate::{
    ActionId, Charged, ClinicId, Currency, InvoiceId, LineItemText, Locale, Money, PatientId, PaymentIntentId,
    RefundId, RefundRecord, RefundState, SessionId, StripeAccountId, Timestamp, UserId, VisitId,
};

pub fn t(s: i64) -> Timestamp {
    time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
}

/// An amount in CAD, zero included (what is refunded or kept may be nothing).
pub fn cad(amount: i64) -> Money {
    Money { amount, currency: Currency::parse("cad").unwrap() }
}

pub fn sid(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

pub fn pi(s: &str) -> PaymentIntentId {
    PaymentIntentId::parse(s).unwrap()
}

pub fn re(s: &str) -> RefundId {
    RefundId::parse(s).unwrap()
}

/// The terms of the fixture action: account `acct_1`, an hour to pay.
pub fn terms(checkout_ttl_minutes: u32) -> Terms {
    Terms {
        stripe_account_id: StripeAccountId::parse("acct_1").unwrap(),
        checkout_ttl_minutes,
        line_item_text: LineItemText::Generic,
        receipt_issuer: None,
        time_zone: None,
        reminder_hours: Vec::new(),
    }
}

/// The fixture action, paid by Checkout Sessions of `ttl` minutes.
pub fn action_with_ttl(ttl: u32) -> Action {
    Action::assign(
        NewAction {
            clinic_id: ClinicId::parse("c").unwrap(),
            action_id: ActionId::parse("a").unwrap(),
            visit_id: VisitId::parse("v").unwrap(),
            patient_id: PatientId::parse("p").unwrap(),
            label: "Payer".into(),
            locale: Locale::FrCa,
            lines: vec![ActionLine::new(InvoiceId::parse("1").unwrap(), cad(4500))],
            total: cad(4500),
            token_hash: "h".into(),
            expires_at: t(3600),
            terms: terms(ttl),
            contacts: Default::default(),
        },
        t(0),
        &Actor::Staff(UserId::parse("u").unwrap()),
    )
}

pub fn action() -> Action {
    action_with_ttl(60)
}

pub fn stripe() -> Actor {
    Actor::Stripe { event_id: "evt_1".into() }
}

pub fn step(a: &Action, e: ActionEvent) -> Applied {
    a.apply(&e, t(10), &stripe()).unwrap()
}

pub fn opened(s: &str) -> ActionEvent {
    ActionEvent::CheckoutOpened { session_id: sid(s), url: format!("https://pay.test/{s}"), expires_at: t(1800) }
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

pub fn paid(s: &str) -> ActionEvent {
    ActionEvent::PaymentSucceeded {
        session_id: sid(s),
        payment_intent: Some(pi(&format!("pi_{s}"))),
        charged: charged(4500),
    }
}

pub fn cancel() -> ActionEvent {
    ActionEvent::Cancel { closed: SessionsClosed::default() }
}

pub fn refunded(payment_intent: &str, refunds: &[(&str, i64, RefundState)]) -> ActionEvent {
    ActionEvent::Refunded {
        payment_intent: pi(payment_intent),
        refunds: refunds.iter().map(|(id, amount, status)| RefundRecord::new(re(id), *amount, *status)).collect(),
        attempt: None,
    }
}

/// The fixture action, paid on session `cs`.
pub fn paid_action() -> Action {
    step(&action(), paid("cs")).action
}

/// The fixture action with session `cs_1` open.
pub fn open_action() -> Action {
    step(&reserved(&action()), opened("cs_1")).action
}
