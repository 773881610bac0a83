//! New ids and secrets, injected: tests use predictable ones.

use visitpay_domain::ActionId;

pub trait Ids: Send + Sync {
    fn action_id(&self) -> ActionId;
    /// An opaque patient link secret of at least 128 random bits.
    fn link_token(&self) -> String;
}
