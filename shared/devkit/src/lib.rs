//! What the laptop run, the tests and the benchmarks use, and no Lambda
//! function ever links: the embedded store and queue (the same ports and
//! DynamoDB's and SQS's limits, in memory), creating the table and the
//! queues on moto or a fresh account, a poller standing in for Lambda's
//! SQS event source, money signals recorded in memory, and the outbox that
//! keeps every email and text the laptop run would send.

pub mod embedded;
pub mod embedded_queue;
pub mod outbox;
pub mod recorded_metrics;
pub mod setup;
