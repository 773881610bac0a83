//! Stripe's webhook deliveries at the edge: the `Stripe-Signature` header
//! checked over the exact raw bytes, then the event's head read to decide
//! whether it is queued (a type visitpay acts on) or acknowledged and dropped.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::events::handles;
use visitpay_app::ports::StripeDelivery;

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

/// At most this many `v1` entries are considered. Stripe sends one per
/// signing secret of the endpoint (two while a secret is rolled), so a
/// longer list is not Stripe's: its extra entries are never hashed against.
pub const MAX_SIGNATURES: usize = 4;

/// An HMAC-SHA256 in hex: 64 characters.
const SIGNATURE_HEX_LEN: usize = 64;

/// What a `Stripe-Signature` header says: its timestamp and the first
/// `MAX_SIGNATURES` entries that are shaped like a `v1` signature (64 hex
/// characters); anything else is dropped before any hashing.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: Option<i64>,
    pub signatures: Vec<[u8; 32]>,
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Self {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) if timestamp.is_none() => timestamp = t.parse::<i64>().ok(),
                Some(("v1", sig)) if signatures.len() < MAX_SIGNATURES => signatures.extend(decode_signature(sig)),
                _ => {}
            }
        }
        SignatureHeader { timestamp, signatures }
    }
}

/// Verifies `Stripe-Signature` (`t=…,v1=…[,v1=…]`) against any of `secrets`
/// (several during a rotation). The HMAC over the payload is computed once
/// per secret, whatever the header holds, and compared with each entry in
/// constant time: the cost is that of one signature, not one per entry.
pub fn verify_signature(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[SecretString],
    now: i64,
) -> Result<(), SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?);
    let timestamp = header.timestamp.ok_or(SignatureError::Malformed)?;
    if header.signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: a timestamp at either end of i64 cannot overflow the check.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        let expected = mac.finalize().into_bytes();
        let matched = header
            .signatures
            .iter()
            .fold(subtle::Choice::from(0), |any, signature| any | expected.as_slice().ct_eq(signature.as_slice()));
        if bool::from(matched) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// A `v1` value: exactly 64 hex characters, else not a signature at all.
fn decode_signature(s: &str) -> Option<[u8; 32]> {
    if s.len() != SIGNATURE_HEX_LEN || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    object: String,
    /// A Connect event's connected account.
    #[serde(default)]
    account: Option<String>,
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
    Ok(Verified::Queue(StripeDelivery { event_id: head.id, event_type: head.event_type, account: head.account, body }))
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
        let both = format!("{},v1={}", sign(body, "whsec_old", 100), "0f".repeat(32));
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
        // A short entry is not a signature, even a prefix of the right one.
        let short = format!("t=1000,{}", &good["t=1000,".len()..good.len() - 2]);
        assert_eq!(verify_signature(body.as_bytes(), Some(&short), &s, 1000), Err(SignatureError::Malformed));
        for extreme in [i64::MIN, i64::MAX] {
            let header = format!("t={extreme},v1={}", "00".repeat(32));
            assert_eq!(verify_signature(body.as_bytes(), Some(&header), &s, 1000), Err(SignatureError::Stale));
        }
    }

    /// A header with any number of entries is read into at most
    /// `MAX_SIGNATURES` candidates, and entries not shaped like an HMAC-SHA256
    /// are dropped unhashed: one request cannot make the check cost more than
    /// a few comparisons against one HMAC per secret (the benchmark's
    /// `signature-check` measures it over a 1 MiB body).
    #[test]
    fn a_long_header_is_cut_to_a_few_well_formed_candidates() {
        let s: Vec<SecretString> = vec!["whsec_a".into()];
        let body = r#"{"id":"evt_1"}"#;
        let good = sign(body, "whsec_a", 1000);
        let garbage: Vec<String> = (0..1670).map(|i| format!("v1={:064x}", i)).collect();
        let flood = format!("{},{}", garbage.join(","), good);
        let parsed = SignatureHeader::parse(&flood);
        assert_eq!((parsed.timestamp, parsed.signatures.len()), (Some(1000), MAX_SIGNATURES));
        // Stripe puts its signatures first; one buried behind 1,670 others is not Stripe's.
        assert_eq!(verify_signature(body.as_bytes(), Some(&flood), &s, 1000), Err(SignatureError::Mismatch));
        let odd: Vec<String> = (0..100).map(|i| format!("v1={}", "z".repeat(i % 70))).collect();
        let first_after_junk = format!("{},{}", odd.join(","), good);
        assert_eq!(SignatureHeader::parse(&first_after_junk).signatures.len(), 1, "malformed entries never count");
        assert_eq!(verify_signature(body.as_bytes(), Some(&first_after_junk), &s, 1000), Ok(()));
    }
}
