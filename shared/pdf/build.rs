//! Finds the fonts the receipt embeds, from Debian's packages
//! (`fonts-noto-core`, `fonts-wqy-microhei`) or `VISITPAY_FONTS_DIR` (a
//! directory laid out the same way: `noto/…`, `wqy/…`). A missing font stops
//! the build and says which package brings it.

use std::path::PathBuf;

const FONTS: &[(&str, &str, &str)] = &[
    ("NOTO_SANS", "noto/NotoSans-Regular.ttf", "fonts-noto-core"),
    ("NOTO_SANS_BOLD", "noto/NotoSans-Bold.ttf", "fonts-noto-core"),
    ("NOTO_SANS_ARABIC", "noto/NotoSansArabic-Regular.ttf", "fonts-noto-core"),
    ("NOTO_SANS_DEVANAGARI", "noto/NotoSansDevanagari-Regular.ttf", "fonts-noto-core"),
    ("NOTO_SANS_GURMUKHI", "noto/NotoSansGurmukhi-Regular.ttf", "fonts-noto-core"),
    ("WQY_MICROHEI", "wqy/wqy-microhei.ttc", "fonts-wqy-microhei"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=VISITPAY_FONTS_DIR");
    let dir = std::env::var_os("VISITPAY_FONTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/fonts/truetype"));
    let mut missing = Vec::new();
    for (name, file, package) in FONTS {
        let path = dir.join(file);
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            println!("cargo:rustc-env=VISITPAY_FONT_{name}={}", path.display());
        } else {
            missing.push(format!("{} (Debian package {package})", path.display()));
        }
    }
    if !missing.is_empty() {
        panic!(
            "the receipt's fonts are missing: {}. Install them (apt-get install fonts-noto-core fonts-wqy-microhei) \
             or set VISITPAY_FONTS_DIR to a directory holding noto/ and wqy/ as Debian lays them out",
            missing.join(", ")
        );
    }
}
