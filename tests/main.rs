//! visitpay's integration tests, one binary (as zero-to-production's
//! `tests/api/`): each concern a module, `support` the helpers they share.
//! One binary links the world once instead of once per file.

#[macro_use]
mod support;

mod architecture;
mod catch_up;
mod connect;
mod faults;
mod handlers;
mod least_privilege;
mod lifecycle;
mod messages;
mod money_paths;
mod patient_page;
mod payments;
mod property;
mod sqs;
mod status_events;
mod store_contract;
mod template;
mod use_cases;
