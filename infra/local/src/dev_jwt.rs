//! HS256 tokens for the local run, where `visitpay-local` plays API
//! Gateway's JWT authorizer. In AWS, API Gateway validates real tokens and
//! this module is not used.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::HashMap;

/// The documented default for `VISITPAY_DEV_JWT_SECRET`. Local use only.
pub const DEFAULT_DEV_SECRET: &str = "visitpay-dev-secret-change-me";
pub const ISSUER: &str = "visitpay-local";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

/// Mints a token carrying `sub`, `clinic_id`, `role`, valid for `ttl_secs`.
pub fn mint(secret: &str, sub: &str, clinic_id: &str, role: &str, now: i64, ttl_secs: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "clinic_id": clinic_id, "role": role, "iat": now, "exp": now + ttl_secs
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies signature (constant time) and expiry; returns the claims as API
/// Gateway hands them to a function: every value a string.
pub fn verify(secret: &str, token: &str, now: i64) -> Result<HashMap<String, String>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Map<String, Value> =
        URL_SAFE_NO_PAD.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(JwtError::Malformed)?;
    if header.get("alg") != Some(&Value::String("HS256".into())) {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed)?;
    let mut m = mac(secret);
    m.update(header_and_payload(token).as_bytes());
    m.verify_slice(&signature).map_err(|_| JwtError::Signature)?;
    let claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(JwtError::Malformed)?;
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        _ => return Err(JwtError::Expired),
    }
    Ok(claims
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, s)
        })
        .collect())
}

fn header_and_payload(token: &str) -> &str {
    token.rsplit_once('.').map_or("", |(signed, _)| signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let t = mint("s", "u1", "c1", "staff", 1000, 60);
        let claims = verify("s", &t, 1001).unwrap();
        assert_eq!(
            (claims["sub"].as_str(), claims["clinic_id"].as_str(), claims["role"].as_str()),
            ("u1", "c1", "staff")
        );
        assert_eq!(verify("other", &t, 1001), Err(JwtError::Signature));
        assert_eq!(verify("s", &t, 1060), Err(JwtError::Expired));
        let (hp, _) = t.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"u1","clinic_id":"c2","role":"support","exp":99999}"#);
        let forged = format!("{}.{}.{}", hp.split('.').next().unwrap(), forged_payload, t.rsplit('.').next().unwrap());
        assert_eq!(verify("s", &forged, 1001), Err(JwtError::Signature));
        assert_eq!(verify("s", "a.b", 1), Err(JwtError::Malformed));
    }

    #[test]
    fn refuses_alg_none() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"u","exp":99999}"#);
        assert_eq!(verify("s", &format!("{header}.{payload}."), 1), Err(JwtError::Algorithm));
    }
}
