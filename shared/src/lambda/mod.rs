//! Lambda's event entry points other than HTTP (`http` has those): the
//! consumer's SQS batch and the table's stream batch, turned into use-case
//! calls and the partial batch answer. (Reconcile's schedule carries nothing
//! to decode: its function calls `app::reconcile::run` directly.)

pub mod consumer;
pub mod status_stream;
