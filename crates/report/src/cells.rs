//! Published CSV: every cell of every report goes through [`CsvOut`], so that none
//! can start a spreadsheet formula.
//!
//! A miner opens `rejected_rows.csv` in a spreadsheet, and its `raw` column holds
//! whatever text an attacker put in a log line. Spreadsheets run a cell that starts
//! with `=`, `+`, `-` or `@` as a formula, and some skip a leading TAB or CR before
//! looking. Such a cell is published with a `'` before it, which spreadsheets show as
//! text; so is a cell that starts with `'`, so that [`unescape_cell`] gives back
//! exactly what was written. A plain number (`-12.5`, `+3`) is left alone: no
//! spreadsheet runs it, and changes in `tally diff` are signed numbers.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula (OWASP's list), and
/// the quote that marks an escaped cell.
const TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// The cell as published: `'` before one that a spreadsheet could run.
pub fn escape_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(TRIGGERS) && !is_plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cell as it was before [`escape_cell`].
pub fn unescape_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// A CSV file being built in memory: LF line ends, RFC 4180 quoting, every cell
/// escaped.
pub struct CsvOut {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvOut {
    pub fn new<I, S>(header: I) -> CsvOut
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = CsvOut {
            writer: csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new()),
        };
        out.row(header);
        out
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| escape_cell(c.as_ref()).into_owned())
            .collect();
        // Writing into a Vec cannot fail.
        self.writer.write_record(&cells).expect("in-memory write");
    }

    pub fn finish(self) -> Vec<u8> {
        self.writer.into_inner().expect("in-memory write")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_numbers_kept() {
        for (cell, published) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("'quoted", "''quoted"),
            ("-", "'-"),
            ("-.5", "'-.5"),
            ("-12.5", "-12.5"),
            ("+3", "+3"),
            ("0.000001", "0.000001"),
            ("acct-a", "acct-a"),
            ("", ""),
        ] {
            assert_eq!(escape_cell(cell), published, "{cell:?}");
            assert_eq!(unescape_cell(&escape_cell(cell)), cell, "{cell:?}");
        }
    }

    #[test]
    fn no_published_cell_starts_a_formula() {
        let mut out = CsvOut::new(["a", "b"]);
        out.row(["=1+1", "-5"]);
        out.row(["x", "@y"]);
        let text = String::from_utf8(out.finish()).unwrap();
        assert_eq!(text, "a,b\n'=1+1,-5\nx,'@y\n");
    }
}
