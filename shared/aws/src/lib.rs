//! visitpay on AWS: the store on DynamoDB (one table, conditional writes,
//! transactions) and its stream, the payment-event queue on SQS, status
//! events on EventBridge, money signals as CloudWatch embedded metrics,
//! secrets from SSM, and the SDK configuration a Lambda function builds once
//! per cold start. Each implements a port of `visitpay_app::ports`.

pub mod dynamodb;
pub mod emf;
pub mod eventbridge;
pub mod messaging;
pub mod sdk;
pub mod sqs;
pub mod tables;
