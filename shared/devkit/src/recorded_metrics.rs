//! Money signals kept in memory for a test or a benchmark to read, instead
//! of CloudWatch's embedded metrics.

use std::sync::Mutex;

use visitpay_app::ports::{Metrics, MoneySignal};
use visitpay_domain::{ActionId, ClinicId};

#[derive(Default)]
pub struct RecordedMetrics(Mutex<Vec<(MoneySignal, Option<String>)>>);

impl RecordedMetrics {
    /// Each signal with the action it was about.
    pub fn signals(&self) -> Vec<(MoneySignal, Option<String>)> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Metrics for RecordedMetrics {
    fn signal(&self, signal: MoneySignal, about: Option<(&ClinicId, &ActionId)>) {
        let about = about.map(|(_, a)| a.to_string());
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((signal, about));
    }
}
