//! visitpay: collect a clinic's private invoices from a patient during a
//! virtual visit, through Stripe, without touching card data.
//!
//! Dependencies point inward: `http` → `app` → `domain`; `adapters` implement
//! `ports`. Function binaries only wire these together.

pub mod adapters;
pub mod app;
pub mod config;
pub mod dev_jwt;
pub mod domain;
pub mod http;
pub mod ports;
pub mod telemetry;
/// Test support (fixed clock, sequential ids, stores on moto); not in Lambda builds.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
