//! The receipt as a PDF, laid out for an insurer: the clinic's block, the
//! patient, a table of services, the totals and the payment, on US Letter
//! pages. Drawn with krilla (a maintained PDF library), every font embedded
//! and subset to the glyphs used, so a name in any of the scripts a Canadian
//! patient may write it in prints, and reads back, exactly.
//!
//! The fonts come from Debian's packages at build time (`build.rs`): Noto
//! Sans (Latin, with Vietnamese, Greek, Cyrillic; OFL-1.1), Noto Sans
//! Arabic, Devanagari and Gurmukhi (OFL-1.1), and WenQuanYi Micro Hei
//! (Chinese, Japanese, Korean; Apache-2.0): all licensed for embedding.
//! Only the functions that render PDFs link this crate.

mod text;

use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::surface::Surface;
use krilla::Document;

use text::{Face, Fonts};
use visitpay_app::ports::{PdfError, ReceiptDocument, ReceiptPdf};

const NOTO_SANS: &[u8] = include_bytes!(env!("VISITPAY_FONT_NOTO_SANS"));
const NOTO_SANS_BOLD: &[u8] = include_bytes!(env!("VISITPAY_FONT_NOTO_SANS_BOLD"));
const NOTO_SANS_ARABIC: &[u8] = include_bytes!(env!("VISITPAY_FONT_NOTO_SANS_ARABIC"));
const NOTO_SANS_DEVANAGARI: &[u8] = include_bytes!(env!("VISITPAY_FONT_NOTO_SANS_DEVANAGARI"));
const NOTO_SANS_GURMUKHI: &[u8] = include_bytes!(env!("VISITPAY_FONT_NOTO_SANS_GURMUKHI"));
const WQY_MICROHEI: &[u8] = include_bytes!(env!("VISITPAY_FONT_WQY_MICROHEI"));

/// US Letter, in points, and its margins.
const PAGE_WIDTH: f32 = 612.0;
const PAGE_HEIGHT: f32 = 792.0;
const MARGIN: f32 = 54.0;
const TEXT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;

const TITLE_SIZE: f32 = 16.0;
const BODY_SIZE: f32 = 10.0;
const TABLE_SIZE: f32 = 9.0;
/// Line height as a multiple of the size.
const LEADING: f32 = 1.45;

/// The table's columns as shares of the text width (service, date,
/// provider, amount), the amount right-aligned.
const COLUMNS: [f32; 4] = [0.33, 0.15, 0.36, 0.16];
const CELL_GAP: f32 = 6.0;

/// Renders receipts; the fonts are read once (per cold start).
pub struct KrillaPdf {
    regular: Fonts,
    bold: Fonts,
}

impl Default for KrillaPdf {
    fn default() -> Self {
        Self::new()
    }
}

impl KrillaPdf {
    pub fn new() -> Self {
        // Fallback order: the first font with a glyph for a character draws it.
        let scripts = || {
            vec![
                Face::new(NOTO_SANS_ARABIC, 0),
                Face::new(NOTO_SANS_DEVANAGARI, 0),
                Face::new(NOTO_SANS_GURMUKHI, 0),
                Face::new(WQY_MICROHEI, 0),
            ]
        };
        let mut regular = vec![Face::new(NOTO_SANS, 0)];
        regular.extend(scripts());
        let mut bold = vec![Face::new(NOTO_SANS_BOLD, 0)];
        bold.extend(scripts());
        KrillaPdf { regular: Fonts::new(regular), bold: Fonts::new(bold) }
    }
}

/// Where the next line goes, page after page.
struct Cursor {
    y: f32,
}

impl Cursor {
    /// Room for `height` more on this page, or a new page.
    fn room(&mut self, height: f32, pages: &mut Vec<Vec<Draw>>) {
        if self.y + height > PAGE_HEIGHT - MARGIN {
            pages.push(Vec::new());
            self.y = MARGIN;
        }
    }
}

/// What a page shows, drawn once it is laid out.
enum Draw {
    Text { x: f32, y: f32, size: f32, bold: bool, text: String },
    Rule { y: f32 },
}

impl ReceiptPdf for KrillaPdf {
    fn render(&self, doc: &ReceiptDocument) -> Result<Vec<u8>, PdfError> {
        let mut document = Document::new();
        document.set_metadata(
            Metadata::new().title(doc.title.clone()).language(doc.lang.to_owned()).creator("visitpay".into()),
        );
        let pages = self.lay_out(doc);
        for draws in &pages {
            let settings =
                PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT).ok_or_else(|| PdfError("page size".into()))?;
            let mut page = document.start_page_with(settings);
            let mut surface = page.surface();
            for draw in draws {
                self.draw(&mut surface, draw);
            }
            surface.finish();
            page.finish();
        }
        document.finish().map_err(|e| PdfError(format!("{e:?}")))
    }
}

impl KrillaPdf {
    fn fonts(&self, bold: bool) -> &Fonts {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    fn draw(&self, surface: &mut Surface<'_>, draw: &Draw) {
        match draw {
            Draw::Text { x, y, size, bold, text } => {
                self.fonts(*bold).draw(surface, Point::from_xy(*x, *y), *size, text);
            }
            Draw::Rule { y } => {
                let mut path = PathBuilder::new();
                path.move_to(MARGIN, *y);
                path.line_to(PAGE_WIDTH - MARGIN, *y);
                if let Some(path) = path.finish() {
                    surface.set_fill(None);
                    surface.set_stroke(Some(Stroke { width: 0.5, ..Stroke::default() }));
                    surface.draw_path(&path);
                    surface.set_stroke(None);
                }
            }
        }
    }

    /// Every page's drawing, in order.
    fn lay_out(&self, doc: &ReceiptDocument) -> Vec<Vec<Draw>> {
        let mut cursor = Cursor { y: MARGIN };
        let mut pages: Vec<Vec<Draw>> = vec![Vec::new()];
        let paragraph = |cursor: &mut Cursor, pages: &mut Vec<Vec<Draw>>, text: &str, size: f32, bold: bool| {
            for line in self.fonts(bold).wrap(text, size, TEXT_WIDTH) {
                cursor.room(size * LEADING, pages);
                cursor.y += size * LEADING;
                pages.last_mut().expect("a page").push(Draw::Text { x: MARGIN, y: cursor.y, size, bold, text: line });
            }
        };
        paragraph(&mut cursor, &mut pages, &doc.title, TITLE_SIZE, true);
        cursor.y += BODY_SIZE;
        for (label, value) in &doc.header {
            paragraph(&mut cursor, &mut pages, &format!("{label} : {value}"), BODY_SIZE, false);
        }
        cursor.y += BODY_SIZE;
        paragraph(&mut cursor, &mut pages, doc.services_caption, BODY_SIZE + 2.0, true);
        self.table_row(&mut cursor, &mut pages, &doc.columns.map(str::to_owned), true);
        let rule_y = cursor.y + TABLE_SIZE * 0.5;
        pages.last_mut().expect("a page").push(Draw::Rule { y: rule_y });
        cursor.y += TABLE_SIZE * 0.5;
        for row in &doc.rows {
            self.table_row(&mut cursor, &mut pages, row, false);
        }
        let rule_y = cursor.y + TABLE_SIZE * 0.5;
        pages.last_mut().expect("a page").push(Draw::Rule { y: rule_y });
        cursor.y += BODY_SIZE;
        for (label, value) in &doc.footer {
            paragraph(&mut cursor, &mut pages, &format!("{label} : {value}"), BODY_SIZE, false);
        }
        if !doc.missing.is_empty() {
            cursor.y += BODY_SIZE * 0.5;
            paragraph(&mut cursor, &mut pages, &doc.missing, TABLE_SIZE, false);
        }
        pages
    }

    /// One row of the services' table: each cell wrapped in its column, the
    /// amount right-aligned; the row as tall as its tallest cell.
    fn table_row(&self, cursor: &mut Cursor, pages: &mut Vec<Vec<Draw>>, cells: &[String; 4], bold: bool) {
        let fonts = self.fonts(bold);
        let widths = COLUMNS.map(|share| share * TEXT_WIDTH - CELL_GAP);
        let wrapped: Vec<Vec<String>> =
            cells.iter().zip(widths).map(|(cell, width)| fonts.wrap(cell, TABLE_SIZE, width)).collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        let line_height = TABLE_SIZE * LEADING;
        cursor.room(line_height * lines as f32 + 2.0, pages);
        let top = cursor.y;
        let mut x = MARGIN;
        for (column, cell_lines) in wrapped.iter().enumerate() {
            for (n, line) in cell_lines.iter().enumerate() {
                let y = top + line_height * (n + 1) as f32;
                let left = if column == 3 { x + widths[3] - fonts.width(line, TABLE_SIZE) } else { x };
                pages.last_mut().expect("a page").push(Draw::Text {
                    x: left,
                    y,
                    size: TABLE_SIZE,
                    bold,
                    text: line.clone(),
                });
            }
            x += COLUMNS[column] * TEXT_WIDTH;
        }
        cursor.y = top + line_height * lines as f32 + 2.0;
    }
}
