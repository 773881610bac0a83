//! Stripe's webhook deliveries at the edge: the `Stripe-Signature` header
//! checked over the exact raw bytes, then the event's head read to decide
//! whether it is queued (a type visitpay acts on) or acknowledged and dropped.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use super::events::handles;
use crate::ports::StripeDelivery;

/// Stripe's default: a signature older (or newer) than this is refused.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Verifies `Stripe-Signature` (`t=…,v1=…[,v1=…]`) against any of `secrets`
/// (several during a rotation). Comparisons are constant time.
pub fn verify_signature(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[SecretString],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.extend(decode_hex(sig)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: a timestamp at either end of i64 cannot overflow the check.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for signature in &signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(payload);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[derive(Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    object: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not a Stripe event")]
    NotAnEvent,
}

/// A verified delivery: to queue, or a type visitpay does not act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    Queue(StripeDelivery),
    Ignored { event_id: String, event_type: String },
}

/// Verifies one delivery and reads what it is.
pub fn verify(
    payload: &[u8],
    signature: Option<&str>,
    secrets: &[SecretString],
    now: i64,
) -> Result<Verified, WebhookError> {
    verify_signature(payload, signature, secrets, now)?;
    let head: EventHead = serde_json::from_slice(payload).map_err(|_| WebhookError::NotAnEvent)?;
    if head.object != "event" || !head.id.starts_with("evt_") {
        return Err(WebhookError::NotAnEvent);
    }
    if !handles(&head.event_type) {
        return Ok(Verified::Ignored { event_id: head.id, event_type: head.event_type });
    }
    let body = String::from_utf8(payload.to_vec()).map_err(|_| WebhookError::NotAnEvent)?;
    Ok(Verified::Queue(StripeDelivery { event_id: head.id, event_type: head.event_type, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(payload: &str, secret: &str, t: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{payload}").as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn accepts_any_matching_secret_and_signature() {
        let secrets: Vec<SecretString> = vec!["whsec_old".into(), "whsec_new".into()];
        let body = r#"{"id":"evt_1"}"#;
        assert_eq!(verify_signature(body.as_bytes(), Some(&sign(body, "whsec_new", 100)), &secrets, 100), Ok(()));
        let both = format!("{},v1=00ff", sign(body, "whsec_old", 100));
        assert_eq!(verify_signature(body.as_bytes(), Some(&both), &secrets, 100), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        let s: Vec<SecretString> = vec!["whsec_a".into()];
        let body = r#"{"id":"evt_1"}"#;
        let good = sign(body, "whsec_a", 1000);
        assert_eq!(verify_signature(body.as_bytes(), None, &s, 1000), Err(SignatureError::Missing));
        assert_eq!(verify_signature(b"{\"id\":\"evt_2\"}", Some(&good), &s, 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(body.as_bytes(), Some(&good), &s, 1301), Err(SignatureError::Stale));
        assert_eq!(verify_signature(body.as_bytes(), Some(&good), &s, 1300), Ok(()));
        let v0 = good.replace("v1=", "v0=");
        assert_eq!(verify_signature(body.as_bytes(), Some(&v0), &s, 1000), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(body.as_bytes(), Some("v1=abcd"), &s, 1000), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(body.as_bytes(), Some("t=1000,v1=zz"), &s, 1000), Err(SignatureError::Malformed));
        for extreme in [i64::MIN, i64::MAX] {
            let header = format!("t={extreme},v1=00ff");
            assert_eq!(verify_signature(body.as_bytes(), Some(&header), &s, 1000), Err(SignatureError::Stale));
        }
    }
}
