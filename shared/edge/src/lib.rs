//! visitpay's edge: what comes in through API Gateway or a Lambda event
//! source, decoded into use-case calls, and what goes back out (routes,
//! pages, receipts, the one mapping of errors to statuses and codes), plus
//! each function's wiring, decided once per cold start. Function binaries
//! only call into here.

pub mod config;
pub mod http;
pub mod lambda;
pub mod system;
pub mod telemetry;
