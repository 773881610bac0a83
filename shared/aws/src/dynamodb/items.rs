//! What each write looks like as a DynamoDB item: its record's attributes
//! (`records`), its keys and index keys, its TTL; and its size by DynamoDB's
//! rules. The one mapping used by puts and by the embedded store, which
//! sizes every write as the item DynamoDB would store.

use aws_sdk_dynamodb::types::AttributeValue;

use super::attributes::{encode, epoch};
use super::records::{ActionRecord, InvoiceRecord, PaymentRecord, SettingsRecord};
use super::{connect, keys, messages};
use visitpay_app::ports::{Expect, IdempotencyRecord, Write};
use visitpay_domain::{Action, ActionStatus, Invoice, PaymentRef, PaymentSettings, StrayPayment};

pub use super::attributes::Item;

/// DynamoDB's largest item: "400 KB", where "1 KB = 1,024 bytes" (Amazon
/// DynamoDB Developer Guide, "Service, account, and table quotas").
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// TransactWriteItems "groups up to 100 action requests", and "the aggregate
/// size of the items in the transaction cannot exceed 4 MB" (API reference).
pub const MAX_TRANSACTION_ITEMS: usize = 100;
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;

/// How long charge events wait for a payment that is never recorded.
const PARKED_DAYS: i64 = 30;

pub fn settings_item(settings: &PaymentSettings) -> Item {
    encode(&SettingsRecord::from(settings), keys::settings(&settings.clinic_id))
}

pub fn invoice_item(invoice: &Invoice, version: u64) -> Item {
    let key = keys::invoice(&invoice.clinic_id, &invoice.patient_id, &invoice.invoice_id);
    encode(&InvoiceRecord::of(invoice, version), key)
}

pub fn action_item(action: &Action, version: u64) -> Item {
    let (clinic, id) = (action.clinic_id(), action.action_id());
    let mut item = encode(&ActionRecord::of(action, version), keys::action(id));
    item.insert(keys::GSI1PK.into(), AttributeValue::S(keys::visit_partition(clinic, action.visit_id())));
    item.insert(keys::GSI1SK.into(), AttributeValue::S(keys::visit_sort(action.created_at(), id)));
    // Sparse reconcile indexes: present only while the action is in their state.
    if matches!(action.status(), ActionStatus::CheckoutOpen | ActionStatus::Processing) {
        let (pk, sk) = keys::awaiting_stripe(id, action.last_touched(), clinic);
        item.insert(keys::GSI2PK.into(), AttributeValue::S(pk));
        item.insert(keys::GSI2SK.into(), AttributeValue::S(sk));
    }
    if matches!(action.status(), ActionStatus::Assigned | ActionStatus::CheckoutOpen) {
        let (pk, sk) = keys::open_to_payment(id, action.expires_at(), clinic);
        item.insert(keys::GSI3PK.into(), AttributeValue::S(pk));
        item.insert(keys::GSI3SK.into(), AttributeValue::S(sk));
    }
    item
}

pub fn idempotency_item(record: &IdempotencyRecord) -> Item {
    let mut item = encode(record, keys::idempotency(&record.clinic_id, &record.key));
    item.insert(keys::TTL.into(), epoch(record.expires_at));
    item
}

pub fn payment_item(payment: &PaymentRef, version: u64) -> Item {
    let mut item = encode(&PaymentRecord::of(payment, version), keys::payment(&payment.payment_intent));
    // Parked events of a payment never recorded (another system's charge on the
    // clinic's account) are not kept forever.
    if let (None, Some(last)) = (&payment.owner, payment.parked.last()) {
        item.insert(keys::TTL.into(), epoch(last.at + time::Duration::days(PARKED_DAYS)));
    }
    item
}

pub fn stray_payment_item(stray: &StrayPayment) -> Item {
    encode(stray, keys::stray_payment(&stray.session_id))
}

/// A write that replaces a whole item: the item, at the version the write
/// leaves it at, and what the put expects. `None` for a held invoice, which
/// is an update of an item not read.
pub fn put_item(write: &Write) -> Option<(Item, Expect)> {
    Some(match write {
        Write::HeldInvoice { .. } | Write::AccountTakesPayments { .. } => return None,
        Write::Invoice { invoice, expect } => (invoice_item(invoice, expect.next_version()), *expect),
        Write::Action { action, expect } => (action_item(action, expect.next_version()), *expect),
        Write::Idempotency(record) => (idempotency_item(record), Expect::Absent),
        Write::Payment { payment, expect } => (payment_item(payment, expect.next_version()), *expect),
        Write::StrayPayment(stray) => (stray_payment_item(stray), Expect::Absent),
        Write::Message { intent, expect } => (messages::message_item(intent, expect.next_version()), *expect),
        Write::OptOut(opt_out) => (messages::opt_out_item(opt_out), Expect::Any),
        Write::Unsubscribe(link) => (messages::unsubscribe_item(link), Expect::Absent),
        Write::AccountHealth { clinic_id, health, expect } => {
            (connect::account_health_item(clinic_id, health, expect.next_version()), *expect)
        }
        Write::AccountOwner { account, clinic_id } => (connect::account_owner_item(account, clinic_id), Expect::Any),
        Write::Payout { clinic_id, payout, expect } => {
            (connect::payout_item(clinic_id, payout, expect.next_version()), *expect)
        }
        Write::PayoutLine { clinic_id, payout_id, index, line } => {
            (connect::payout_line_item(clinic_id, payout_id, *index, line), Expect::Any)
        }
        Write::CatchUp { checkpoint, expect } => (connect::catch_up_item(checkpoint, expect.next_version()), *expect),
    })
}

/// An item's size as DynamoDB counts it: "the sum of the lengths of its
/// attribute names and values"; a string is its UTF-8 bytes; a number "1 byte
/// per two significant digits, plus 1 byte"; a list or map "3 bytes of
/// overhead, regardless of its contents", plus 1 byte per element; a null or
/// Boolean 1 byte (Developer Guide, "Item sizes and formats").
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn number_size(n: &str) -> usize {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum::<usize>(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sizes_follow_dynamodbs_published_rules() {
        // The Developer Guide's examples: a 5-byte name and a string of 10 bytes is 15.
        let item = HashMap::from([("color".to_owned(), AttributeValue::S("0123456789".into()))]);
        assert_eq!(item_size(&item), 15);
        assert_eq!(number_size("12345"), 4, "3 bytes for 5 significant digits, plus 1");
        assert_eq!(number_size("1000"), 2, "trailing zeros are trimmed");
        assert_eq!(number_size("-0.001"), 2);
        let map = AttributeValue::M(HashMap::from([("a".to_owned(), AttributeValue::Bool(true))]));
        assert_eq!(value_size(&map), 3 + 1 + 1 + 1);
        let list = AttributeValue::L(vec![AttributeValue::S("ab".into()), AttributeValue::Null(true)]);
        assert_eq!(value_size(&list), 3 + (2 + 1) + (1 + 1));
    }

    #[test]
    fn the_held_invoice_update_names_invoice_fields_as_records_write_them() {
        let invoice = Invoice::import(
            None,
            visitpay_domain::ClinicId::parse("c").unwrap(),
            visitpay_domain::PatientId::parse("p").unwrap(),
            visitpay_domain::InvoiceId::parse("i").unwrap(),
            visitpay_domain::invoice::InvoiceInput {
                amount: 100,
                currency: "cad".into(),
                description: String::new(),
                service_date: "2027-01-01".into(),
                receipt: Default::default(),
            },
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let action = visitpay_domain::ActionId::parse("a").unwrap();
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let held = invoice.select(at).unwrap().unwrap().reserve_for(&action, at).unwrap();
        let paid = held.follow(&action, visitpay_domain::InvoiceEffect::MarkPaid, at).unwrap();
        let item = invoice_item(&paid, 3);
        use super::super::records::invoice_fields;
        for field in
            [invoice_fields::STATUS, invoice_fields::ACTION_ID, invoice_fields::PAID_AT, invoice_fields::UPDATED_AT]
        {
            assert!(item.contains_key(field), "{field}");
        }
        assert!(item.contains_key(keys::VERSION));
        let reopened = paid.follow(&action, visitpay_domain::InvoiceEffect::Reopen, at).unwrap();
        assert!(invoice_item(&reopened, 4).contains_key(invoice_fields::REFUNDED_FROM));
    }
}
