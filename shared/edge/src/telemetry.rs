//! JSON logs, one object per line. Request fields come from the `request`
//! span (listed under `spans`), so every line of a request carries its
//! request id and route.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `RUST_LOG` as `target=level` directives and a default level (`info`,
/// `visitpay=debug,info`); anything else means `info`. A static target
/// filter, not `EnvFilter`: its span and field matching is unused here, and
/// it links a regex engine into every function (README, "Levers").
fn filter(rust_log: Option<&str>) -> Targets {
    rust_log.and_then(|v| v.parse().ok()).unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

fn init_with<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(writer: W) {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .flatten_event(true)
        .with_writer(writer)
        .finish()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
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

#[cfg(test)]
mod tests {
    use super::filter;
    use tracing::Level;

    #[test]
    fn rust_log_filters_by_target_and_defaults_to_info() {
        let default = filter(None);
        assert!(default.would_enable("visitpay::app", &Level::INFO));
        assert!(!default.would_enable("visitpay::app", &Level::DEBUG));
        let chosen = filter(Some("visitpay=debug,warn"));
        assert!(chosen.would_enable("visitpay::app", &Level::DEBUG));
        assert!(!chosen.would_enable("hyper", &Level::INFO));
        assert!(chosen.would_enable("hyper", &Level::WARN));
        let garbled = filter(Some("visitpay=loud"));
        assert!(garbled.would_enable("visitpay", &Level::INFO) && !garbled.would_enable("visitpay", &Level::DEBUG));
    }
}
