//! Adapters for the ports: DynamoDB for AWS, an embedded store for the
//! laptop; SQS and an embedded queue; EventBridge for status events; Stripe; embedded metrics; the system
//! clock and randomness.

pub mod dynamodb;
pub mod embedded;
pub mod embedded_queue;
pub mod emf;
pub mod eventbridge;
pub mod sqs;
pub mod stripe;
pub mod system;
pub mod tables;
