//! Patient links: `<action id>.<random secret>`. Like Stripe's client
//! secrets the token names what it unlocks (one read, no lookup item) and is
//! proved by its random part; only its hash is stored. Action ids are random
//! and say nothing about the clinic or the patient.

use sha2::{Digest, Sha256};

use super::ActionId;

/// The only form in which a link token is stored or compared.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A patient link token: the action's id, a dot, then the random secret.
pub fn link_token(action: &ActionId, secret: &str) -> String {
    format!("{action}.{secret}")
}

/// The action a link token names, if it is shaped like one.
pub fn link_token_action(token: &str) -> Option<ActionId> {
    let (action, secret) = token.split_once('.')?;
    (!secret.is_empty()).then(|| ActionId::parse(action).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_token_names_its_action() {
        let action = ActionId::parse("act_0123456789abcdef01234567").unwrap();
        let token = link_token(&action, "s3cr3t-s3cr3t");
        assert_eq!(link_token_action(&token), Some(action.clone()));
        for bad in ["", ".", "no-dot", &format!("{action}."), ".secret", "bad id.secret"] {
            assert_eq!(link_token_action(bad), None, "{bad:?}");
        }
        assert_eq!(hash_token(&token).len(), 64);
        assert_ne!(hash_token(&token), token);
    }
}
