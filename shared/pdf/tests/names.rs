//! The receipt's PDF writes every patient's name exactly: read back with
//! poppler's `pdftotext` (what an insurer's software extracts) and every
//! font listed as embedded by `pdffonts`. poppler-utils is installed by
//! scripts/test; these tests fail, never skip, without it.

use visitpay_app::ports::{ReceiptDocument, ReceiptPdf};
use visitpay_pdf::KrillaPdf;

/// Names in the nine scripts a Canadian clinic's patients write theirs in.
const NAMES: &[(&str, &str)] = &[
    ("Latin, Vietnamese diacritics", "Nguyễn Thị Minh Khai"),
    ("Chinese", "王小明"),
    ("Japanese", "山田はなこ"),
    ("Korean", "김민준"),
    ("Arabic, right to left", "محمد عبد الله"),
    ("Punjabi, Gurmukhi", "ਗੁਰਪ੍ਰੀਤ ਸਿੰਘ"),
    ("Hindi, Devanagari", "प्रिया शर्मा"),
    ("Cyrillic", "Наталья Иванова"),
    ("Greek", "Γιώργος Παπαδόπουλος"),
];

fn tool(var: &str, default: &str) -> String {
    let tool = std::env::var(var).unwrap_or_else(|_| default.into());
    assert!(std::path::Path::new(&tool).exists(), "{tool} not found: scripts/test installs poppler-utils (apt-get)");
    tool
}

fn run(tool: &str, args: &[&str], pdf: &[u8], name: &str) -> String {
    let path = std::env::temp_dir().join(format!("visitpay-{name}-{}.pdf", std::process::id()));
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new(tool)
        .args(args)
        .arg(&path)
        .args(["-"].iter().filter(|_| tool.ends_with("pdftotext")))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn receipt(patient: &str, lang: &'static str) -> ReceiptDocument {
    ReceiptDocument {
        lang,
        title: "Reçu — Clinique Santé Nord".into(),
        header: vec![
            ("Reçu n°".into(), "R-ABC123".into()),
            ("Émis par".into(), "Clinique Santé Nord inc.".into()),
            ("Patient".into(), patient.into()),
        ],
        services_caption: "Services",
        columns: ["Service", "Date", "Professionnel", "Montant"],
        rows: vec![[
            "Physiothérapie — évaluation initiale".into(),
            "2026-12-01".into(),
            format!("{patient}, physiothérapeute, n° de permis 12345"),
            "45,00 $".into(),
        ]],
        footer: vec![("Total payé".into(), "45,00 $".into()), ("Payé le".into(), "1 décembre 2026".into())],
        missing: String::new(),
        number: "R-ABC123".into(),
    }
}

#[test]
fn every_name_reads_back_exactly() {
    let pdf = KrillaPdf::new();
    let pdftotext = tool("VISITPAY_PDFTOTEXT", "/usr/bin/pdftotext");
    let mut wrong = Vec::new();
    for (script, name) in NAMES {
        let bytes = pdf.render(&receipt(name, "fr")).unwrap();
        let text = run(&pdftotext, &[], &bytes, "names");
        if !text.contains(name) {
            wrong.push(format!("{script}: {name:?} not in:\n{text}"));
        }
        assert!(text.contains("Clinique Santé Nord inc.") && text.contains("45,00 $"), "{text}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn every_font_is_embedded_and_subset() {
    let pdf = KrillaPdf::new();
    let all: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
    let bytes = pdf.render(&receipt(&all.join(" / "), "en")).unwrap();
    let listing = run(&tool("VISITPAY_PDFFONTS", "/usr/bin/pdffonts"), &[], &bytes, "fonts");
    let fonts: Vec<&str> = listing.lines().skip(2).collect();
    assert!(fonts.len() >= 6, "every script's font is used: {listing}");
    for line in &fonts {
        let columns: Vec<&str> = line.split_whitespace().collect();
        // name type encoding emb sub uni object ID: emb and sub are "yes".
        let n = columns.len();
        assert_eq!((columns[n - 5], columns[n - 4]), ("yes", "yes"), "embedded and subset: {line}");
        assert!(columns[0].contains('+'), "a subset's name is tagged: {line}");
    }
    assert!(bytes.len() < 400_000, "subsets, not whole fonts: {} bytes", bytes.len());
}

#[test]
fn a_long_receipt_runs_over_pages_and_long_words_wrap() {
    let pdf = KrillaPdf::new();
    let mut doc = receipt("王小明", "fr");
    doc.rows = (0..60)
        .map(|n| {
            [
                format!("Service {n}"),
                "2026-12-01".into(),
                "王小明王小明王小明王小明王小明王小明王小明王小明".into(),
                "1,00 $".into(),
            ]
        })
        .collect();
    let bytes = pdf.render(&doc).unwrap();
    let text = run(&tool("VISITPAY_PDFTOTEXT", "/usr/bin/pdftotext"), &[], &bytes, "long");
    assert!(text.contains("Service 0") && text.contains("Service 59"), "every row, across pages");
    assert!(text.matches('\u{c}').count() >= 2, "more than one page");
}
