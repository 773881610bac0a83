//! A line of text as glyphs: split into bidi runs (unicode-bidi: an Arabic
//! name reads right to left inside a left-to-right line), each run into
//! pieces by the first font that has a glyph for each character (Latin and
//! Greek and Cyrillic, then Arabic, Devanagari, Gurmukhi, then Chinese,
//! Japanese, Korean), each piece shaped by rustybuzz (the shaper krilla
//! uses) and drawn with krilla, which embeds and subsets each font and maps
//! every glyph back to its text, so the PDF's text reads back as written.

use krilla::geom::Point;
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use unicode_bidi::BidiInfo;

/// One font in the fallback order, with its shaper's face.
pub struct Face {
    pub font: Font,
    data: &'static [u8],
    index: u32,
}

impl Face {
    pub fn new(data: &'static [u8], index: u32) -> Face {
        let font = Font::new(data.to_vec().into(), index).expect("a font the build checked");
        Face { font, data, index }
    }

    fn shaper(&self) -> rustybuzz::Face<'static> {
        rustybuzz::Face::from_slice(self.data, self.index).expect("a font the build checked")
    }

    fn covers(&self, face: &rustybuzz::Face<'_>, c: char) -> bool {
        c.is_whitespace() || c.is_control() || face.glyph_index(c).is_some()
    }
}

/// The fonts of a style, in fallback order.
pub struct Fonts {
    faces: Vec<Face>,
}

/// A piece of a line in one font and one direction, shaped.
pub struct Piece {
    font: usize,
    text: String,
    glyphs: Vec<KrillaGlyph>,
    /// Width at size 1.
    width: f32,
}

impl Fonts {
    pub fn new(faces: Vec<Face>) -> Fonts {
        Fonts { faces }
    }

    /// The font for `c`: the first that has it (the first when none does).
    fn font_for(&self, shapers: &[rustybuzz::Face<'_>], c: char) -> usize {
        (0..self.faces.len()).find(|&i| self.faces[i].covers(&shapers[i], c)).unwrap_or(0)
    }

    /// `line` as pieces in visual order, left to right.
    pub fn shape(&self, line: &str) -> Vec<Piece> {
        let shapers: Vec<rustybuzz::Face<'_>> = self.faces.iter().map(Face::shaper).collect();
        let bidi = BidiInfo::new(line, None);
        let mut pieces = Vec::new();
        for paragraph in &bidi.paragraphs {
            let (levels, runs) = bidi.visual_runs(paragraph, paragraph.range.clone());
            for run in runs {
                let rtl = levels[run.start].is_rtl();
                let text = &line[run];
                // Split the run where the font changes (whitespace stays with its neighbours).
                let mut spans: Vec<(usize, String)> = Vec::new();
                for c in text.chars() {
                    let font = if c.is_whitespace() {
                        spans.last().map_or_else(|| self.font_for(&shapers, c), |(f, _)| *f)
                    } else {
                        self.font_for(&shapers, c)
                    };
                    match spans.last_mut() {
                        Some((f, s)) if *f == font => s.push(c),
                        _ => spans.push((font, c.to_string())),
                    }
                }
                if rtl {
                    spans.reverse();
                }
                for (font, span) in spans {
                    pieces.push(self.shape_piece(&shapers[font], font, span, rtl));
                }
            }
        }
        pieces
    }

    fn shape_piece(&self, shaper: &rustybuzz::Face<'_>, font: usize, text: String, rtl: bool) -> Piece {
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(&text);
        buffer.guess_segment_properties();
        buffer.set_direction(if rtl { rustybuzz::Direction::RightToLeft } else { rustybuzz::Direction::LeftToRight });
        let output = rustybuzz::shape(shaper, &[], buffer);
        let units = self.faces[font].font.units_per_em();
        let infos = output.glyph_infos();
        let positions = output.glyph_positions();
        // Each glyph maps back to its cluster's text: from its cluster to the
        // next cluster's start (in text order, whatever the visual order).
        let mut starts: Vec<usize> = infos.iter().map(|i| i.cluster as usize).collect();
        starts.sort_unstable();
        starts.dedup();
        let end_of = |start: usize| starts.iter().find(|&&s| s > start).copied().unwrap_or(text.len());
        let glyphs: Vec<KrillaGlyph> = infos
            .iter()
            .zip(positions)
            .map(|(info, pos)| {
                let start = info.cluster as usize;
                KrillaGlyph::new(
                    GlyphId::new(info.glyph_id),
                    pos.x_advance as f32 / units,
                    pos.x_offset as f32 / units,
                    pos.y_offset as f32 / units,
                    pos.y_advance as f32 / units,
                    start..end_of(start),
                    None,
                )
            })
            .collect();
        let width = glyphs.iter().map(|g| g.x_advance).sum();
        Piece { font, text, glyphs, width }
    }

    /// The width of `line` at `size`.
    pub fn width(&self, line: &str, size: f32) -> f32 {
        self.shape(line).iter().map(|p| p.width).sum::<f32>() * size
    }

    /// Draws `line` with its left end at `start` (baseline); its width.
    pub fn draw(&self, surface: &mut Surface<'_>, start: Point, size: f32, line: &str) -> f32 {
        let mut x = start.x;
        for piece in self.shape(line) {
            surface.draw_glyphs(
                Point::from_xy(x, start.y),
                &piece.glyphs,
                self.faces[piece.font].font.clone(),
                &piece.text,
                size,
                false,
            );
            x += piece.width * size;
        }
        x - start.x
    }

    /// `text` broken into lines no wider than `max` at `size`: at spaces,
    /// and inside a word too long for a line (names in scripts without spaces).
    pub fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for word in paragraph.split(' ') {
                let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
                if self.width(&candidate, size) <= max {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // A word wider than a line: as many characters as fit, then the rest.
                let mut rest = word.to_owned();
                while self.width(&rest, size) > max && rest.chars().count() > 1 {
                    let mut fit = String::new();
                    for c in rest.chars() {
                        if self.width(&format!("{fit}{c}"), size) > max && !fit.is_empty() {
                            break;
                        }
                        fit.push(c);
                    }
                    rest = rest[fit.len()..].to_owned();
                    lines.push(fit);
                }
                line = rest;
            }
            lines.push(line);
        }
        lines
    }
}
