//! visitpay: collect a clinic's private invoices from a patient during a
//! virtual visit, through Stripe, without touching card data.
//!
//! Dependencies point inward: `http` → `app` → `domain`; `adapters` implement
//! `ports`. Function binaries only wire these together.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod lambda;
pub mod ports;
pub mod telemetry;
