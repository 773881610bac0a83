//! The shared crate's layering, read from its sources: dependencies point
//! inward (domain ← ports ← app ← the edges: http, lambda, adapters, config),
//! the use cases (`app`) name no Lambda, AWS SDK or Stripe crate, and no two
//! modules import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/src")
}

/// Every `.rs` file under `dir`, with its module path (`app::actions`).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let prefix = if prefix.is_empty() { name } else { format!("{prefix}::{name}") };
            modules(&path, &prefix, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match (prefix, name.as_str()) {
                ("", "lib") => "crate".to_owned(),
                (p, "mod") => p.to_owned(),
                ("", n) => n.to_owned(),
                (p, n) => format!("{p}::{n}"),
            };
            out.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The code of a file without its tests and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The modules of this crate a file names (`crate::app::views::X` → `app::views`,
/// `super::transitions` from `app::actions` → `app::transitions`), among `known`.
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    for (marker, base) in [("crate::", String::new()), ("super::", parent.to_owned())] {
        for (i, _) in text.match_indices(marker) {
            // `$crate::` in a macro is the same crate.
            let rest = &text[i + marker.len()..];
            let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // The longest prefix that is a module.
            while !segments.is_empty() {
                let candidate =
                    if base.is_empty() { segments.join("::") } else { format!("{base}::{}", segments.join("::")) };
                if known.contains(&candidate) {
                    if candidate != module {
                        found.insert(candidate);
                    }
                    break;
                }
                segments.pop();
            }
        }
    }
    found
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn dependencies_point_inward_and_form_no_circle() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    let known: BTreeSet<String> = files.keys().cloned().collect();
    assert!(known.contains("app::transitions") && known.contains("ports::store"), "{known:?}");
    let graph: BTreeMap<String, BTreeSet<String>> =
        files.iter().map(|(m, text)| (m.clone(), imports(m, &code(text), &known))).collect();

    // What each layer may import, besides itself.
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("domain", &[][..]),
        ("ports", &["domain"][..]),
        ("app", &["domain", "ports"][..]),
        ("adapters", &["domain", "ports"][..]),
        ("http", &["app", "domain", "ports", "adapters"][..]),
        ("lambda", &["app", "domain", "ports", "adapters"][..]),
        ("config", &["app", "domain", "ports", "adapters"][..]),
        ("telemetry", &[][..]),
    ]);
    let mut wrong = Vec::new();
    for (module, imported) in &graph {
        if module == "crate" {
            continue;
        }
        let ok = allowed.get(layer(module)).unwrap_or_else(|| panic!("{module} is in no layer"));
        for target in imported {
            if layer(target) != layer(module) && !ok.contains(&layer(target)) {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies pointing outward:\n{}", wrong.join("\n"));

    // No circle: a depth-first walk never meets a module on its own path.
    fn walk<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| *p == m) {
            return Some(path[at..].iter().map(|s| s.to_string()).chain([m.to_owned()]).collect());
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            if let Some(circle) = walk(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        // A parent module naming its children (`pub mod x; pub use x::Y`) is not a circle.
        let graph: BTreeMap<String, BTreeSet<String>> = graph
            .iter()
            .map(|(m, to)| (m.clone(), to.iter().filter(|t| !t.starts_with(&format!("{m}::"))).cloned().collect()))
            .collect();
        if let Some(circle) = walk(module, &graph, &mut Vec::new(), &mut done.clone()) {
            panic!("an import circle: {}", circle.join(" -> "));
        }
        done.insert(module.as_str());
    }
}

#[test]
fn use_cases_name_no_lambda_sdk_or_stripe_crate() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    let crates =
        ["aws_config", "aws_sdk_", "aws_smithy", "aws_lambda_events", "lambda_http", "lambda_runtime", "stripe"];
    for (module, text) in files.iter().filter(|(m, _)| layer(m) == "app") {
        let code = code(text);
        for name in crates {
            for (i, _) in code.match_indices(name) {
                let before = code[..i].chars().last().unwrap_or(' ');
                let after = &code[i + name.len()..];
                // A path into the crate (`stripe::…`, `aws_sdk_dynamodb::…`), not a word in a name.
                let is_path =
                    !(before.is_alphanumeric() || before == '_') && (after.starts_with("::") || name.ends_with('_'));
                assert!(!is_path, "{module} names the {name} crate");
            }
        }
    }
}
