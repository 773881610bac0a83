//! The reference clinic console (`/console`): plain HTML and a few ES
//! modules showing an EMR's front-end team how to call the API, served by
//! the local runner only (never deployed). Compiled in, so the binary is
//! the whole local run.

use axum::body::Body as AxumBody;
use axum::response::Response as AxumResponse;
use axum::Router;

const INDEX: &str = include_str!("../console/index.html");
const STYLE: &str = include_str!("../console/console.css");

/// The script: ES modules, each at `/console/<path>`. The page loads
/// main.js, which imports the rest by relative paths (so any base path works).
const MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("../console/main.js")),
    ("state.js", include_str!("../console/state.js")),
    ("http.js", include_str!("../console/http.js")),
    ("words.js", include_str!("../console/words.js")),
    ("dom.js", include_str!("../console/dom.js")),
    ("tokens.js", include_str!("../console/tokens.js")),
    ("api.js", include_str!("../console/api.js")),
    ("events.js", include_str!("../console/events.js")),
    ("screens/chart.js", include_str!("../console/screens/chart.js")),
    ("screens/tiles.js", include_str!("../console/screens/tiles.js")),
    ("screens/visit.js", include_str!("../console/screens/visit.js")),
    ("screens/settings.js", include_str!("../console/screens/settings.js")),
    ("screens/tile-buttons.js", include_str!("../console/screens/tile-buttons.js")),
    ("screens/context.js", include_str!("../console/screens/context.js")),
    ("screens/outbox.js", include_str!("../console/screens/outbox.js")),
    ("screens/payouts.js", include_str!("../console/screens/payouts.js")),
];

/// Only its own files: no inline script or style, no other origin.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(content_type: &'static str, text: &'static str) -> AxumResponse {
    AxumResponse::builder()
        .header("content-type", content_type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .body(AxumBody::from(text))
        .expect("valid response")
}

/// The console's routes. Its page names its own files under the server's
/// base path (`VISITPAY_BASE_PATH`); its script finds the API (and its words)
/// under the same base from its own address.
pub fn router(base_path: &str) -> Router {
    let index: &'static str =
        Box::leak(INDEX.replace("\"/console/", &format!("\"{base_path}/console/")).into_boxed_str());
    let router = Router::new()
        .route("/console", axum::routing::get(move || async move { file("text/html; charset=utf-8", index) }))
        .route("/console/", axum::routing::get(move || async move { file("text/html; charset=utf-8", index) }))
        .route("/console/console.css", axum::routing::get(|| async { file("text/css; charset=utf-8", STYLE) }));
    // Its words, the same as every page's (visitpay-words), as JSON.
    let words: &'static str = Box::leak(visitpay_words::console_json().into_boxed_str());
    let router =
        router.route("/console/words.json", axum::routing::get(move || async move { file("application/json", words) }));
    MODULES.iter().fold(router, |router, &(path, text)| {
        router.route(
            &format!("/console/{path}"),
            axum::routing::get(move || async move { file("text/javascript; charset=utf-8", text) }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    /// Every module in `console/` is served, and every module a served one
    /// imports is served too: a file left out would stop the console from
    /// starting (its imports fail), with nothing on screen but the error.
    #[test]
    fn every_module_and_every_import_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        for sub in ["", "screens"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".js") {
                    on_disk.push(if sub.is_empty() { name } else { format!("{sub}/{name}") });
                }
            }
        }
        let served: Vec<&str> = MODULES.iter().map(|(path, _)| *path).collect();
        for path in &on_disk {
            assert!(served.contains(&path.as_str()), "console/{path} is not served (console.rs MODULES)");
        }
        for (path, text) in MODULES {
            let base = std::path::Path::new(path).parent().unwrap();
            for import in text.split("from '").skip(1).filter_map(|rest| rest.split('\'').next()) {
                let resolved = base.join(import);
                let mut parts: Vec<String> = Vec::new();
                for part in resolved.components() {
                    match part.as_os_str().to_str().unwrap() {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other.to_owned()),
                    }
                }
                let target = parts.join("/");
                assert!(served.contains(&target.as_str()), "{path} imports {import} ({target}), which is not served");
            }
        }
    }
}
