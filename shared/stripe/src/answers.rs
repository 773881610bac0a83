//! Stripe's answers, read into the fields visitpay uses and nothing more
//! (miniserde, as async-stripe's request builders expect; unknown fields are
//! skipped). A field Stripe always sends is required here too, so an answer
//! missing one is an error, not a default.

use std::collections::HashMap;

use miniserde::de::{Map, Visitor};
use miniserde::{make_place, Deserialize, Result};

/// A Checkout Session (https://docs.stripe.com/api/checkout/sessions/object).
#[derive(Debug, Deserialize)]
pub struct SessionAnswer {
    pub id: String,
    pub url: Option<String>,
    pub status: Option<String>,
    pub payment_status: String,
    pub expires_at: i64,
    pub payment_intent: Option<IntentRef>,
    pub metadata: Option<HashMap<String, String>>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub mode: String,
}

/// A PaymentIntent retrieved with `expand[]=latest_charge`
/// (https://docs.stripe.com/api/payment_intents/object): only how its
/// charge was paid is read.
#[derive(Debug, Deserialize)]
pub struct IntentChargeAnswer {
    pub id: String,
    pub latest_charge: Option<ChargeAnswer>,
}

/// A Charge (https://docs.stripe.com/api/charges/object): its
/// `payment_method_details`, `{"type": t, t: {...}}`, one object per type.
#[derive(Debug, Deserialize)]
pub struct ChargeAnswer {
    pub payment_method_details: Option<miniserde::json::Value>,
}

/// A Refund (https://docs.stripe.com/api/refunds/object).
#[derive(Debug, Deserialize)]
pub struct RefundAnswer {
    pub id: String,
    pub amount: i64,
    pub status: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
}

/// A connected account (https://docs.stripe.com/api/accounts/object).
#[derive(Debug, Deserialize)]
pub struct AccountAnswer {
    pub id: String,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: Option<bool>,
    pub requirements: Option<RequirementsAnswer>,
}

/// An account's `requirements` (what Stripe still needs, and why it is disabled).
#[derive(Debug, Deserialize)]
pub struct RequirementsAnswer {
    pub currently_due: Option<Vec<String>>,
    pub past_due: Option<Vec<String>>,
    pub disabled_reason: Option<String>,
}

/// An Account Link (https://docs.stripe.com/api/account_links/object).
#[derive(Debug, Deserialize)]
pub struct AccountLinkAnswer {
    pub url: String,
    pub expires_at: i64,
}

/// A balance transaction (https://docs.stripe.com/api/balance_transactions/object),
/// its `source` expanded.
#[derive(Debug, Deserialize)]
pub struct BalanceTransactionAnswer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub reporting_category: String,
    pub created: i64,
    pub amount: i64,
    pub fee: i64,
    pub net: i64,
    pub source: Option<SourceRef>,
}

/// A balance transaction's source: its id, or (expanded) the charge, refund
/// or dispute, of which only the PaymentIntent it is about is read.
#[derive(Debug)]
pub struct SourceRef {
    object: Option<SourceObject>,
}

#[derive(Debug, Deserialize)]
struct SourceObject {
    payment_intent: Option<IntentRef>,
}

impl SourceRef {
    /// The PaymentIntent the source is about (only when expanded; a payout's has none).
    pub fn payment_intent(&self) -> Option<&str> {
        self.object.as_ref()?.payment_intent.as_ref()?.id()
    }
}

make_place!(SourcePlace);

impl Visitor for SourcePlace<SourceRef> {
    fn string(&mut self, _: &str) -> Result<()> {
        self.out = Some(SourceRef { object: None });
        Ok(())
    }

    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        let out = self.out.insert(SourceRef { object: None });
        SourceObject::begin(&mut out.object).map()
    }
}

impl Deserialize for SourceRef {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        SourcePlace::new(out)
    }
}

/// One page of a list (https://docs.stripe.com/api/pagination).
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

/// An error answer's body: `{"error": {"type", "code", "message", …}}`
/// (https://docs.stripe.com/api/errors).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorAnswer {
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorAnswer {
    pub fn code(&self) -> Option<&str> {
        self.error.as_ref()?.code.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.error.as_ref()?.message.as_deref()
    }
}

/// An expandable PaymentIntent: its id, or (expanded) the object, of which
/// only the id and status are read.
#[derive(Debug)]
pub struct IntentRef {
    id: Option<String>,
    object: Option<IntentObject>,
}

#[derive(Debug, Deserialize)]
struct IntentObject {
    id: String,
    status: String,
}

impl IntentRef {
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref().or(self.object.as_ref().map(|o| o.id.as_str()))
    }

    /// Only when expanded.
    pub fn status(&self) -> Option<&str> {
        self.object.as_ref().map(|o| o.status.as_str())
    }
}

make_place!(Place);

impl Visitor for Place<IntentRef> {
    fn string(&mut self, s: &str) -> Result<()> {
        self.out = Some(IntentRef { id: Some(s.to_owned()), object: None });
        Ok(())
    }

    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        let out = self.out.insert(IntentRef { id: None, object: None });
        IntentObject::begin(&mut out.object).map()
    }
}

impl Deserialize for IntentRef {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        Place::new(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniserde::json::from_str;

    #[test]
    fn an_expandable_intent_reads_as_an_id_or_an_object() {
        let s: SessionAnswer = from_str(
            r#"{"id":"cs_1","object":"checkout.session","payment_status":"unpaid","expires_at":1,"mode":"payment",
                "payment_intent":"pi_1","custom":{"nested":[1,2]}}"#,
        )
        .unwrap();
        let intent = s.payment_intent.unwrap();
        assert_eq!((intent.id(), intent.status()), (Some("pi_1"), None));

        let s: SessionAnswer = from_str(
            r#"{"id":"cs_1","payment_status":"paid","expires_at":1,"mode":"payment",
                "payment_intent":{"id":"pi_2","object":"payment_intent","status":"succeeded","amount":5}}"#,
        )
        .unwrap();
        let intent = s.payment_intent.unwrap();
        assert_eq!((intent.id(), intent.status()), (Some("pi_2"), Some("succeeded")));
    }

    /// A balance transaction's source, expanded (a charge names its
    /// PaymentIntent) or not, and a payout's own line (no PaymentIntent).
    #[test]
    fn a_balance_transaction_reads_the_payment_its_source_is_about() {
        let charge: BalanceTransactionAnswer = from_str(
            r#"{"id":"txn_1","object":"balance_transaction","type":"charge","reporting_category":"charge","created":1,
                "amount":4500,"fee":161,"net":4339,"fee_details":[{"amount":161,"type":"stripe_fee"}],
                "source":{"id":"ch_1","object":"charge","payment_intent":"pi_1","amount":4500}}"#,
        )
        .unwrap();
        assert_eq!(charge.source.unwrap().payment_intent(), Some("pi_1"));
        let payout: BalanceTransactionAnswer = from_str(
            r#"{"id":"txn_2","type":"payout","reporting_category":"payout","created":1,"amount":-4339,"fee":0,
                "net":-4339,"source":{"id":"po_1","object":"payout","amount":4339}}"#,
        )
        .unwrap();
        assert_eq!(payout.source.unwrap().payment_intent(), None);
        let unexpanded: BalanceTransactionAnswer = from_str(
            r#"{"id":"txn_3","type":"refund","reporting_category":"refund","created":1,"amount":-10,"fee":0,"net":-10,"source":"re_1"}"#,
        )
        .unwrap();
        assert_eq!(unexpanded.source.unwrap().payment_intent(), None);
    }

    #[test]
    fn a_session_missing_what_stripe_always_sends_is_refused() {
        assert!(from_str::<SessionAnswer>(r#"{"id":"cs_1","payment_status":"paid","mode":"payment"}"#).is_err());
        assert!(from_str::<SessionAnswer>(
            r#"{"id":"cs_1","payment_status":"paid","expires_at":1,"mode":"payment","payment_intent":5}"#
        )
        .is_err());
    }

    #[test]
    fn an_error_answer_reads_its_code_and_message() {
        let e: ErrorAnswer = from_str(
            r#"{"error":{"type":"invalid_request_error","code":"account_invalid","message":"no access","payment_intent":{"id":"pi_1"}}}"#,
        )
        .unwrap();
        assert_eq!((e.code(), e.message()), (Some("account_invalid"), Some("no access")));
    }
}
