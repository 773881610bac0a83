//! JSON logs, one object per line. Request fields come from the `request`
//! span (listed under `spans`), so every line of a request carries its
//! request id and route.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

fn init_with<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(writer: W) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .flatten_event(true)
        .with_writer(writer)
        .try_init();
}

/// JSON logs on stdout, where Lambda collects them. `RUST_LOG` filters (default `info`).
pub fn init() {
    init_with(std::io::stdout);
}

/// The same JSON logs on stderr, for the local runner whose stdout is for people.
pub fn init_stderr() {
    init_with(std::io::stderr);
}
