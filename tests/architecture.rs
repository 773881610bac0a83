//! The walls Cargo does not build. Cargo already refuses a crate that names
//! another it does not depend on, and a circle between crates; this test
//! checks what it cannot say:
//!
//! - no function's crate depends, directly or not, on the dev kit (the
//!   embedded store and queue are for the laptop, the tests and the
//!   benchmarks only), and the domain crate depends only on pure crates,
//!   the app crate on the domain and pure crates (read from `cargo metadata`);
//! - inside each crate, no two modules import each other, directly or
//!   through others: `use` trees are read whole (`super::`, `self::`,
//!   `crate::`, grouped `{…}` imports) and so are paths written inline;
//! - inside the app crate, the ports never import a use case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its module path (`ports::store`, or
/// `crate` for `lib.rs`/`main.rs`).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // A binary's own tree (`src/bin/x.rs`) is another crate.
            if prefix.is_empty() && name == "bin" {
                continue;
            }
            let prefix = if prefix.is_empty() { name } else { format!("{prefix}::{name}") };
            modules(&path, &prefix, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match (prefix, name.as_str()) {
                ("", "lib" | "main") => "crate".to_owned(),
                (p, "mod") => p.to_owned(),
                ("", n) => n.to_owned(),
                (p, n) => format!("{p}::{n}"),
            };
            out.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The code of a file without its tests, comments and string literals'
/// contents (a path in a doc or a message is not an import).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let mut out = String::new();
    let mut in_string = false;
    let joined = lines.join("\n");
    let mut chars = joined.chars().peekable();
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => {
                in_string = false;
                out.push('"');
            }
            (true, _) => {}
            (false, '"') => {
                in_string = true;
                out.push('"');
            }
            (false, _) => out.push(c),
        }
    }
    out
}

/// The paths a `use` tree names, in full: `super::{a, b::{c, d}}` gives
/// `super::a`, `super::b::c`, `super::b::d`.
fn use_paths(tree: &str) -> Vec<String> {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            // Split the group at top-level commas.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
        } else if !tree.is_empty() {
            let path = tree.split(" as ").next().unwrap().trim();
            out.push(if path == "self" { prefix.to_owned() } else { join(prefix, path) });
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_owned(),
            (_, true) => a.to_owned(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    expand("", tree, &mut out);
    out
}

/// Every path a file names that starts in its own crate: its `use` trees,
/// and paths written inline (`crate::x::Y`, `super::z`).
fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` trees, read whole and then left out of the inline scan (a path
    // inside a group is relative to the group, not to the module).
    let mut inline = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last().unwrap_or('\n');
        let after = &rest[at + 4..];
        if !(before.is_whitespace() || before == ';' || before == '{') {
            inline.push_str(&rest[..at + 4]);
            rest = after;
            continue;
        }
        let Some(end) = after.find(';') else { break };
        paths.extend(use_paths(&after[..end]));
        inline.push_str(&rest[..at]);
        rest = &after[end..];
    }
    inline.push_str(rest);
    for marker in ["crate::", "super::", "self::"] {
        for (i, _) in inline.match_indices(marker) {
            let before = inline[..i].chars().last().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' || before == '$' || before == ':' {
                continue;
            }
            let path: String =
                inline[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(path.trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The module of this crate a path names, from `module`, among `known`
/// (the longest prefix that is one).
fn resolve(module: &str, path: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut here: Vec<&str> = if module == "crate" { Vec::new() } else { module.split("::").collect() };
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    match segments.peek().copied() {
        Some("crate") => {
            here.clear();
            segments.next();
        }
        Some("super") => {
            while segments.peek() == Some(&"super") {
                segments.next();
                here.pop();
            }
        }
        Some("self") => {
            segments.next();
        }
        // Another crate, or a name in scope.
        _ => return None,
    }
    let mut full: Vec<&str> = here;
    full.extend(segments);
    while !full.is_empty() {
        let candidate = full.join("::");
        if known.contains(&candidate) {
            return Some(candidate);
        }
        full.pop();
    }
    None
}

/// Each module's imports of other modules of the same crate.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    modules(src, "", &mut files);
    let known: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, text)| {
            let targets = named_paths(&code(text))
                .iter()
                .filter_map(|p| resolve(module, p, &known))
                // A module naming its own children (`pub mod x; pub use x::Y`) is not an import.
                .filter(|t| t != module && !t.starts_with(&format!("{module}::")) && module != "crate")
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
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
            if let Some(found) = walk(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| walk(m, graph, &mut Vec::new(), &mut done))
}

/// Every crate of the project with its own sources.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for parent in ["shared", "functions", "infra"] {
        for entry in std::fs::read_dir(root().join(parent)).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("Cargo.toml").exists() && dir.join("src").exists() {
                dirs.push(dir.join("src"));
            }
        }
    }
    dirs.extend([root().join("bench/src")]);
    dirs
}

#[test]
fn the_reader_follows_super_self_and_grouped_imports() {
    let known: BTreeSet<String> = ["a", "a::b", "a::c", "d", "d::e"].iter().map(|s| s.to_string()).collect();
    let paths = named_paths("use super::{c, super::d::{e::X, self}};\nfn f() { crate::a::b::g(); }");
    let mut found: BTreeSet<String> = paths.iter().filter_map(|p| resolve("a::b", p, &known)).collect();
    found.remove("a::b");
    assert_eq!(found, ["a::c", "d", "d::e"].iter().map(|s| s.to_string()).collect());
    let circle_of_two = BTreeMap::from([
        ("x".to_owned(), BTreeSet::from(["y".to_owned()])),
        ("y".to_owned(), BTreeSet::from(["x".to_owned()])),
    ]);
    assert!(circle(&circle_of_two).is_some());
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    for src in crate_dirs() {
        let graph = graph(&src);
        if let Some(found) = circle(&graph) {
            panic!("an import circle in {}: {}", src.display(), found.join(" -> "));
        }
    }
}

#[test]
fn the_ports_never_import_a_use_case() {
    let graph = graph(&root().join("shared/app/src"));
    assert!(graph.contains_key("ports::store") && graph.contains_key("actions"), "{:?}", graph.keys());
    for (module, targets) in graph.iter().filter(|(m, _)| m.starts_with("ports")) {
        for target in targets {
            assert!(target.starts_with("ports"), "{module} imports the use case {target}");
        }
    }
}

/// `cargo metadata`'s resolved graph: each package and what it depends on
/// (normal dependencies only: what its artifact links).
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
                .map(|d| name_of[d["pkg"].as_str().unwrap()].to_owned())
                .collect();
            (name_of[node["id"].as_str().unwrap()].to_owned(), deps)
        })
        .collect()
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut queue = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop() {
        let last = path.last().unwrap().clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in graph.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            queue.push(longer);
        }
    }
    None
}

#[test]
fn no_function_links_the_dev_kit_and_the_inner_crates_link_no_sdk() {
    let graph = dependency_graph();
    let functions: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(functions.len() >= 9, "{functions:?}");
    for function in &functions {
        assert!(graph.contains_key(function), "{function} is a workspace package");
        if let Some(path) = reaches(&graph, function, "visitpay-devkit") {
            panic!("{function} links the dev kit: {}", path.join(" -> "));
        }
    }
    // The words: data only.
    for dep in &graph["visitpay-words"] {
        assert_eq!(dep, "serde_json", "the words depend on {dep}");
    }
    // The domain: pure crates only (and what those bring).
    let pure = ["visitpay-words", "serde", "serde_json", "thiserror", "time", "jiff", "sha2"];
    for dep in &graph["visitpay-domain"] {
        assert!(pure.contains(&dep.as_str()), "the domain depends on {dep}");
    }
    // The app: the domain and pure or async plumbing, no SDK, no Stripe, no HTTP.
    let app_may = [
        "visitpay-domain",
        "visitpay-words",
        "async-trait",
        "getrandom",
        "secrecy",
        "serde",
        "serde_json",
        "sha2",
        "subtle",
        "thiserror",
        "time",
        "tokio",
        "tracing",
    ];
    for dep in &graph["visitpay-app"] {
        assert!(app_may.contains(&dep.as_str()), "the app crate depends on {dep}");
    }
    for forbidden in ["aws-config", "aws-sdk-dynamodb", "lambda_http", "async-stripe-client-core", "hyper", "askama"] {
        for inner in ["visitpay-domain", "visitpay-app"] {
            assert!(reaches(&graph, inner, forbidden).is_none(), "{inner} reaches {forbidden}");
        }
    }
}
