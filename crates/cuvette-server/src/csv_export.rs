//! CSV exports: RFC 4180 through the `csv` crate, opened by a spreadsheet as data, never as
//! formulas.
//!
//! A text field that starts with `=`, `+`, `-`, `@`, a tab or a carriage return runs as a
//! formula in Excel, LibreOffice and Google Sheets (CSV injection: a patient registered as
//! `=HYPERLINK(...)` would become a live link in the auditor's spreadsheet). Every text field
//! gets a single quote in front of such a start. Numbers and times the server formats itself
//! go out as they are, so a negative result stays a number.

use std::borrow::Cow;

/// One field of a row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    /// Text that came from a person or another system: guarded against formulas.
    Text(&'a str),
    /// A number or time the server formatted: written as it is.
    Value(&'a str),
}

/// A CSV document being written: a header row, then rows, lines ending in CRLF.
pub(crate) struct Csv {
    writer: csv::Writer<Vec<u8>>,
}

impl Csv {
    /// A document with this header row.
    pub(crate) fn new(header: &[&str]) -> Csv {
        let writer =
            csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        let mut csv = Csv { writer };
        csv.write(header.iter().copied());
        csv
    }

    /// Adds a row; it must have the header's number of fields.
    pub(crate) fn row(&mut self, fields: &[Field<'_>]) {
        let cells: Vec<Cow<'_, str>> = fields
            .iter()
            .map(|f| match *f {
                Field::Text(s) => neutralise(s),
                Field::Value(s) => Cow::Borrowed(s),
            })
            .collect();
        self.write(cells.iter().map(|c| c.as_ref()));
    }

    fn write<'a>(&mut self, fields: impl Iterator<Item = &'a str>) {
        // Writing to memory cannot fail; a row whose length differs from the header's is a bug
        // in the export, logged rather than sent as a broken file.
        if let Err(e) = self.writer.write_record(fields) {
            tracing::error!(error = %e, "a CSV export row could not be written");
        }
    }

    /// The document.
    pub(crate) fn finish(self) -> String {
        // Flushing into memory cannot fail either; should it, what was written is kept.
        let bytes = match self.writer.into_inner() {
            Ok(bytes) => bytes,
            Err(e) => e.into_inner().get_ref().clone(),
        };
        // Every field was a `str`, so the bytes are UTF-8.
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// A text field a spreadsheet will not run: a leading `=`, `+`, `-`, `@`, tab or carriage return
/// gets a single quote in front (the OWASP advice for CSV injection).
pub(crate) fn neutralise(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(field: Field<'_>) -> String {
        let mut csv = Csv::new(&["x", "y"]);
        csv.row(&[field, Field::Value("1")]);
        let out = csv.finish();
        let line = out.strip_prefix("x,y\r\n").expect("the header first");
        line.strip_suffix(",1\r\n").expect("one row, CRLF").to_owned()
    }

    #[test]
    fn fields_are_quoted_when_they_must_be() {
        assert_eq!(one(Field::Text("plain")), "plain");
        assert_eq!(one(Field::Text("a,b")), "\"a,b\"");
        assert_eq!(one(Field::Text("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(one(Field::Text("two\nlines")), "\"two\nlines\"");
        assert_eq!(one(Field::Text("Nguyễn Thị Minh Khai")), "Nguyễn Thị Minh Khai");
    }

    #[test]
    fn text_that_a_spreadsheet_would_run_as_a_formula_is_neutralised() {
        assert_eq!(one(Field::Text("=HYPERLINK(\"x\")")), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(
            one(Field::Text("=HYPERLINK(\"http://x\",\"y\")")),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(one(Field::Text("+1")), "'+1");
        assert_eq!(one(Field::Text("-2")), "'-2");
        assert_eq!(one(Field::Text("@SUM(A1)")), "'@SUM(A1)");
        assert_eq!(one(Field::Text("\tcmd")), "'\tcmd");
        assert_eq!(one(Field::Text("1-2s R-4s")), "1-2s R-4s");
        assert_eq!(one(Field::Text("lot 4471")), "lot 4471");
        // A number the server wrote stays a number.
        assert_eq!(one(Field::Value("-1.5")), "-1.5");
    }

    #[test]
    fn a_spreadsheet_reading_the_file_gets_the_text_back_behind_its_quote() {
        let mut csv = Csv::new(&["name", "value"]);
        csv.row(&[Field::Text("=HYPERLINK(\"http://x\",\"y\")"), Field::Value("-3")]);
        let out = csv.finish();
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(&rows[0][1], "-3");
    }
}
