//! A plain-text PDF (PDF 1.4, ISO 32000's base): lines of Helvetica on US
//! Letter pages. The standard fonts need nothing embedded, and their
//! WinAnsiEncoding covers French; a character outside it prints as `?`.
//! Small enough that the receipt needs no PDF crate in the function.

/// One line of the document.
pub(crate) struct Line {
    pub text: String,
    pub size: u8,
    pub bold: bool,
}

impl Line {
    pub(crate) fn plain(text: impl Into<String>) -> Self {
        Line { text: text.into(), size: 10, bold: false }
    }
    pub(crate) fn heading(text: impl Into<String>) -> Self {
        Line { text: text.into(), size: 14, bold: true }
    }
    pub(crate) fn strong(text: impl Into<String>) -> Self {
        Line { text: text.into(), size: 10, bold: true }
    }
    pub(crate) fn blank() -> Self {
        Line::plain("")
    }
}

const PAGE_WIDTH: u32 = 612;
const PAGE_HEIGHT: u32 = 792;
const MARGIN: u32 = 56;
/// Characters per line at 10 pt Helvetica within the margins (~0.5 em average).
const WRAP_AT: usize = 96;

/// The document's bytes.
pub(crate) fn render(title: &str, lines: &[Line]) -> Vec<u8> {
    let pages = paginate(lines);
    let mut objects: Vec<Vec<u8>> = Vec::new();
    // 1 catalog, 2 pages, 3 and 4 the fonts, 5 the info; then each page and its content.
    let first_page = 6;
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", first_page + 2 * i)).collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len()).into_bytes());
    for font in ["Helvetica", "Helvetica-Bold"] {
        objects.push(
            format!("<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>").into_bytes(),
        );
    }
    let mut info = b"<< /Title (".to_vec();
    info.extend(escape(title));
    info.extend(b") /Producer (visitpay) >>");
    objects.push(info);
    for (i, page) in pages.iter().enumerate() {
        let content = first_page + 2 * i + 1;
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {content} 0 R >>"
            )
            .into_bytes(),
        );
        let stream = content_stream(page);
        let mut object = format!("<< /Length {} >>\nstream\n", stream.len()).into_bytes();
        object.extend(stream);
        object.extend(b"\nendstream");
        objects.push(object);
    }

    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).into_bytes());
        out.extend(object);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .into_bytes(),
    );
    out
}

/// Wrapped lines, split into pages.
fn paginate(lines: &[Line]) -> Vec<Vec<(u8, bool, String)>> {
    let mut pages = vec![Vec::new()];
    let mut used = 0u32;
    for line in lines {
        for text in wrap(&line.text, WRAP_AT * 10 / usize::from(line.size.max(1))) {
            let height = u32::from(line.size) * 3 / 2;
            if used + height > PAGE_HEIGHT - 2 * MARGIN {
                pages.push(Vec::new());
                used = 0;
            }
            used += height;
            pages.last_mut().expect("a page").push((line.size, line.bold, text));
        }
    }
    pages
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let current = lines.last_mut().expect("a line");
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    lines
}

fn content_stream(page: &[(u8, bool, String)]) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut y = PAGE_HEIGHT - MARGIN;
    for (size, bold, text) in page {
        y -= u32::from(*size) * 3 / 2;
        let font = if *bold { "F2" } else { "F1" };
        stream.extend(format!("BT /{font} {size} Tf {MARGIN} {y} Td (").into_bytes());
        stream.extend(escape(text));
        stream.extend(b") Tj ET\n");
    }
    stream
}

/// A PDF string literal's bytes in WinAnsiEncoding.
fn escape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let byte = match c {
            '(' | ')' | '\\' => {
                out.push(b'\\');
                c as u8
            }
            ' '..='~' => c as u8,
            '\u{a0}' | '\u{202f}' => 0xa0,
            '\u{a1}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_well_formed() {
        let lines: Vec<Line> = (0..60).map(|i| Line::plain(format!("ligne {i} — reçu (45,00 $)"))).collect();
        let pdf = render("Reçu", &lines);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4") && text.ends_with("%%EOF\n"));
        assert!(text.contains("/Count 2"), "60 lines take two pages (45 a page)");
        // Each xref entry points at its object.
        let xref = text.rfind("xref\n").unwrap();
        let entries: Vec<usize> =
            text[xref..].lines().skip(3).take_while(|l| l.ends_with(" n ")).map(|l| l[..10].parse().unwrap()).collect();
        for (i, offset) in entries.iter().enumerate() {
            assert!(pdf[*offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()), "object {}", i + 1);
        }
        assert!(pdf.windows(3).any(|w| w == b"re\xe7"), "ç in WinAnsi");
        assert!(text.contains("\\(45,00"), "parentheses escaped");
    }
}
