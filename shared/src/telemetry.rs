//! JSON logs, one object per line. Request fields come from the `request`
//! span, so every line of a request carries its request id and route.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. `RUST_LOG` filters (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .flatten_event(true)
        .try_init();
}
