//! The real clock and the operating system's randomness.

use base64::Engine;

use visitpay_app::ports::{Clock, Ids};
use visitpay_domain::{ActionId, Timestamp};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // Whole milliseconds: what RFC 3339 round-trips through storage unchanged.
        let now = time::OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now)
    }
}

/// Ids from the operating system's CSPRNG.
pub struct RandomIds;

impl RandomIds {
    fn bytes<const N: usize>() -> [u8; N] {
        let mut buf = [0u8; N];
        getrandom::fill(&mut buf).expect("the OS random number generator is unavailable");
        buf
    }
}

impl Ids for RandomIds {
    fn action_id(&self) -> ActionId {
        let hex: String = Self::bytes::<12>().iter().map(|b| format!("{b:02x}")).collect();
        ActionId::parse(&format!("act_{hex}")).expect("hex ids are valid")
    }
    fn link_token(&self) -> String {
        // 256 bits, URL-safe.
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Self::bytes::<32>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visitpay_domain::{hash_token, link_token, link_token_action};

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let (a, b) = (RandomIds.link_token(), RandomIds.link_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes of base64url");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn a_random_link_token_names_its_action() {
        let action = RandomIds.action_id();
        let token = link_token(&action, &RandomIds.link_token());
        assert_eq!(link_token_action(&token), Some(action));
    }

    #[test]
    fn action_ids_are_valid_ids() {
        let id = RandomIds.action_id();
        assert!(id.as_str().starts_with("act_") && id.as_str().len() == 28);
    }
}
