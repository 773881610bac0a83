//! Stripe: its API through async-stripe (`client`), its webhook deliveries
//! (`webhook`), and its event JSON decoded into typed payment signals
//! (`events`). Nothing outside this module reads Stripe's wire formats.

pub mod client;
pub mod events;
pub mod webhook;

pub use client::StripePayments;
