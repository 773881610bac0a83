//! The emulated clock: wall time (or a fixed instant, for tests) plus an
//! offset that only moves forward. Everything the emulator dates (objects,
//! expiry, webhook signatures, idempotency keys' age, redelivery) reads it,
//! and the local runner and tests share it, so both sides of a webhook agree
//! on "now" however far the clock was advanced.

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug)]
pub struct Clock {
    /// `None`: wall time; `Some(t)`: frozen at `t`.
    fixed: Option<i64>,
    offset: AtomicI64,
}

impl Clock {
    /// Wall time.
    pub fn system() -> Self {
        Clock { fixed: None, offset: AtomicI64::new(0) }
    }

    /// Frozen at `unix` seconds until advanced (deterministic tests).
    pub fn fixed(unix: i64) -> Self {
        Clock { fixed: Some(unix), offset: AtomicI64::new(0) }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        let base = self.fixed.unwrap_or_else(crate::util::system_now);
        base + self.offset.load(Ordering::SeqCst)
    }

    /// Unix milliseconds now (the sub-second part is wall time's, or 0 when frozen).
    pub fn now_millis(&self) -> i64 {
        let base = match self.fixed {
            Some(t) => t * 1000,
            None => crate::util::system_now_millis(),
        };
        base + self.offset.load(Ordering::SeqCst) * 1000
    }

    /// Moves the clock forward (never back); returns the new time.
    pub fn advance(&self, seconds: i64) -> i64 {
        self.offset.fetch_add(seconds.max(0), Ordering::SeqCst);
        self.now()
    }
}
