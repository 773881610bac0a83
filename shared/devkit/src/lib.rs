//! What the laptop run, the tests and the benchmarks use, and no Lambda
//! function ever links: the embedded store and queue (the same ports and
//! DynamoDB's and SQS's limits, in memory), creating the table and the
//! queues on moto or a fresh account, a poller standing in for Lambda's
//! SQS event source, and money signals recorded in memory.

pub mod embedded;
pub mod embedded_queue;
pub mod recorded_metrics;
pub mod setup;
