//! Lambda's event entry points other than HTTP (`http` has those): the
//! consumer's SQS batch, the table's stream batch (status events, messages)
//! and the patients' texts, turned into use-case calls and partial batch answers. (Reconcile's schedule carries nothing
//! to decode: its function calls `app::reconcile::run` directly.)

pub mod consumer;
pub mod messages;
pub mod status_stream;

/// Runs an invocation's work within its deadline (Lambda's, less a second
/// for the answer): calls to Stripe end before Lambda would end the function.
pub async fn within_deadline<F: std::future::Future>(context: &lambda_http::Context, work: F) -> F::Output {
    let deadline =
        visitpay_app::ports::deadline::from_epoch_millis(context.deadline, std::time::Duration::from_secs(1));
    visitpay_app::ports::deadline::within(deadline, work).await
}
