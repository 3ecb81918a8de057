//! PDF reports: a small hand-written PDF 1.4 writer, so the server needs no PDF crate.
//!
//! What it does: the base-14 fonts Helvetica and Helvetica-Bold in WinAnsiEncoding (nothing is
//! embedded, every viewer has them), A4 portrait pages, sections of tabular rows whose cells
//! wrap within their column, automatic page breaks (a row is never split; the section heading
//! and column titles repeat on the next page), a running header on every page (the lab and
//! the patient's identifiers: ISO 15189 §7.4.1.6 wants them on each page of a report) and a
//! footer with "Page X of Y". What it does not do: images, compression, fonts beyond
//! WinAnsi (other characters are written as ASCII look-alikes) or any reading of PDF.

use std::fmt::Write as _;

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

/// Renders the report as a PDF 1.4 file.
pub fn render(report: &Report) -> Vec<u8> {
    let pages = layout(report);
    write_document(report, &pages)
}

// ---------------------------------------------------------------------------------------------
// Layout: sections → pages of drawing operations.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

#[derive(Debug, Clone)]
enum Op {
    Text { x: f32, y: f32, size: f32, font: Font, text: Vec<u8> },
    Line { x1: f32, y1: f32, x2: f32, y2: f32, width: f32, gray: f32 },
    Fill { x: f32, y: f32, w: f32, h: f32, gray: f32 },
}

const TEXT_WIDTH: f32 = PAGE_WIDTH_PT - 2.0 * MARGIN_PT;
const BODY_BOTTOM: f32 = MARGIN_PT + 8.0;

struct Layout<'a> {
    report: &'a Report,
    pages: Vec<Vec<Op>>,
    /// The baseline area's current top: the next thing is drawn below it.
    y: f32,
    body_top: f32,
    truncated: bool,
}

fn layout(report: &Report) -> Vec<Vec<Op>> {
    let mut l = Layout { report, pages: Vec::new(), y: 0.0, body_top: 0.0, truncated: false };
    l.new_page();
    for section in &report.sections {
        if l.truncated {
            break;
        }
        l.section(section);
    }
    l.pages
}

impl Layout<'_> {
    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("layout starts with a page")
    }

    fn text(&mut self, x: f32, y: f32, size: f32, font: Font, text: Vec<u8>) {
        self.ops().push(Op::Text { x, y, size, font, text });
    }

    /// Starts a page with the running header; false when the page limit is reached.
    fn new_page(&mut self) -> bool {
        if self.pages.len() >= PAGES_MAX {
            if !self.truncated {
                self.truncated = true;
                let y = (self.y - BODY_LEADING).max(BODY_BOTTOM);
                let note = winansi(
                    "The report is longer than this document allows; the remaining results are not printed.",
                );
                self.text(MARGIN_PT, y, BODY_SIZE, Font::Bold, note);
            }
            return false;
        }
        self.pages.push(Vec::new());
        let mut y = PAGE_HEIGHT_PT - MARGIN_PT;
        let title = winansi(&self.report.title);
        let title_width = text_width(&title, Font::Bold, 10.0);
        let mut lines = self.report.header_lines.iter();
        let first = lines.next().map(|s| winansi(s)).unwrap_or_default();
        y -= 12.0;
        let fits = text_width(&first, Font::Bold, 12.0) + title_width + 18.0 <= TEXT_WIDTH;
        self.text(MARGIN_PT, y, 12.0, Font::Bold, fit(&first, Font::Bold, 12.0, TEXT_WIDTH));
        if !title.is_empty() {
            if !fits {
                y -= 13.0;
            }
            self.text(PAGE_WIDTH_PT - MARGIN_PT - title_width, y, 10.0, Font::Bold, title);
        }
        for line in lines {
            y -= 12.0;
            let line = fit(&winansi(line), Font::Regular, BODY_SIZE, TEXT_WIDTH);
            self.text(MARGIN_PT, y, BODY_SIZE, Font::Regular, line);
        }
        y -= 6.0;
        let right = PAGE_WIDTH_PT - MARGIN_PT;
        self.ops().push(Op::Line { x1: MARGIN_PT, y1: y, x2: right, y2: y, width: 0.8, gray: 0.0 });
        self.body_top = y - 6.0;
        self.y = self.body_top;
        true
    }

    fn room(&self) -> f32 {
        self.y - BODY_BOTTOM
    }

    fn section(&mut self, s: &Section) {
        let columns = column_boxes(&s.columns);
        let first_row = s.rows.first().map(|r| measure_row(r, &s.columns, &columns)).unwrap_or(0.0);
        let head = self.section_head_height(s);
        // Keep the heading with the column titles and the first row.
        if self.y < self.body_top && head + first_row > self.room() && !self.new_page() {
            return;
        }
        self.section_head(s, &columns, false);
        for row in &s.rows {
            let h = measure_row(row, &s.columns, &columns);
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
            let lines = wrap(&winansi(&s.heading), Font::Bold, SECTION_SIZE, TEXT_WIDTH).len();
            lines as f32 * (SECTION_SIZE + 2.0) + 4.0
        };
        let titles = if s.columns.is_empty() { 0.0 } else { HEAD_SIZE + 7.0 };
        heading + titles
    }

    fn section_head(&mut self, s: &Section, columns: &[(f32, f32)], continued: bool) {
        if !s.heading.is_empty() {
            let heading =
                if continued { format!("{} (continued)", s.heading) } else { s.heading.clone() };
            for line in wrap(&winansi(&heading), Font::Bold, SECTION_SIZE, TEXT_WIDTH) {
                self.y -= SECTION_SIZE + 2.0;
                let y = self.y;
                self.text(MARGIN_PT, y, SECTION_SIZE, Font::Bold, line);
            }
            self.y -= 4.0;
        }
        if !s.columns.is_empty() {
            let h = HEAD_SIZE + 7.0;
            let y = self.y;
            self.ops().push(Op::Fill { x: MARGIN_PT, y: y - h, w: TEXT_WIDTH, h, gray: 0.9 });
            for (c, &(x, w)) in s.columns.iter().zip(columns) {
                let title = fit(&winansi(&c.title), Font::Bold, HEAD_SIZE, w - 2.0 * CELL_PAD);
                let tx = if c.right {
                    x + w - CELL_PAD - text_width(&title, Font::Bold, HEAD_SIZE)
                } else {
                    x + CELL_PAD
                };
                self.text(tx, y - h + 4.5, HEAD_SIZE, Font::Bold, title);
            }
            self.y -= h;
        }
    }

    fn row(&mut self, row: &Row, specs: &[Column], columns: &[(f32, f32)]) {
        let top = self.y;
        for (i, &(x, w)) in columns.iter().enumerate() {
            let spec = &specs[i];
            let font = if spec.bold { Font::Bold } else { Font::Regular };
            let text = row.cells.get(i).map(String::as_str).unwrap_or("");
            let lines = wrap(&winansi(text), font, BODY_SIZE, w - 2.0 * CELL_PAD);
            let mut y = top - CELL_PAD - BODY_SIZE + 1.0;
            for line in lines {
                let tx = if spec.right {
                    x + w - CELL_PAD - text_width(&line, font, BODY_SIZE)
                } else {
                    x + CELL_PAD
                };
                self.text(tx, y, BODY_SIZE, font, line);
                y -= BODY_LEADING;
            }
        }
        let mut bottom = top - row_cells_height(row, specs, columns);
        if !row.note.is_empty() {
            let mut y = bottom - NOTE_SIZE + 1.0;
            for line in
                wrap(&winansi(&row.note), Font::Regular, NOTE_SIZE, TEXT_WIDTH - 4.0 * CELL_PAD)
            {
                self.text(MARGIN_PT + 2.0 * CELL_PAD, y, NOTE_SIZE, Font::Regular, line);
                y -= NOTE_LEADING;
            }
            bottom -= note_height(row);
        }
        let right = PAGE_WIDTH_PT - MARGIN_PT;
        self.ops().push(Op::Line {
            x1: MARGIN_PT,
            y1: bottom,
            x2: right,
            y2: bottom,
            width: 0.4,
            gray: 0.75,
        });
        self.y = bottom;
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

fn row_cells_height(row: &Row, specs: &[Column], columns: &[(f32, f32)]) -> f32 {
    let lines = columns
        .iter()
        .enumerate()
        .map(|(i, &(_, w))| {
            let font = if specs[i].bold { Font::Bold } else { Font::Regular };
            let text = row.cells.get(i).map(String::as_str).unwrap_or("");
            wrap(&winansi(text), font, BODY_SIZE, w - 2.0 * CELL_PAD).len()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    lines as f32 * BODY_LEADING + 2.0 * CELL_PAD - 2.0
}

fn note_height(row: &Row) -> f32 {
    if row.note.is_empty() {
        return 0.0;
    }
    let lines = wrap(&winansi(&row.note), Font::Regular, NOTE_SIZE, TEXT_WIDTH - 4.0 * CELL_PAD);
    lines.len() as f32 * NOTE_LEADING + CELL_PAD
}

fn measure_row(row: &Row, specs: &[Column], columns: &[(f32, f32)]) -> f32 {
    row_cells_height(row, specs, columns) + note_height(row)
}

/// Breaks text into lines no wider than `width`: at spaces, and inside a word too long for a
/// line. At most [`CELL_LINES_MAX`] lines; always at least one (possibly empty).
fn wrap(text: &[u8], font: Font, size: f32, width: f32) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut candidate = line.clone();
        if !candidate.is_empty() {
            candidate.push(b' ');
        }
        candidate.extend_from_slice(word);
        if text_width(&candidate, font, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // The word alone: split it where it overflows.
        for &b in word {
            line.push(b);
            if text_width(&line, font, size) > width && line.len() > 1 {
                let last = line.pop().expect("more than one byte");
                lines.push(std::mem::take(&mut line));
                line.push(last);
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    if lines.len() > CELL_LINES_MAX {
        lines.truncate(CELL_LINES_MAX);
        let last = lines.last_mut().expect("truncated to a positive length");
        *last = fit(&[last.as_slice(), b" ..."].concat(), font, size, width);
    }
    lines
}

/// Cuts text to `width`, ending with "..." when it was cut.
fn fit(text: &[u8], font: Font, size: f32, width: f32) -> Vec<u8> {
    if text_width(text, font, size) <= width {
        return text.to_vec();
    }
    let mut out = text.to_vec();
    while !out.is_empty() && text_width(&[out.as_slice(), b"..."].concat(), font, size) > width {
        out.pop();
    }
    out.extend_from_slice(b"...");
    out
}

// ---------------------------------------------------------------------------------------------
// Text: WinAnsi encoding, widths, escaping.

/// Converts text to WinAnsiEncoding bytes. Latin-1 characters map to themselves; a few
/// others the bench uses have ASCII look-alikes (`–` → `-`, `≥` → `>=`, `▲` → `^`); the rest
/// become `?`. Control characters become spaces.
pub fn winansi(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            ' '..='~' => out.push(ch as u8),
            '\u{a0}'..='\u{ff}' => out.push(ch as u32 as u8),
            '\t' | '\n' | '\r' => out.push(b' '),
            c if c.is_control() => {}
            '–' | '—' | '‐' | '‑' | '−' => out.push(b'-'),
            '≥' => out.extend_from_slice(b">="),
            '≤' => out.extend_from_slice(b"<="),
            '≠' => out.extend_from_slice(b"!="),
            '▲' | '↑' => out.push(b'^'),
            '▼' | '↓' => out.push(b'v'),
            '‘' | '’' | '′' => out.push(b'\''),
            '“' | '”' | '″' => out.push(b'"'),
            '…' => out.extend_from_slice(b"..."),
            '•' => out.push(b'*'),
            '→' => out.extend_from_slice(b"->"),
            '✓' | '✔' => out.push(b'v'),
            '⊘' => out.extend_from_slice(b"(x)"),
            'Δ' => out.extend_from_slice(b"delta "),
            '€' => out.extend_from_slice(b"EUR"),
            _ => out.push(b'?'),
        }
    }
    out
}

/// Writes WinAnsi bytes as the inside of a PDF literal string: `(`, `)` and `\` escaped,
/// anything outside printable ASCII as an octal escape, so content streams stay ASCII.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// Helvetica advance widths for ASCII 32–126, in 1/1000 em (Adobe's AFM files).
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

/// Helvetica-Bold advance widths for ASCII 32–126.
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0..?
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // P.._
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // `..o
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, // p..~
];

fn text_width(text: &[u8], font: Font, size: f32) -> f32 {
    let table = match font {
        Font::Regular => &HELVETICA,
        Font::Bold => &HELVETICA_BOLD,
    };
    let units: u32 = text
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => u32::from(table[usize::from(b - 0x20)]),
            // Latin-1 letters: about the width of a lowercase letter of the font.
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The file: objects, content streams, cross-reference table.

/// Object numbers of the fixed objects; pages follow, two objects each (page, content).
const CATALOG: usize = 1;
const PAGES: usize = 2;
const FONT_REGULAR: usize = 3;
const FONT_BOLD: usize = 4;
const INFO: usize = 5;
const FIRST_PAGE: usize = 6;

fn write_document(report: &Report, pages: &[Vec<Op>]) -> Vec<u8> {
    let page_count = pages.len();
    let mut objects: Vec<Vec<u8>> = Vec::with_capacity(FIRST_PAGE - 1 + 2 * page_count);
    let kids: Vec<String> =
        (0..page_count).map(|i| format!("{} 0 R", FIRST_PAGE + 2 * i)).collect();
    objects.push(format!("<< /Type /Catalog /Pages {PAGES} 0 R >>").into_bytes());
    objects.push(
        format!("<< /Type /Pages /Kids [{}] /Count {page_count} >>", kids.join(" ")).into_bytes(),
    );
    for name in ["Helvetica", "Helvetica-Bold"] {
        objects.push(
            format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>"
            )
            .into_bytes(),
        );
    }
    objects.push(
        format!(
            "<< /Title ({}) /Producer (Cuvette) /Creator (Cuvette) >>",
            escape(&winansi(&report.title))
        )
        .into_bytes(),
    );
    for (i, ops) in pages.iter().enumerate() {
        let content_id = FIRST_PAGE + 2 * i + 1;
        objects.push(
            format!(
                "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {PAGE_WIDTH_PT} {PAGE_HEIGHT_PT}] \
                 /Resources << /Font << /F1 {FONT_REGULAR} 0 R /F2 {FONT_BOLD} 0 R >> >> /Contents {content_id} 0 R >>"
            )
            .into_bytes(),
        );
        let content = content_stream(ops, &report.footer, i + 1, page_count);
        let mut obj = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        obj.extend_from_slice(&content);
        obj.extend_from_slice(b"\nendstream");
        objects.push(obj);
    }

    // A binary comment on line 2 tells transfer tools the file is binary (PDF 1.4 §3.4.1).
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in &offsets {
        // Each entry is exactly 20 bytes: 10-digit offset, space, generation, space, n, EOL.
        let _ = writeln!(table, "{o:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root {CATALOG} 0 R /Info {INFO} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

fn content_stream(ops: &[Op], footer: &str, page: usize, pages: usize) -> Vec<u8> {
    let mut s = String::new();
    for op in ops {
        match op {
            Op::Text { x, y, size, font, text } => {
                let f = match font {
                    Font::Regular => "F1",
                    Font::Bold => "F2",
                };
                let _ =
                    writeln!(s, "BT /{f} {size:.1} Tf {x:.2} {y:.2} Td ({}) Tj ET", escape(text));
            }
            Op::Line { x1, y1, x2, y2, width, gray } => {
                let _ = writeln!(
                    s,
                    "{gray:.2} G {width:.2} w {x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S 0 G"
                );
            }
            Op::Fill { x, y, w, h, gray } => {
                let _ = writeln!(s, "{gray:.2} g {x:.2} {y:.2} {w:.2} {h:.2} re f 0 g");
            }
        }
    }
    // Footer: a rule, the footer text on the left, "Page X of Y" on the right.
    let y = MARGIN_PT - 4.0;
    let right = PAGE_WIDTH_PT - MARGIN_PT;
    let _ = writeln!(s, "0.60 G 0.50 w {MARGIN_PT:.2} {y:.2} m {right:.2} {y:.2} l S 0 G");
    let number = winansi(&format!("Page {page} of {pages}"));
    let number_x = right - text_width(&number, Font::Regular, NOTE_SIZE);
    let footer = fit(&winansi(footer), Font::Regular, NOTE_SIZE, number_x - MARGIN_PT - 12.0);
    let text_y = y - 11.0;
    let _ = writeln!(
        s,
        "BT /F1 {NOTE_SIZE:.1} Tf {MARGIN_PT:.2} {text_y:.2} Td ({}) Tj ET",
        escape(&footer)
    );
    let _ = write!(
        s,
        "BT /F1 {NOTE_SIZE:.1} Tf {number_x:.2} {text_y:.2} Td ({}) Tj ET",
        escape(&number)
    );
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: usize) -> Report {
        Report {
            title: "Cumulative report".into(),
            header_lines: vec![
                "Cuvette demo laboratory".into(),
                "OKAFOR, Ada   DOB 14-Jul-1945 (81y)   Sex Female   MRN 123456".into(),
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

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).filter(|w| *w == needle).count()
    }

    /// The page count the file declares.
    fn declared_pages(pdf: &[u8]) -> usize {
        let at = find(pdf, b"/Count ").expect("a page tree") + 7;
        let digits: Vec<u8> = pdf[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
        String::from_utf8(digits).unwrap().parse().unwrap()
    }

    #[test]
    fn a_pdf_starts_with_its_version_and_ends_with_eof() {
        let pdf = render(&report(3));
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        assert_eq!(declared_pages(&pdf), 1);
        assert!(find(&pdf, b"(Page 1 of 1)").is_some());
    }

    #[test]
    fn xref_offsets_point_at_their_objects() {
        let pdf = render(&report(120));
        let tail = String::from_utf8_lossy(&pdf[pdf.len() - 40..]).to_string();
        let startxref: usize = tail
            .split("startxref\n")
            .nth(1)
            .unwrap()
            .trim_end_matches("\n%%EOF\n")
            .parse()
            .unwrap();
        assert!(pdf[startxref..].starts_with(b"xref\n0 "));
        let table = String::from_utf8_lossy(&pdf[startxref..]).to_string();
        let mut lines = table.lines().skip(1);
        let size: usize = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        assert!(find(&pdf, format!("/Size {size} ").as_bytes()).is_some());
        let entries: Vec<&str> = lines.take(size).collect();
        assert_eq!(entries[0], "0000000000 65535 f ");
        for (n, entry) in entries.iter().enumerate().skip(1) {
            assert_eq!(entry.len(), 19, "entry {n} plus its LF is 20 bytes");
            let offset: usize = entry[..10].parse().unwrap();
            let expected = format!("{n} 0 obj\n");
            assert!(pdf[offset..].starts_with(expected.as_bytes()), "object {n} at {offset}");
        }
        // Each stream's /Length is its byte count.
        let mut at = 0;
        while let Some(i) = find(&pdf[at..], b"<< /Length ") {
            let start = at + i + 11;
            let digits: String =
                pdf[start..].iter().map(|&b| b as char).take_while(char::is_ascii_digit).collect();
            let len: usize = digits.parse().unwrap();
            let data = start + digits.len() + " >>\nstream\n".len();
            assert!(pdf[data + len..].starts_with(b"\nendstream"));
            at = data + len;
        }
    }

    #[test]
    fn a_long_report_breaks_into_numbered_pages_and_loses_no_row() {
        let rows = 300;
        let pdf = render(&report(rows));
        let pages = declared_pages(&pdf);
        assert!(pages > 3, "300 rows take several pages, got {pages}");
        // One page object and one "Page X of Y" per page.
        assert_eq!(count(&pdf, b"/Type /Page /Parent"), pages);
        for p in 1..=pages {
            let footer = format!("(Page {p} of {pages})");
            assert_eq!(count(&pdf, footer.as_bytes()), 1, "{footer}");
        }
        // The running header and the column titles are on every page.
        assert_eq!(
            count(&pdf, b"(OKAFOR, Ada   DOB 14-Jul-1945 (81y)"),
            0,
            "parentheses are escaped"
        );
        assert_eq!(count(&pdf, b"(OKAFOR, Ada   DOB 14-Jul-1945 \\(81y\\)"), pages);
        assert_eq!(count(&pdf, b"(Cuvette demo laboratory)"), pages);
        assert_eq!(count(&pdf, b"(Test)"), pages);
        assert_eq!(count(&pdf, b" \\(continued\\))"), pages - 1);
        for i in 0..rows {
            assert_eq!(count(&pdf, format!("(Analyte number {i:04})").as_bytes()), 1);
        }
        // A page holds about (842 − 2×42.5 − header) / 14 rows.
        let per_page = rows.div_ceil(pages);
        assert!((40..=60).contains(&per_page), "{per_page} rows per page");
    }

    #[test]
    fn one_short_report_is_one_page() {
        let pdf = render(&Report { title: "x".into(), ..Report::default() });
        assert_eq!(declared_pages(&pdf), 1);
        assert!(pdf.ends_with(b"%%EOF\n"));
    }

    #[test]
    fn text_is_escaped_and_written_in_winansi() {
        assert_eq!(escape(b"a(b)c\\d"), "a\\(b\\)c\\\\d");
        assert_eq!(escape(&winansi("µmol/L")), "\\265mol/L");
        assert_eq!(winansi("3.5–5.1 ≥60 ▲▲ é"), b"3.5-5.1 >=60 ^^ \xe9".to_vec());
        assert_eq!(winansi("a\tb\u{7}c"), b"a bc".to_vec());
        let mut r = report(0);
        r.sections[0].rows.push(Row {
            cells: vec!["Na (serum) \\ x".into()],
            note: "Corrected from 4.2 (hemolysed)".into(),
        });
        let pdf = render(&r);
        assert!(find(&pdf, b"(Na \\(serum\\) \\\\ x)").is_some());
        assert!(find(&pdf, b"(Corrected from 4.2 \\(hemolysed\\))").is_some());
        assert!(find(&pdf, b"(3.5-5.1)").is_none(), "no row, no reference");
    }

    #[test]
    fn long_cells_wrap_and_overlong_words_are_split() {
        let lines = wrap(&winansi(&"word ".repeat(40)), Font::Regular, 9.0, 100.0);
        assert!(lines.len() > 5);
        for l in &lines {
            assert!(text_width(l, Font::Regular, 9.0) <= 100.0);
        }
        let lines = wrap(&[b'W'; 200], Font::Bold, 9.0, 50.0);
        assert!(lines.len() > 1 && lines.len() <= CELL_LINES_MAX);
        assert!(lines.last().unwrap().ends_with(b"..."));
        assert_eq!(wrap(b"", Font::Regular, 9.0, 50.0), vec![Vec::<u8>::new()]);
    }
}
