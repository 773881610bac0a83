//! Time, injected: every test that needs time sets it.

use visitpay_domain::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}
