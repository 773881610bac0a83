//! Stripe: its API through async-stripe's request builders (`client`), sent
//! by our transport (`transport`) and read into our answer types
//! (`answers`); its webhook deliveries
//! (`webhook`), and its event JSON decoded into typed payment signals
//! (`events`). Nothing outside this crate reads Stripe's wire formats.

pub mod answers;
pub mod client;
pub mod events;
pub mod transport;
pub mod webhook;

pub use client::StripePayments;
