//! A private (uninsured) invoice and its state machine:
//! `unprocessed → selected → pending(action) → paid`, `pending → selected` when
//! the action ends without payment, `paid → unprocessed` after a full refund.
//! An invoice belongs to at most one live action: `pending` carries it.

use serde::{Deserialize, Deserializer, Serialize};

use super::{ActionId, ClinicId, Currency, DomainError, InvoiceId, Money, PatientId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Unprocessed,
    Selected,
    Pending,
    Paid,
}

impl InvoiceStatus {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// What a transition implies for the action's invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceEffect {
    Unchanged,
    /// Back to `selected` (cancelled, expired, failed).
    Release,
    MarkPaid,
    /// Owed again after a full refund.
    Reopen,
    /// Paid again: a refund that had reopened them failed. Only invoices
    /// still free and last paid by this action follow (`Invoice::follow`).
    Repay,
}

impl InvoiceEffect {
    /// The state an invoice held by the action must be in, and the state it
    /// moves to: the one definition of these moves (see `Invoice::follow`).
    pub fn invoice_move(self) -> Option<(InvoiceStatus, InvoiceStatus)> {
        match self {
            InvoiceEffect::Unchanged => None,
            InvoiceEffect::Release => Some((InvoiceStatus::Pending, InvoiceStatus::Selected)),
            InvoiceEffect::MarkPaid => Some((InvoiceStatus::Pending, InvoiceStatus::Paid)),
            InvoiceEffect::Reopen => Some((InvoiceStatus::Paid, InvoiceStatus::Unprocessed)),
            // From unprocessed or selected: see `Invoice::follow`.
            InvoiceEffect::Repay => None,
        }
    }
}

/// A calendar date, `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ServiceDate(String);

impl ServiceDate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Exactly `YYYY-MM-DD`, a real calendar day, year 1900 to 2999 (no
    /// signs, no extended years: what `format: date` means to clients).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let shape = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !shape {
            return Err(DomainError::InvalidDate);
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(s, format).map_err(|_| DomainError::InvalidDate)?;
        if !(1900..=2999).contains(&date.year()) {
            return Err(DomainError::InvalidDate);
        }
        Ok(ServiceDate(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for ServiceDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ServiceDate::parse(&s).map_err(serde::de::Error::custom)
    }
}

const MAX_DESCRIPTION_CHARS: usize = 500;

/// The body of `PUT /patients/{patient_id}/invoices/{invoice_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub description: String,
    pub service_date: String,
    /// What an insurer's receipt needs, when the billing system knows it.
    #[serde(default)]
    pub receipt: ReceiptDetails,
}

const MAX_RECEIPT_FIELD_CHARS: usize = 200;

/// An optional text field as stored: trimmed, empty meaning absent; `None`
/// when it is longer than `max_chars`.
pub(crate) fn optional_text(value: Option<String>, max_chars: usize) -> Option<Option<String>> {
    match value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > max_chars => None,
        other => Some(other),
    }
}

/// An invoice's details for the patient's receipt (extended health insurers
/// ask for them): each optional; a receipt says which are missing rather
/// than inventing them. Never sent to Stripe, never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptDetails {
    /// The service as the receipt names it ("Psychothérapie"); the generic
    /// line otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profession: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
}

impl ReceiptDetails {
    /// Trimmed, empty fields dropped, each at most 200 characters.
    pub fn validate(self) -> Result<Self, DomainError> {
        let field = |v| optional_text(v, MAX_RECEIPT_FIELD_CHARS).ok_or(DomainError::ReceiptFieldTooLong);
        Ok(ReceiptDetails {
            service: field(self.service)?,
            provider_name: field(self.provider_name)?,
            profession: field(self.profession)?,
            registration_number: field(self.registration_number)?,
            patient_name: field(self.patient_name)?,
        })
    }
    pub fn is_empty(&self) -> bool {
        *self == ReceiptDetails::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub invoice_id: InvoiceId,
    pub amount: i64,
    pub currency: Currency,
    /// Clinical text, possibly health information: shown to staff, never
    /// logged, never sent to Stripe unless the clinic opted in.
    pub description: String,
    pub service_date: ServiceDate,
    pub receipt: ReceiptDetails,
    status: InvoiceStatus,
    /// Set exactly when `status` is `pending` or `paid`.
    action_id: Option<ActionId>,
    pub paid_at: Option<Timestamp>,
    /// The action whose full refund reopened it, while it is free: if that
    /// refund fails, the invoice is paid again by that action.
    refunded_from: Option<ActionId>,
    pub updated_at: Timestamp,
}

/// An invoice as a store kept it (`Invoice::restore`).
pub struct InvoiceParts {
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub invoice_id: InvoiceId,
    pub money: Money,
    pub description: String,
    pub service_date: ServiceDate,
    pub receipt: ReceiptDetails,
    pub status: InvoiceStatus,
    pub action_id: Option<ActionId>,
    pub paid_at: Option<Timestamp>,
    pub refunded_from: Option<ActionId>,
    pub updated_at: Timestamp,
}

/// The invoices of an action that follow its transitions, and those that
/// cannot because they were collected again elsewhere meanwhile.
#[derive(Debug, Default, PartialEq)]
pub struct Followed {
    /// Each moved invoice: its index in the invoices given, and what it becomes.
    pub moved: Vec<(usize, Invoice)>,
    /// The action's invoices a failed refund could not take back (`Repay`):
    /// collected again by another action, so the patient paid twice.
    pub collected_elsewhere: Vec<InvoiceId>,
}

/// Moves the invoices `action` holds through its transitions' `effects` (in
/// order); invoices no longer held by it are left alone. Repaying reads the
/// invoices: only those still free follow, and the others were collected
/// again, which the action must record.
pub fn follow_action(
    action: &ActionId,
    held: &[InvoiceId],
    effects: &[InvoiceEffect],
    invoices: &[Invoice],
    at: Timestamp,
) -> Followed {
    let mut followed = Followed::default();
    for (index, old) in invoices.iter().enumerate().filter(|(_, i)| held.contains(&i.invoice_id)) {
        let mut new = old.clone();
        for effect in effects {
            if let Some(next) = new.follow(action, *effect, at) {
                new = next;
            }
        }
        if new != *old {
            followed.moved.push((index, new));
        }
    }
    if effects.contains(&InvoiceEffect::Repay) {
        followed.collected_elsewhere = held
            .iter()
            .filter(|id| !followed.moved.iter().any(|(_, moved)| &moved.invoice_id == *id))
            .cloned()
            .collect();
    }
    followed
}

impl Invoice {
    /// Creates or replaces an invoice from the clinic's billing system. An
    /// invoice that is pending or paid is frozen: its amount is what a patient
    /// is paying or paid.
    pub fn import(
        existing: Option<&Invoice>,
        clinic_id: ClinicId,
        patient_id: PatientId,
        invoice_id: InvoiceId,
        input: InvoiceInput,
        at: Timestamp,
    ) -> Result<Invoice, DomainError> {
        let money = Money::new(input.amount, Currency::parse(&input.currency)?)?;
        if input.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(DomainError::DescriptionTooLong);
        }
        let service_date = ServiceDate::parse(&input.service_date)?;
        let receipt = input.receipt.validate()?;
        let status = match existing {
            None => InvoiceStatus::Unprocessed,
            Some(old) => match old.status {
                InvoiceStatus::Unprocessed | InvoiceStatus::Selected => old.status,
                InvoiceStatus::Pending | InvoiceStatus::Paid => {
                    return Err(DomainError::InvoiceLocked(old.invoice_id.to_string()))
                }
            },
        };
        Ok(Invoice {
            clinic_id,
            patient_id,
            invoice_id,
            amount: money.amount,
            currency: money.currency,
            description: input.description,
            service_date,
            receipt,
            status,
            action_id: None,
            paid_at: None,
            // The same bill imported again is still the one that was paid.
            refunded_from: existing
                .filter(|old| old.amount == money.amount && old.currency == money.currency)
                .and_then(|old| old.refunded_from.clone()),
            updated_at: at,
        })
    }

    /// An invoice as a store kept it; refused if it contradicts itself
    /// (pending or paid without its action, or the reverse): a hand-edited
    /// or corrupt record must not drive a decision.
    pub fn restore(parts: InvoiceParts) -> Result<Invoice, String> {
        let invoice = Invoice {
            clinic_id: parts.clinic_id,
            patient_id: parts.patient_id,
            invoice_id: parts.invoice_id,
            amount: parts.money.amount,
            currency: parts.money.currency,
            description: parts.description,
            service_date: parts.service_date,
            receipt: parts.receipt,
            status: parts.status,
            action_id: parts.action_id,
            paid_at: parts.paid_at,
            refunded_from: parts.refunded_from,
            updated_at: parts.updated_at,
        };
        if !invoice.is_consistent() {
            return Err(format!(
                "invoice {} is {:?} with action {:?}",
                invoice.invoice_id, invoice.status, invoice.action_id
            ));
        }
        Ok(invoice)
    }

    pub fn status(&self) -> InvoiceStatus {
        self.status
    }
    pub fn action_id(&self) -> Option<&ActionId> {
        self.action_id.as_ref()
    }
    pub fn money(&self) -> Money {
        Money { amount: self.amount, currency: self.currency }
    }

    fn next(&self, status: InvoiceStatus, action_id: Option<ActionId>, at: Timestamp) -> Invoice {
        Invoice { status, action_id, updated_at: at, ..self.clone() }
    }

    /// "Make a payment": ready to collect. Selecting a selected invoice is a
    /// no-op (`None`), so a repeated click is harmless.
    pub fn select(&self, at: Timestamp) -> Result<Option<Invoice>, DomainError> {
        match self.status {
            InvoiceStatus::Unprocessed => Ok(Some(self.next(InvoiceStatus::Selected, None, at))),
            InvoiceStatus::Selected => Ok(None),
            InvoiceStatus::Pending => Err(DomainError::InvoicePending(self.invoice_id.to_string())),
            InvoiceStatus::Paid => Err(DomainError::InvoicePaid(self.invoice_id.to_string())),
        }
    }

    /// Reserves a selected invoice for one action.
    pub fn reserve_for(&self, action: &ActionId, at: Timestamp) -> Result<Invoice, DomainError> {
        match self.status {
            InvoiceStatus::Selected => {
                let mut next = self.next(InvoiceStatus::Pending, Some(action.clone()), at);
                next.refunded_from = None;
                Ok(next)
            }
            InvoiceStatus::Unprocessed => Err(DomainError::InvoiceNotSelected(self.invoice_id.to_string())),
            InvoiceStatus::Pending => Err(DomainError::InvoicePending(self.invoice_id.to_string())),
            InvoiceStatus::Paid => Err(DomainError::InvoicePaid(self.invoice_id.to_string())),
        }
    }

    /// The invoice follows its action's transition: only an invoice in the
    /// move's starting state and held by `action` moves; anything else is
    /// left alone (`None`). Held means `pending` or `paid`; `paid_at` is set
    /// exactly while paid.
    ///
    /// `Repay` (a full refund failed) takes back an invoice that refund
    /// reopened, if it is still free (unprocessed or selected); one collected
    /// again meanwhile stays with its new action.
    pub fn follow(&self, action: &ActionId, effect: InvoiceEffect, at: Timestamp) -> Option<Invoice> {
        if effect == InvoiceEffect::Repay {
            let free = matches!(self.status, InvoiceStatus::Unprocessed | InvoiceStatus::Selected);
            return (free && self.refunded_from.as_ref() == Some(action)).then(|| {
                let mut next = self.next(InvoiceStatus::Paid, Some(action.clone()), at);
                (next.paid_at, next.refunded_from) = (Some(at), None);
                next
            });
        }
        let (from, to) = effect.invoice_move()?;
        (self.status == from && self.action_id.as_ref() == Some(action)).then(|| {
            let held = matches!(to, InvoiceStatus::Pending | InvoiceStatus::Paid);
            let mut next = self.next(to, held.then(|| action.clone()), at);
            next.paid_at = (to == InvoiceStatus::Paid).then_some(at);
            next.refunded_from = (effect == InvoiceEffect::Reopen).then(|| action.clone());
            next
        })
    }

    /// The action whose refund reopened this invoice, while it is free.
    pub fn refunded_from(&self) -> Option<&ActionId> {
        self.refunded_from.as_ref()
    }

    /// Storage hands back what it was given; this catches a hand-edited or
    /// corrupted item before it can drive a decision.
    pub fn is_consistent(&self) -> bool {
        matches!(
            (self.status, &self.action_id),
            (InvoiceStatus::Unprocessed | InvoiceStatus::Selected, None)
                | (InvoiceStatus::Pending | InvoiceStatus::Paid, Some(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_details_are_trimmed_and_bounded() {
        let details = ReceiptDetails {
            service: Some("  Psychothérapie ".into()),
            profession: Some(" ".into()),
            ..Default::default()
        };
        let kept = details.validate().unwrap();
        assert_eq!((kept.service.as_deref(), kept.profession), (Some("Psychothérapie"), None));
        let long = ReceiptDetails { provider_name: Some("é".repeat(201)), ..Default::default() };
        assert_eq!(long.validate(), Err(DomainError::ReceiptFieldTooLong));
        assert!(ReceiptDetails { provider_name: Some("é".repeat(200)), ..Default::default() }.validate().is_ok());
    }

    fn at() -> Timestamp {
        time::OffsetDateTime::UNIX_EPOCH
    }

    fn invoice() -> Invoice {
        Invoice::import(
            None,
            ClinicId::parse("c").unwrap(),
            PatientId::parse("p").unwrap(),
            InvoiceId::parse("1042").unwrap(),
            InvoiceInput {
                amount: 4500,
                currency: "cad".into(),
                description: "x".into(),
                service_date: "2026-11-02".into(),
                receipt: Default::default(),
            },
            at(),
        )
        .unwrap()
    }

    #[test]
    fn walks_the_happy_path() {
        let a = ActionId::parse("a1").unwrap();
        let inv = invoice();
        assert_eq!(inv.status(), InvoiceStatus::Unprocessed);
        let sel = inv.select(at()).unwrap().unwrap();
        assert_eq!(sel.status(), InvoiceStatus::Selected);
        assert_eq!(sel.select(at()).unwrap(), None, "selecting twice changes nothing");
        let pending = sel.reserve_for(&a, at()).unwrap();
        assert_eq!((pending.status(), pending.action_id()), (InvoiceStatus::Pending, Some(&a)));
        let paid = pending.follow(&a, InvoiceEffect::MarkPaid, at()).unwrap();
        assert_eq!((paid.status(), paid.paid_at), (InvoiceStatus::Paid, Some(at())));
        let owed = paid.follow(&a, InvoiceEffect::Reopen, at()).unwrap();
        assert_eq!((owed.status(), owed.action_id(), owed.paid_at), (InvoiceStatus::Unprocessed, None, None));
        assert!([&inv, &sel, &pending, &paid, &owed].iter().all(|i| i.is_consistent()));
    }

    #[test]
    fn one_live_action_at_a_time() {
        let (a, b) = (ActionId::parse("a").unwrap(), ActionId::parse("b").unwrap());
        let pending = invoice().select(at()).unwrap().unwrap().reserve_for(&a, at()).unwrap();
        assert_eq!(pending.reserve_for(&b, at()), Err(DomainError::InvoicePending("1042".into())));
        assert!(pending.follow(&b, InvoiceEffect::Release, at()).is_none(), "another action cannot release it");
        assert!(pending.follow(&b, InvoiceEffect::MarkPaid, at()).is_none());
        assert_eq!(pending.follow(&a, InvoiceEffect::Release, at()).unwrap().status(), InvoiceStatus::Selected);
    }

    #[test]
    fn an_invoice_follows_only_the_action_holding_it_from_the_expected_state() {
        let (a, b) = (ActionId::parse("a").unwrap(), ActionId::parse("b").unwrap());
        let unprocessed = invoice();
        let selected = unprocessed.select(at()).unwrap().unwrap();
        let pending = selected.reserve_for(&a, at()).unwrap();
        let paid = pending.follow(&a, InvoiceEffect::MarkPaid, at()).unwrap();
        let effects =
            [InvoiceEffect::Unchanged, InvoiceEffect::Release, InvoiceEffect::MarkPaid, InvoiceEffect::Reopen];
        let mut moves = 0;
        for effect in effects {
            for inv in [&unprocessed, &selected, &pending, &paid] {
                assert_eq!(inv.follow(&b, effect, at()), None, "only the holding action moves it");
                let Some(moved) = inv.follow(&a, effect, at()) else { continue };
                moves += 1;
                let (from, to) = effect.invoice_move().unwrap();
                assert_eq!((inv.status(), moved.status()), (from, to));
                assert_eq!(moved.updated_at, at());
                assert_eq!(moved.paid_at.is_some(), to == InvoiceStatus::Paid);
                assert!(moved.is_consistent());
            }
        }
        assert_eq!(moves, 3, "release and mark paid from pending, reopen from paid; nothing else");
    }

    #[test]
    fn refuses_what_the_state_forbids() {
        let a = ActionId::parse("a").unwrap();
        assert_eq!(invoice().reserve_for(&a, at()), Err(DomainError::InvoiceNotSelected("1042".into())));
        let paid = invoice()
            .select(at())
            .unwrap()
            .unwrap()
            .reserve_for(&a, at())
            .unwrap()
            .follow(&a, InvoiceEffect::MarkPaid, at())
            .unwrap();
        assert_eq!(paid.select(at()), Err(DomainError::InvoicePaid("1042".into())));
        let reimport = Invoice::import(
            Some(&paid),
            paid.clinic_id.clone(),
            paid.patient_id.clone(),
            paid.invoice_id.clone(),
            InvoiceInput {
                amount: 1,
                currency: "cad".into(),
                description: String::new(),
                service_date: "2026-01-01".into(),
                receipt: Default::default(),
            },
            at(),
        );
        assert_eq!(reimport, Err(DomainError::InvoiceLocked("1042".into())));
    }

    #[test]
    fn import_validates() {
        let bad = |amount: i64, currency: &str, date: &str| {
            Invoice::import(
                None,
                ClinicId::parse("c").unwrap(),
                PatientId::parse("p").unwrap(),
                InvoiceId::parse("i").unwrap(),
                InvoiceInput {
                    amount,
                    currency: currency.into(),
                    description: String::new(),
                    service_date: date.into(),
                    receipt: Default::default(),
                },
                at(),
            )
            .unwrap_err()
        };
        assert_eq!(bad(-5, "cad", "2026-01-01"), DomainError::InvalidAmount);
        assert_eq!(bad(100_000_000, "cad", "2026-01-01"), DomainError::InvalidAmount);
        assert_eq!(bad(5, "zzz", "2026-01-01"), DomainError::InvalidCurrency);
        assert_eq!(bad(5, "cad", "2026-02-30"), DomainError::InvalidDate);
        for date in ["+2026-01-01", "0000-01-01", "2026-1-01", "2026-01-01T00:00", "20260101"] {
            assert_eq!(bad(5, "cad", date), DomainError::InvalidDate, "{date}");
        }
    }

    /// Only invoices the action still holds follow it; a failed refund's
    /// invoices collected again by another action are named, so the action
    /// records that the patient paid twice.
    #[test]
    fn an_actions_invoices_follow_it_and_repaying_names_those_collected_elsewhere() {
        let (a, b) = (ActionId::parse("a").unwrap(), ActionId::parse("b").unwrap());
        let paid = invoice().select(at()).unwrap().unwrap().reserve_for(&a, at()).unwrap();
        let paid = paid.follow(&a, InvoiceEffect::MarkPaid, at()).unwrap();
        let reopened = paid.follow(&a, InvoiceEffect::Reopen, at()).unwrap();
        let mut other = reopened.clone();
        other.invoice_id = InvoiceId::parse("1043").unwrap();
        let taken = other.select(at()).unwrap().unwrap().reserve_for(&b, at()).unwrap();
        let held = [reopened.invoice_id.clone(), taken.invoice_id.clone()];
        let followed = follow_action(&a, &held, &[InvoiceEffect::Repay], &[reopened.clone(), taken.clone()], at());
        assert_eq!(followed.moved.len(), 1);
        assert_eq!((followed.moved[0].0, followed.moved[0].1.status()), (0, InvoiceStatus::Paid));
        assert_eq!(followed.collected_elsewhere, vec![taken.invoice_id.clone()]);
        let released = follow_action(&a, &held, &[InvoiceEffect::Release], &[reopened, taken], at());
        assert_eq!(released, Followed::default(), "nothing pending for a: nothing moves, nothing is named");
    }
}
