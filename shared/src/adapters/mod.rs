//! Adapters for the ports: DynamoDB for AWS, an embedded store for the laptop.

pub mod dynamodb;
pub mod embedded;
pub mod embedded_queue;
pub mod emf;
pub mod sqs;
pub mod stripe;
pub mod tables;
