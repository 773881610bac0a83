//! Money signals as CloudWatch embedded metric format (EMF) log lines: one
//! JSON object per line, which CloudWatch Logs turns into a metric without
//! any API call ("Writing JSON to standard out in the embedded metric format
//! is sufficient", CloudWatch User Guide, "Embedded metric format with
//! Lambda"). The structure follows the EMF specification: `_aws.Timestamp`
//! in milliseconds, one metric directive, the value as a top-level member.

use std::io::Write;

use serde_json::json;

use visitpay_app::ports::{Metrics, MoneySignal};
use visitpay_domain::{ActionId, ClinicId};

/// Where the lines go: stdout in Lambda (with the logs), stderr locally.
#[derive(Debug, Clone, Copy)]
pub enum Sink {
    Stdout,
    Stderr,
}

pub struct EmfMetrics {
    namespace: String,
    sink: Sink,
}

impl EmfMetrics {
    pub fn new(namespace: impl Into<String>, sink: Sink) -> Self {
        EmfMetrics { namespace: namespace.into(), sink }
    }
}

/// One EMF line for `signal` at `at_ms`.
pub fn line(namespace: &str, signal: MoneySignal, about: Option<(&ClinicId, &ActionId)>, at_ms: i128) -> String {
    let mut body = json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                // No dimensions: one series per signal, which the alarms watch.
                "Dimensions": [[]],
                "Metrics": [{"Name": signal.name(), "Unit": "Count"}]
            }]
        },
        "message": "money signal",
        "signal": signal.name(),
    });
    body[signal.name()] = json!(signal.value());
    if let Some((clinic, action)) = about {
        body["clinic_id"] = json!(clinic.as_str());
        body["action_id"] = json!(action.as_str());
    }
    body.to_string()
}

impl Metrics for EmfMetrics {
    fn signal(&self, signal: MoneySignal, about: Option<(&ClinicId, &ActionId)>) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut text = line(&self.namespace, signal, about, now);
        text.push('\n');
        // One write of a whole line: it never interleaves with a log line.
        let _ = match self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Sink::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_an_emf_document() {
        let (c, a) = (ClinicId::parse("c1").unwrap(), ActionId::parse("act_1").unwrap());
        let v: serde_json::Value =
            serde_json::from_str(&line("visitpay/prod", MoneySignal::RefundNeeded, Some((&c, &a)), 1_800_000_000_000))
                .unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_800_000_000_000i64);
        assert_eq!(directive["Namespace"], "visitpay/prod");
        assert_eq!(directive["Metrics"][0]["Name"], "RefundNeeded");
        assert_eq!(v["RefundNeeded"], 1, "the value is a top-level member named as the metric");
        assert_eq!((v["clinic_id"].as_str(), v["action_id"].as_str()), (Some("c1"), Some("act_1")));
        let errors: serde_json::Value =
            serde_json::from_str(&line("n", MoneySignal::ReconcileErrors(3), None, 0)).unwrap();
        assert_eq!(errors["ReconcileErrors"], 3);
    }
}
