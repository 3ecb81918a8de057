//! PDF reports, written with krilla (the PDF writer of typst) in DejaVu Sans.
//!
//! What it does: A4 portrait pages, sections of tabular rows whose cells wrap within their
//! column, automatic page breaks (a row is never split; the section heading and column titles
//! repeat on the next page), a running header on every page (the lab and the patient's
//! identifiers: ISO 15189 §7.4.1.6 wants them on each page of a report; they wrap rather than
//! being cut, so a long name never pushes the MRN or sex off the page) and a footer with
//! "Page X of Y".
//!
//! Fonts: DejaVu Sans and DejaVu Sans Bold are compiled in (`fonts/`, Bitstream Vera licence)
//! and embedded as subsets, so Latin, Greek, Cyrillic and Vietnamese names print exactly as
//! stored and can be copied out of the file. DejaVu has no CJK: for characters it lacks, a
//! fallback font found on the server is used (`CUVETTE_PDF_FALLBACK_FONT`, else the first of
//! [`FALLBACK_FILES`] under the system font directories); a character no font has prints as
//! `�` and the report logs a warning naming it. Text is measured with rustybuzz, the shaper
//! krilla draws with, so wrapping matches what is drawn. What it does not do: images,
//! right-to-left paragraph layout beyond one run per font, or any reading of PDF.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use krilla::Document;
use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font as PdfFont, TextDirection};

/// A4 portrait width in points (210 mm).
pub const PAGE_WIDTH_PT: f32 = 595.28;
/// A4 portrait height in points (297 mm).
pub const PAGE_HEIGHT_PT: f32 = 841.89;
/// Page margin: 15 mm, as the print stylesheet uses.
const MARGIN_PT: f32 = 42.52;
/// The most pages one report may have; rows past it are dropped with a line saying so.
pub const PAGES_MAX: usize = 1000;
/// The most lines one cell wraps to; longer text is cut with "...".
const CELL_LINES_MAX: usize = 30;

const BODY_SIZE: f32 = 9.0;
const BODY_LEADING: f32 = 11.0;
const NOTE_SIZE: f32 = 8.0;
const NOTE_LEADING: f32 = 10.0;
const HEAD_SIZE: f32 = 8.0;
const SECTION_SIZE: f32 = 10.0;
const CELL_PAD: f32 = 3.0;
/// What a header line's caller puts between its items (name, DOB, sex, MRN): a line breaks
/// there first, so an item stays whole when it can.
const HEADER_GAP: &str = "   ";

/// A report to print.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What the report is ("Cumulative report"; "CORRECTED REPORT" when it is one), printed
    /// at the top right of every page and used as the document title.
    pub title: String,
    /// The running header, repeated on every page: the first line in bold (the lab's name),
    /// the others regular (patient name, DOB, MRN).
    pub header_lines: Vec<String>,
    /// Printed at the bottom left of every page, beside "Page X of Y" (e.g. "Printed …").
    pub footer: String,
    /// The body.
    pub sections: Vec<Section>,
}

/// A titled table.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Printed above the table (and again, marked "continued", after a page break).
    pub heading: String,
    /// The columns; none for a section that is only a heading and notes.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A column of a section.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its title.
    pub title: String,
    /// Relative width: the columns share the text width in proportion to these.
    pub width: f32,
    /// Right-aligned (numbers).
    pub right: bool,
    /// Printed in bold (flags).
    pub bold: bool,
}

impl Column {
    /// A left-aligned regular column.
    pub fn new(title: impl Into<String>, width: f32) -> Column {
        Column { title: title.into(), width, right: false, bold: false }
    }

    /// Right-aligned.
    pub fn right(mut self) -> Column {
        self.right = true;
        self
    }

    /// Bold.
    pub fn bold(mut self) -> Column {
        self.bold = true;
        self
    }
}

/// A row of a section.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// One text per column (missing cells are blank, extra ones ignored).
    pub cells: Vec<String>,
    /// A line under the row across the full width (e.g. "Corrected from 4.2 …"); empty for none.
    pub note: String,
}

/// Renders the report as a PDF file.
pub fn render(report: &Report) -> Vec<u8> {
    let fonts = fonts();
    warn_unprintable(report, fonts);
    let pages = layout(report, fonts);
    match write_document(report, &pages, fonts, false) {
        Ok(pdf) => pdf,
        Err(e) => {
            // krilla refuses a font it cannot subset. Glyphs drawn as outlines need no font
            // program in the file, so the report still prints (its text is then not selectable).
            tracing::error!(error = %e, "the report's fonts could not be embedded; printing its text as outlines");
            write_document(report, &pages, fonts, true).unwrap_or_else(|e| {
                // Only font embedding and PDF/A validation fail in krilla, and neither applies
                // to outlines without a validator: this is not expected to happen.
                tracing::error!(error = %e, "the report could not be written as PDF");
                Vec::new()
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fonts: the embedded DejaVu faces, the fallback, runs, widths.

/// Font file names of a CJK fallback, best first: Droid Sans Fallback (Debian's
/// `fonts-droid-fallback`) covers CJK in one small file; Noto CJK and WenQuanYi are the other
/// common ones.
pub const FALLBACK_FILES: [&str; 5] = [
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "wqy-microhei.ttc",
];

/// Where the system's fonts are (Debian, and fonts installed by hand).
const FONT_DIRS: [&str; 2] = ["/usr/share/fonts", "/usr/local/share/fonts"];

static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static DEJAVU_SANS_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Regular,
    Bold,
}

/// One font: the shaper's view (to measure) and krilla's (to embed and draw).
struct Face {
    shaper: rustybuzz::Face<'static>,
    pdf: PdfFont,
}

impl Face {
    fn new(data: &'static [u8], index: u32) -> Option<Face> {
        let shaper = rustybuzz::Face::from_slice(data, index)?;
        let pdf = PdfFont::new(data.into(), index)?;
        Some(Face { shaper, pdf })
    }

    fn has(&self, c: char) -> bool {
        self.shaper.glyph_index(c).is_some()
    }

    /// The advance width of `text` shaped in this face, as krilla will draw it.
    fn width(&self, text: &str, size: f32) -> f32 {
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(text);
        let shaped = rustybuzz::shape(&self.shaper, &[], buffer);
        let units: i64 = shaped.glyph_positions().iter().map(|p| i64::from(p.x_advance)).sum();
        units as f32 * size / self.shaper.units_per_em() as f32
    }
}

struct Fonts {
    regular: Face,
    bold: Face,
    /// For characters DejaVu lacks (CJK); none when the server has no such font.
    fallback: Option<Face>,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts {
        regular: Face::new(DEJAVU_SANS, 0).expect("the compiled-in DejaVu Sans is a valid font"),
        bold: Face::new(DEJAVU_SANS_BOLD, 0)
            .expect("the compiled-in DejaVu Sans Bold is a valid font"),
        fallback: fallback_face(),
    })
}

/// Whether reports can print CJK (a fallback font was found).
#[cfg(test)]
fn fallback_font_available() -> bool {
    fonts().fallback.is_some()
}

fn fallback_face() -> Option<Face> {
    let path = match std::env::var_os("CUVETTE_PDF_FALLBACK_FONT") {
        Some(p) => PathBuf::from(p),
        None => {
            let Some(path) = find_fallback_file() else {
                tracing::info!(
                    "no CJK fallback font found: reports print CJK characters as \u{FFFD}; install fonts-droid-fallback or set CUVETTE_PDF_FALLBACK_FONT to a font file"
                );
                return None;
            };
            path
        }
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the fallback font for reports cannot be read; CJK characters print as \u{FFFD}");
            return None;
        }
    };
    // Read once per process and kept for its life: the shaper and krilla borrow the bytes.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let face = Face::new(bytes, 0);
    match &face {
        Some(_) => {
            tracing::info!(path = %path.display(), "reports use this fallback font for characters DejaVu Sans lacks")
        }
        None => {
            tracing::warn!(path = %path.display(), "the fallback font for reports is not a font file krilla can read; CJK characters print as \u{FFFD}")
        }
    }
    face
}

fn find_fallback_file() -> Option<PathBuf> {
    let mut found = Vec::new();
    for dir in FONT_DIRS {
        collect_font_files(Path::new(dir), 4, &mut found);
    }
    FALLBACK_FILES
        .iter()
        .find_map(|name| found.iter().find(|p| p.file_name().is_some_and(|f| f == *name)).cloned())
}

/// The files under `dir` named in [`FALLBACK_FILES`], `depth` directories down at most.
fn collect_font_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 0 {
                collect_font_files(&path, depth - 1, out);
            }
        } else if path.file_name().is_some_and(|f| FALLBACK_FILES.iter().any(|n| f == *n)) {
            out.push(path);
        }
    }
}

/// Printed for a character no font has: visible, so nobody reads a name with a gap as whole.
const REPLACEMENT: char = '\u{FFFD}';

/// A combining mark (accents written after their letter): it is drawn in its letter's font.
fn is_mark(c: char) -> bool {
    matches!(c, '\u{300}'..='\u{36F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

impl Fonts {
    fn face(&self, style: Style) -> &Face {
        match style {
            Style::Regular => &self.regular,
            Style::Bold => &self.bold,
        }
    }

    /// The face that draws `c`: the style's DejaVu face, else the fallback; none when neither
    /// has it.
    fn face_for(&self, c: char, style: Style) -> Option<&Face> {
        let own = self.face(style);
        if own.has(c) {
            return Some(own);
        }
        self.fallback.as_ref().filter(|f| f.has(c))
    }

    /// Splits text into runs that each one face draws. A character no face has becomes
    /// [`REPLACEMENT`]; a combining mark stays with its letter's run.
    fn runs(&self, text: &str, style: Style) -> Vec<(&Face, String)> {
        let mut runs: Vec<(&Face, String)> = Vec::new();
        for c in text.chars() {
            if is_mark(c)
                && let Some((face, run)) = runs.last_mut()
                && face.has(c)
            {
                run.push(c);
                continue;
            }
            let (face, c) = match self.face_for(c, style) {
                Some(face) => (face, c),
                None => (self.face(style), REPLACEMENT),
            };
            match runs.last_mut() {
                Some((last, run)) if std::ptr::eq(*last, face) => run.push(c),
                _ => runs.push((face, c.to_string())),
            }
        }
        runs
    }

    fn width(&self, text: &str, style: Style, size: f32) -> f32 {
        self.runs(text, style).iter().map(|(face, run)| face.width(run, size)).sum()
    }

    /// The characters of `text` no font can print.
    fn unprintable(&self, text: &str) -> impl Iterator<Item = char> {
        text.chars().filter(move |&c| {
            !c.is_control() && self.face_for(c, Style::Regular).is_none() && !is_mark(c)
        })
    }
}

/// Logs, once per report, the characters that print as [`REPLACEMENT`].
fn warn_unprintable(report: &Report, fonts: &Fonts) {
    let mut texts: Vec<&str> = vec![&report.title, &report.footer];
    texts.extend(report.header_lines.iter().map(String::as_str));
    for s in &report.sections {
        texts.push(&s.heading);
        texts.extend(s.columns.iter().map(|c| c.title.as_str()));
        for r in &s.rows {
            texts.extend(r.cells.iter().map(String::as_str));
            texts.push(&r.note);
        }
    }
    let missing: BTreeSet<char> = texts.iter().flat_map(|t| fonts.unprintable(t)).collect();
    if !missing.is_empty() {
        let chars: String = missing.iter().take(40).collect();
        tracing::warn!(
            characters = %chars,
            count = missing.len(),
            "a report has characters no font on this server has; they print as \u{FFFD}. Install fonts-droid-fallback (CJK) or set CUVETTE_PDF_FALLBACK_FONT to a font that has them"
        );
    }
}

/// Text as printed: tabs and line breaks become spaces, other control characters are dropped.
fn clean(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Layout: sections → pages of drawing operations, in PDF coordinates (y up from the bottom).

#[derive(Debug, Clone)]
enum Op {
    Text { x: f32, y: f32, size: f32, style: Style, text: String },
    Line { x1: f32, y1: f32, x2: f32, y2: f32, width: f32, gray: f32 },
    Fill { x: f32, y: f32, w: f32, h: f32, gray: f32 },
}

const TEXT_WIDTH: f32 = PAGE_WIDTH_PT - 2.0 * MARGIN_PT;
const RIGHT: f32 = PAGE_WIDTH_PT - MARGIN_PT;
const BODY_BOTTOM: f32 = MARGIN_PT + 8.0;

struct Layout<'a> {
    report: &'a Report,
    fonts: &'a Fonts,
    pages: Vec<Vec<Op>>,
    /// The baseline area's current top: the next thing is drawn below it.
    y: f32,
    body_top: f32,
    truncated: bool,
}

fn layout(report: &Report, fonts: &Fonts) -> Vec<Vec<Op>> {
    let mut l =
        Layout { report, fonts, pages: Vec::new(), y: 0.0, body_top: 0.0, truncated: false };
    l.new_page();
    for section in &report.sections {
        if l.truncated {
            break;
        }
        l.section(section);
    }
    let count = l.pages.len();
    let footer = clean(&report.footer);
    for (i, page) in l.pages.iter_mut().enumerate() {
        page.extend(footer_ops(fonts, &footer, i + 1, count));
    }
    l.pages
}

/// A rule, the footer text on the left, "Page X of Y" on the right.
fn footer_ops(fonts: &Fonts, footer: &str, page: usize, pages: usize) -> Vec<Op> {
    let y = MARGIN_PT - 4.0;
    let number = format!("Page {page} of {pages}");
    let number_x = RIGHT - fonts.width(&number, Style::Regular, NOTE_SIZE);
    let footer = fit(fonts, footer, Style::Regular, NOTE_SIZE, number_x - MARGIN_PT - 12.0);
    let text_y = y - 11.0;
    vec![
        Op::Line { x1: MARGIN_PT, y1: y, x2: RIGHT, y2: y, width: 0.5, gray: 0.6 },
        Op::Text { x: MARGIN_PT, y: text_y, size: NOTE_SIZE, style: Style::Regular, text: footer },
        Op::Text { x: number_x, y: text_y, size: NOTE_SIZE, style: Style::Regular, text: number },
    ]
}

impl Layout<'_> {
    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("layout starts with a page")
    }

    fn text(&mut self, x: f32, y: f32, size: f32, style: Style, text: String) {
        self.ops().push(Op::Text { x, y, size, style, text });
    }

    fn wrap(&self, text: &str, style: Style, size: f32, width: f32) -> Vec<String> {
        wrap(self.fonts, text, style, size, width)
    }

    /// Starts a page with the running header; false when the page limit is reached.
    fn new_page(&mut self) -> bool {
        if self.pages.len() >= PAGES_MAX {
            if !self.truncated {
                self.truncated = true;
                let y = (self.y - BODY_LEADING).max(BODY_BOTTOM);
                let note = "The report is longer than this document allows; the remaining results are not printed.";
                self.text(MARGIN_PT, y, BODY_SIZE, Style::Bold, note.to_owned());
            }
            return false;
        }
        self.pages.push(Vec::new());
        let mut y = PAGE_HEIGHT_PT - MARGIN_PT - 12.0;
        // The title at the top right (cut to half the width at most); the lab's name beside it
        // wraps in the room the title leaves.
        let title =
            fit(self.fonts, &clean(&self.report.title), Style::Bold, 10.0, TEXT_WIDTH / 2.0);
        let title_width = self.fonts.width(&title, Style::Bold, 10.0);
        let room = if title.is_empty() { TEXT_WIDTH } else { TEXT_WIDTH - title_width - 18.0 };
        let mut lines = self.report.header_lines.iter();
        let first = lines.next().map(|s| clean(s)).unwrap_or_default();
        if !title.is_empty() {
            self.text(RIGHT - title_width, y, 10.0, Style::Bold, title);
        }
        for (i, line) in self.wrap(&first, Style::Bold, 12.0, room).into_iter().enumerate() {
            if i > 0 {
                y -= 13.0;
            }
            self.text(MARGIN_PT, y, 12.0, Style::Bold, line);
        }
        // The patient's identifiers: wrapped, never cut, so all of them are on every page.
        for line in lines {
            for part in header_wrap(self.fonts, &clean(line), Style::Regular, BODY_SIZE, TEXT_WIDTH)
            {
                y -= 12.0;
                self.text(MARGIN_PT, y, BODY_SIZE, Style::Regular, part);
            }
        }
        y -= 6.0;
        self.ops().push(Op::Line { x1: MARGIN_PT, y1: y, x2: RIGHT, y2: y, width: 0.8, gray: 0.0 });
        self.body_top = y - 6.0;
        self.y = self.body_top;
        true
    }

    fn room(&self) -> f32 {
        self.y - BODY_BOTTOM
    }

    fn section(&mut self, s: &Section) {
        let columns = column_boxes(&s.columns);
        let first_row =
            s.rows.first().map(|r| self.measure_row(r, &s.columns, &columns)).unwrap_or(0.0);
        let head = self.section_head_height(s);
        // Keep the heading with the column titles and the first row.
        if self.y < self.body_top && head + first_row > self.room() && !self.new_page() {
            return;
        }
        self.section_head(s, &columns, false);
        for row in &s.rows {
            let h = self.measure_row(row, &s.columns, &columns);
            if h > self.room() && self.y < self.body_top - head {
                if !self.new_page() {
                    return;
                }
                self.section_head(s, &columns, true);
            }
            self.row(row, &s.columns, &columns);
        }
        self.y -= 8.0;
    }

    fn section_head_height(&self, s: &Section) -> f32 {
        let heading = if s.heading.is_empty() {
            0.0
        } else {
            let lines = self.wrap(&clean(&s.heading), Style::Bold, SECTION_SIZE, TEXT_WIDTH).len();
            lines as f32 * (SECTION_SIZE + 2.0) + 4.0
        };
        let titles = if s.columns.is_empty() { 0.0 } else { HEAD_SIZE + 7.0 };
        heading + titles
    }

    fn section_head(&mut self, s: &Section, columns: &[(f32, f32)], continued: bool) {
        if !s.heading.is_empty() {
            let heading =
                if continued { format!("{} (continued)", s.heading) } else { s.heading.clone() };
            for line in self.wrap(&clean(&heading), Style::Bold, SECTION_SIZE, TEXT_WIDTH) {
                self.y -= SECTION_SIZE + 2.0;
                let y = self.y;
                self.text(MARGIN_PT, y, SECTION_SIZE, Style::Bold, line);
            }
            self.y -= 4.0;
        }
        if !s.columns.is_empty() {
            let h = HEAD_SIZE + 7.0;
            let y = self.y;
            self.ops().push(Op::Fill { x: MARGIN_PT, y: y - h, w: TEXT_WIDTH, h, gray: 0.9 });
            for (c, &(x, w)) in s.columns.iter().zip(columns) {
                let title =
                    fit(self.fonts, &clean(&c.title), Style::Bold, HEAD_SIZE, w - 2.0 * CELL_PAD);
                let tx = if c.right {
                    x + w - CELL_PAD - self.fonts.width(&title, Style::Bold, HEAD_SIZE)
                } else {
                    x + CELL_PAD
                };
                self.text(tx, y - h + 4.5, HEAD_SIZE, Style::Bold, title);
            }
            self.y -= h;
        }
    }

    fn row(&mut self, row: &Row, specs: &[Column], columns: &[(f32, f32)]) {
        let top = self.y;
        for (i, &(x, w)) in columns.iter().enumerate() {
            let spec = &specs[i];
            let style = if spec.bold { Style::Bold } else { Style::Regular };
            let text = row.cells.get(i).map(String::as_str).unwrap_or("");
            let lines = self.wrap(&clean(text), style, BODY_SIZE, w - 2.0 * CELL_PAD);
            let mut y = top - CELL_PAD - BODY_SIZE + 1.0;
            for line in lines {
                let tx = if spec.right {
                    x + w - CELL_PAD - self.fonts.width(&line, style, BODY_SIZE)
                } else {
                    x + CELL_PAD
                };
                self.text(tx, y, BODY_SIZE, style, line);
                y -= BODY_LEADING;
            }
        }
        let mut bottom = top - self.row_cells_height(row, specs, columns);
        if !row.note.is_empty() {
            let mut y = bottom - NOTE_SIZE + 1.0;
            let width = TEXT_WIDTH - 4.0 * CELL_PAD;
            for line in self.wrap(&clean(&row.note), Style::Regular, NOTE_SIZE, width) {
                self.text(MARGIN_PT + 2.0 * CELL_PAD, y, NOTE_SIZE, Style::Regular, line);
                y -= NOTE_LEADING;
            }
            bottom -= self.note_height(row);
        }
        self.ops().push(Op::Line {
            x1: MARGIN_PT,
            y1: bottom,
            x2: RIGHT,
            y2: bottom,
            width: 0.4,
            gray: 0.75,
        });
        self.y = bottom;
    }

    fn row_cells_height(&self, row: &Row, specs: &[Column], columns: &[(f32, f32)]) -> f32 {
        let lines = columns
            .iter()
            .enumerate()
            .map(|(i, &(_, w))| {
                let style = if specs[i].bold { Style::Bold } else { Style::Regular };
                let text = row.cells.get(i).map(String::as_str).unwrap_or("");
                self.wrap(&clean(text), style, BODY_SIZE, w - 2.0 * CELL_PAD).len()
            })
            .max()
            .unwrap_or(0)
            .max(1);
        lines as f32 * BODY_LEADING + 2.0 * CELL_PAD - 2.0
    }

    fn note_height(&self, row: &Row) -> f32 {
        if row.note.is_empty() {
            return 0.0;
        }
        let width = TEXT_WIDTH - 4.0 * CELL_PAD;
        let lines = self.wrap(&clean(&row.note), Style::Regular, NOTE_SIZE, width);
        lines.len() as f32 * NOTE_LEADING + CELL_PAD
    }

    fn measure_row(&self, row: &Row, specs: &[Column], columns: &[(f32, f32)]) -> f32 {
        self.row_cells_height(row, specs, columns) + self.note_height(row)
    }
}

/// The x and width of each column.
fn column_boxes(columns: &[Column]) -> Vec<(f32, f32)> {
    let total: f32 = columns.iter().map(|c| c.width.max(0.0)).sum();
    let mut x = MARGIN_PT;
    columns
        .iter()
        .map(|c| {
            let w = if total > 0.0 {
                TEXT_WIDTH * c.width.max(0.0) / total
            } else {
                TEXT_WIDTH / columns.len() as f32
            };
            let b = (x, w);
            x += w;
            b
        })
        .collect()
}

/// Breaks text into lines no wider than `width`: at spaces, and inside a word too long for a
/// line. At most [`CELL_LINES_MAX`] lines; always at least one (possibly empty).
fn wrap(fonts: &Fonts, text: &str, style: Style, size: f32, width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
        if fonts.width(&candidate, style, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // The word alone: split it where it overflows (never between a letter and its accent).
        for c in word.chars() {
            line.push(c);
            if !is_mark(c) && line.chars().count() > 1 && fonts.width(&line, style, size) > width {
                line.pop();
                lines.push(std::mem::take(&mut line));
                line.push(c);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    if lines.len() > CELL_LINES_MAX {
        lines.truncate(CELL_LINES_MAX);
        let last = lines.last_mut().expect("truncated to a positive length");
        *last = fit(fonts, &format!("{last} ..."), style, size, width);
    }
    lines
}

/// Breaks a header line at its item gaps first ([`HEADER_GAP`]), so "DOB 14-Jul-1945" or
/// "MRN 123456" stays whole on a line; an item too long for a line (a long name) wraps alone.
fn header_wrap(fonts: &Fonts, text: &str, style: Style, size: f32, width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for item in text.split(HEADER_GAP).map(str::trim).filter(|i| !i.is_empty()) {
        let candidate =
            if line.is_empty() { item.to_owned() } else { format!("{line}{HEADER_GAP}{item}") };
        if fonts.width(&candidate, style, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut parts = wrap(fonts, item, style, size, width);
        line = parts.pop().unwrap_or_default();
        lines.extend(parts);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Cuts text to `width`, ending with "..." when it was cut.
fn fit(fonts: &Fonts, text: &str, style: Style, size: f32, width: f32) -> String {
    if fonts.width(text, style, size) <= width {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    while !out.is_empty() && fonts.width(&format!("{out}..."), style, size) > width {
        out.pop();
    }
    out.push_str("...");
    out
}

// ---------------------------------------------------------------------------------------------
// The file: krilla draws the pages (y down from the top) and embeds the font subsets.

fn write_document(
    report: &Report,
    pages: &[Vec<Op>],
    fonts: &Fonts,
    outlined: bool,
) -> Result<Vec<u8>, krilla::error::KrillaError> {
    let mut document = Document::new();
    let mut metadata = Metadata::new().creator("Cuvette".to_owned()).producer("Cuvette".to_owned());
    let title = clean(&report.title);
    if !title.is_empty() {
        metadata = metadata.title(title);
    }
    document.set_metadata(metadata);
    for ops in pages {
        let settings = PageSettings::from_wh(PAGE_WIDTH_PT, PAGE_HEIGHT_PT).unwrap_or_default();
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for op in ops {
            draw(&mut surface, fonts, op, outlined);
        }
        surface.finish();
        page.finish();
    }
    document.finish()
}

fn gray(level: f32) -> luma::Color {
    luma::Color::new((level.clamp(0.0, 1.0) * 255.0).round() as u8)
}

fn draw(surface: &mut Surface<'_>, fonts: &Fonts, op: &Op, outlined: bool) {
    let flip = |y: f32| PAGE_HEIGHT_PT - y;
    match op {
        Op::Text { x, y, size, style, text } => {
            surface.set_fill(Some(Fill::default()));
            surface.set_stroke(None);
            let mut x = *x;
            for (face, run) in fonts.runs(text, *style) {
                let at = Point::from_xy(x, flip(*y));
                surface.draw_text(at, face.pdf.clone(), *size, &run, outlined, TextDirection::Auto);
                x += face.width(&run, *size);
            }
        }
        Op::Line { x1, y1, x2, y2, width, gray: level } => {
            let mut path = PathBuilder::new();
            path.move_to(*x1, flip(*y1));
            path.line_to(*x2, flip(*y2));
            if let Some(path) = path.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: gray(*level).into(),
                    width: *width,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
                surface.set_stroke(None);
            }
        }
        Op::Fill { x, y, w, h, gray: level } => {
            let mut path = PathBuilder::new();
            if let Some(rect) = Rect::from_xywh(*x, flip(*y + *h), *w, *h) {
                path.push_rect(rect);
            }
            if let Some(path) = path.finish() {
                surface.set_stroke(None);
                surface.set_fill(Some(Fill { paint: gray(*level).into(), ..Fill::default() }));
                surface.draw_path(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names as the lab registers them, in the scripts DejaVu Sans covers.
    const NAMES: [&str; 4] =
        ["ŻÓŁĆ, Łukasz", "NGUYỄN, Thị Minh Khai", "ΑΛΕΞΊΟΥ, Ψυχή", "ИВАНОВ, Дмитрий"];

    fn report_for(name: &str, rows: usize) -> Report {
        Report {
            title: "Cumulative report".into(),
            header_lines: vec![
                "Cuvette demo laboratory".into(),
                format!("{name}   DOB 14-Jul-1945 (81y)   Sex Female   MRN 123456"),
            ],
            footer: "Printed 24-Nov-2026 08:05".into(),
            sections: vec![Section {
                heading: "Collected 24-Nov-2026 08:05 · Accession 26-0000012-3".into(),
                columns: vec![
                    Column::new("Test", 30.0),
                    Column::new("Result", 12.0).right(),
                    Column::new("Flag", 8.0).bold(),
                    Column::new("Reference", 14.0),
                ],
                rows: (0..rows)
                    .map(|i| {
                        let cells = vec![
                            format!("Analyte number {i:04}"),
                            "4.2".into(),
                            "H".into(),
                            "3.5–5.1".into(),
                        ];
                        Row { cells, note: String::new() }
                    })
                    .collect(),
            }],
        }
    }

    fn report(rows: usize) -> Report {
        report_for("OKAFOR, Ada", rows)
    }

    fn texts(page: &[Op]) -> Vec<&str> {
        page.iter()
            .filter_map(|op| match op {
                Op::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn count(page: &[Op], text: &str) -> usize {
        texts(page).iter().filter(|t| **t == text).count()
    }

    /// The page's text with all whitespace removed, to find a name a line break cut.
    fn squeezed(page: &[Op]) -> String {
        texts(page).concat().chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// `pdftotext -layout` of a PDF, one string per page; None (with a note) when poppler is
    /// not installed, unless CUVETTE_REQUIRE_PDFTOTEXT=1 says the check must run.
    fn pdftotext(pdf: &[u8]) -> Option<Vec<String>> {
        let dir = std::env::temp_dir().join(format!("cuvette-pdf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!(
            "{:016x}.pdf",
            pdf.len() as u64 ^ pdf.iter().map(|&b| u64::from(b)).sum::<u64>()
        ));
        std::fs::write(&file, pdf).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8"])
            .arg(&file)
            .arg("-")
            .output();
        let _ = std::fs::remove_file(&file);
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "pdftotext: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8(out.stdout).unwrap();
                Some(
                    text.split('\u{c}')
                        .filter(|p| !p.trim().is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            Err(e) => {
                assert!(
                    std::env::var("CUVETTE_REQUIRE_PDFTOTEXT").as_deref() != Ok("1"),
                    "pdftotext is required (CUVETTE_REQUIRE_PDFTOTEXT=1) but cannot run: {e}; install poppler-utils"
                );
                eprintln!(
                    "skipped: pdftotext cannot run ({e}); install poppler-utils to check the printed text"
                );
                None
            }
        }
    }

    fn no_space(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn the_embedded_fonts_print_latin_greek_cyrillic_and_vietnamese_names() {
        let fonts = fonts();
        for name in NAMES {
            for c in name.chars() {
                assert!(fonts.regular.has(c), "DejaVu Sans has {c:?}");
                assert!(fonts.bold.has(c), "DejaVu Sans Bold has {c:?}");
            }
            assert_eq!(fonts.unprintable(name).count(), 0);
            assert!(fonts.width(name, Style::Regular, 9.0) > 0.0);
        }
        // The bold face is wider than the regular one: the measure follows the face.
        let plain = fonts.width("Haemoglobin", Style::Regular, 9.0);
        assert!(fonts.width("Haemoglobin", Style::Bold, 9.0) > plain);
        assert!((fonts.width("Haemoglobin", Style::Regular, 18.0) - 2.0 * plain).abs() < 0.01);
    }

    #[test]
    fn a_character_no_font_has_prints_as_a_visible_replacement() {
        let fonts = fonts();
        // A private-use character of plane 16: no font assigns it.
        let runs = fonts.runs("Ada \u{10FFFD} Okafor", Style::Regular);
        let text: String = runs.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(text, "Ada \u{FFFD} Okafor");
        assert_eq!(fonts.unprintable("Ada \u{10FFFD}").collect::<Vec<_>>(), vec!['\u{10FFFD}']);
        // A decomposed accent stays with its letter, in the letter's run.
        let runs = fonts.runs("Nguye\u{302}\u{303}n", Style::Regular);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1, "Nguye\u{302}\u{303}n");
    }

    #[test]
    fn cjk_prints_in_the_fallback_font_when_the_server_has_one() {
        let name = "王秀英";
        if !fallback_font_available() {
            assert!(
                std::env::var("CUVETTE_REQUIRE_CJK_FONT").as_deref() != Ok("1"),
                "a CJK fallback font is required (CUVETTE_REQUIRE_CJK_FONT=1) but none was found: install fonts-droid-fallback"
            );
            eprintln!(
                "skipped: no CJK fallback font on this machine (install fonts-droid-fallback)"
            );
            return;
        }
        let fonts = fonts();
        let runs = fonts.runs(&format!("WANG, {name}"), Style::Bold);
        assert_eq!(runs.len(), 2, "DejaVu for the Latin, the fallback for the CJK");
        assert!(std::ptr::eq(runs[0].0, &fonts.bold));
        assert!(std::ptr::eq(runs[1].0, fonts.fallback.as_ref().unwrap()));
        assert_eq!(runs[1].1, name);
        assert_eq!(fonts.unprintable(name).count(), 0);
        let pdf = render(&report_for(&format!("WANG, {name}"), 3));
        if let Some(pages) = pdftotext(&pdf) {
            assert!(pages[0].contains(&format!("WANG, {name}")), "{}", pages[0]);
        }
    }

    #[test]
    fn a_pdf_embeds_its_font_subsets_and_carries_its_title() {
        let pdf = render(&report(3));
        let find = |needle: &[u8]| pdf.windows(needle.len()).any(|w| w == needle);
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        assert!(find(b"/FontFile2"), "the TrueType font program is in the file");
        assert!(find(b"+DejaVuSans"), "as a subset");
        assert!(find(b"/ToUnicode"), "so the text can be copied and searched");
        if let Some(pages) = pdftotext(&pdf) {
            assert_eq!(pages.len(), 1);
            for text in [
                "Cuvette demo laboratory",
                "Cumulative report",
                "Analyte number 0002",
                "3.5–5.1",
                "Page 1 of 1",
            ] {
                assert!(pages[0].contains(text), "{text} in {}", pages[0]);
            }
        }
    }

    #[test]
    fn a_long_report_breaks_into_numbered_pages_and_loses_no_row() {
        let rows = 300;
        let r = report(rows);
        let pages = layout(&r, fonts());
        let n = pages.len();
        assert!(n > 3, "300 rows take several pages, got {n}");
        for (i, page) in pages.iter().enumerate() {
            // The running header, the column titles and the page number are on every page.
            assert_eq!(count(page, "Cuvette demo laboratory"), 1);
            assert_eq!(
                count(page, "OKAFOR, Ada   DOB 14-Jul-1945 (81y)   Sex Female   MRN 123456"),
                1
            );
            assert_eq!(count(page, "Test"), 1);
            assert_eq!(count(page, &format!("Page {} of {n}", i + 1)), 1);
        }
        let continued =
            pages.iter().flat_map(|p| texts(p)).filter(|t| t.ends_with(" (continued)")).count();
        assert_eq!(continued, n - 1);
        for i in 0..rows {
            let row = format!("Analyte number {i:04}");
            assert_eq!(pages.iter().map(|p| count(p, &row)).sum::<usize>(), 1, "{row}");
        }
        // A page holds about (842 − 2×42.5 − header) / 14 rows.
        let per_page = rows.div_ceil(n);
        assert!((40..=60).contains(&per_page), "{per_page} rows per page");
    }

    #[test]
    fn a_long_report_prints_the_patients_identifiers_on_every_page() {
        let pdf = render(&report_for(NAMES[1], 120));
        let Some(pages) = pdftotext(&pdf) else { return };
        assert!(pages.len() >= 2, "120 rows take more than a page");
        let n = pages.len();
        for (i, page) in pages.iter().enumerate() {
            let number = format!("Page {} of {n}", i + 1);
            for text in
                [NAMES[1], "DOB 14-Jul-1945", "Sex Female", "MRN 123456", "Test", number.as_str()]
            {
                assert!(page.contains(text), "page {}: {text} in {page}", i + 1);
            }
        }
    }

    #[test]
    fn a_long_or_unbroken_name_wraps_and_every_identifier_stays_on_the_page() {
        let spaced = format!(
            "{}, {}",
            "Vanderbilt-Ashworth".repeat(2),
            "Maximiliana Konstantina ".repeat(2).trim_end()
        );
        let spaced_200: String =
            "Wolfeschlegelsteinhausen Bergerdorff ".repeat(6).chars().take(200).collect();
        let unbroken_60 = "Ж".repeat(60);
        let unbroken_200 = "W".repeat(200);
        for name in
            [spaced.as_str(), spaced_200.trim_end(), unbroken_60.as_str(), unbroken_200.as_str()]
        {
            let pages = layout(&report_for(name, 80), fonts());
            assert!(pages.len() > 1);
            for page in &pages {
                // Nothing is cut: the whole name and every identifier are drawn…
                let all = squeezed(page);
                for text in [name, "DOB14-Jul-1945(81y)", "SexFemale", "MRN123456"] {
                    assert!(
                        all.contains(&no_space(text)),
                        "{text} on the page ({} chars)",
                        name.chars().count()
                    );
                }
                assert!(!texts(page).iter().any(|t| t.ends_with("...")), "nothing is cut short");
                // …and inside the margins.
                for op in page {
                    if let Op::Text { x, size, style, text, .. } = op {
                        let end = x + fonts().width(text, *style, *size);
                        assert!(
                            *x >= MARGIN_PT - 0.01 && end <= RIGHT + 0.01,
                            "{text:?} ends at {end}"
                        );
                    }
                }
            }
        }
        // The items stay whole: a wrapped header breaks between them, not inside "MRN 123456".
        let lines = header_wrap(
            fonts(),
            &format!("{spaced}   DOB 14-Jul-1945 (81y)   Sex Female   MRN 123456"),
            Style::Regular,
            BODY_SIZE,
            TEXT_WIDTH,
        );
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("MRN 123456")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("DOB 14-Jul-1945 (81y)")), "{lines:?}");
    }

    #[test]
    fn one_short_report_is_one_page() {
        let pages = layout(&Report { title: "x".into(), ..Report::default() }, fonts());
        assert_eq!(pages.len(), 1);
        assert_eq!(count(&pages[0], "Page 1 of 1"), 1);
        let pdf = render(&Report { title: "x".into(), ..Report::default() });
        assert!(pdf.starts_with(b"%PDF-"));
    }

    #[test]
    fn text_is_printed_as_given_with_control_characters_made_spaces() {
        assert_eq!(clean("a\tb\u{7}c\r\nd"), "a bc  d");
        let mut r = report(0);
        r.sections[0].rows.push(Row {
            cells: vec![
                "Na (serum) \\ x".into(),
                String::new(),
                String::new(),
                "≥60 µmol/L".into(),
            ],
            note: "Corrected from 4.2 (hemolysed)".into(),
        });
        let pages = layout(&r, fonts());
        assert_eq!(count(&pages[0], "Na (serum) \\ x"), 1);
        assert_eq!(count(&pages[0], "≥60 µmol/L"), 1);
        assert_eq!(count(&pages[0], "Corrected from 4.2 (hemolysed)"), 1);
        if let Some(text) = pdftotext(&render(&r)) {
            assert!(text[0].contains("≥60 µmol/L"), "{}", text[0]);
            assert!(text[0].contains("Na (serum) \\ x"), "{}", text[0]);
        }
    }

    #[test]
    fn long_cells_wrap_and_overlong_words_are_split() {
        let fonts = fonts();
        let lines = wrap(fonts, &"word ".repeat(40), Style::Regular, 9.0, 100.0);
        assert!(lines.len() > 5);
        for l in &lines {
            assert!(fonts.width(l, Style::Regular, 9.0) <= 100.0);
        }
        let lines = wrap(fonts, &"W".repeat(200), Style::Bold, 9.0, 50.0);
        assert!(lines.len() > 1 && lines.len() <= CELL_LINES_MAX);
        assert!(lines.last().unwrap().ends_with("..."));
        assert_eq!(wrap(fonts, "", Style::Regular, 9.0, 50.0), vec![String::new()]);
        // A word of Cyrillic splits between letters, never inside one.
        let lines = wrap(fonts, &"Щ".repeat(40), Style::Regular, 9.0, 60.0);
        assert!(lines.len() > 2);
        assert_eq!(lines.concat(), "Щ".repeat(40));
    }
}
