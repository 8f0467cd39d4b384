//! Reading one table, CSV or Parquet, record by record into [`Cell`]s. The only
//! place that opens input tables.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::cells::{Cell, Row, RowError};
use crate::error::IngestError;
use tally_core::run::RejectedRow;
use tally_core::value::excerpt;

/// Longest `raw` excerpt kept for a rejected row.
const MAX_RAW_CHARS: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// File name only: reports never name a path of the machine.
    pub file: String,
    pub path: PathBuf,
    pub format: Format,
}

/// What reading a table found besides its rows.
#[derive(Debug, Clone)]
pub struct TableStats {
    pub source: Source,
    /// Data records (header and blank lines not counted).
    pub rows: u64,
    pub sha256: String,
    pub rejected: Vec<RejectedRow>,
}

/// `STEM.csv` or `STEM.parquet` in `dir`; both is an error; neither is `None`.
pub fn find(dir: &Path, stem: &str) -> Result<Option<Source>, IngestError> {
    let csv = dir.join(format!("{stem}.csv"));
    let parquet = dir.join(format!("{stem}.parquet"));
    match (csv.is_file(), parquet.is_file()) {
        (true, true) => Err(IngestError::file(
            &format!("{stem}.csv"),
            format!("both {stem}.csv and {stem}.parquet exist; give exactly one"),
        )),
        (true, false) => Ok(Some(Source {
            file: format!("{stem}.csv"),
            path: csv,
            format: Format::Csv,
        })),
        (false, true) => Ok(Some(Source {
            file: format!("{stem}.parquet"),
            path: parquet,
            format: Format::Parquet,
        })),
        (false, false) => Ok(None),
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path, file: &str) -> Result<String, IngestError> {
    let mut f = File::open(path).map_err(|e| IngestError::io(file, e))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).map_err(|e| IngestError::io(file, e))?;
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every record of `source`, mapping the `columns` named by the SPEC, and
/// hands each to `on_row`. A row `on_row` refuses is collected as rejected.
pub fn read(
    progress: Option<crate::ProgressHook>,
    source: &Source,
    columns: &[&str],
    on_row: impl FnMut(&Row) -> Result<(), RowError>,
) -> Result<TableStats, IngestError> {
    let report = |rows: u64| {
        if let Some(hook) = progress {
            hook(crate::Progress::Rows {
                file: &source.file,
                rows,
            });
        }
    };
    let stats = match source.format {
        Format::Csv => read_csv(source, columns, on_row, &report),
        Format::Parquet => read_parquet(source, columns, on_row, &report),
    }?;
    report(stats.rows);
    Ok(stats)
}

fn reason(columns: &[&str], e: &RowError) -> String {
    format!("{}: {}", columns[e.column], e.message)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// How often a reader reports how many rows it has read.
const PROGRESS_EVERY: u64 = 1 << 20;

fn read_csv(
    source: &Source,
    columns: &[&str],
    mut on_row: impl FnMut(&Row) -> Result<(), RowError>,
    report: &dyn Fn(u64),
) -> Result<TableStats, IngestError> {
    let file = &source.file;
    let f = File::open(&source.path).map_err(|e| IngestError::io(file, e))?;
    let hashing = Hashing {
        inner: io::BufReader::with_capacity(1 << 20, f),
        hash: Sha256::new(),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(hashing);
    let csv_err = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Io(_) => IngestError::file(file, format!("cannot read: {e}")),
        _ => IngestError::file(file, format!("malformed CSV: {e}")),
    };

    let mut record = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
        return Err(IngestError::file(
            file,
            "empty file: expected a header row naming the columns",
        ));
    }
    let header_line = record.position().map_or(1, |p| p.line());
    let mut names = Vec::with_capacity(record.len());
    for field in record.iter() {
        let name = std::str::from_utf8(field).map_err(|_| IngestError::Line {
            file: file.clone(),
            line: header_line,
            message: "header is not UTF-8".into(),
        })?;
        // SPEC 2.2: a repeated required name is an error; a repeated extra one is ignored.
        if columns.contains(&name) && names.iter().any(|n| n == name) {
            return Err(IngestError::Line {
                file: file.clone(),
                line: header_line,
                message: format!(
                    "column {:?} is named twice in the header",
                    excerpt(name, 64)
                ),
            });
        }
        names.push(name.to_string());
    }
    let positions = map_columns(file, header_line, &names, columns)?;
    let width = names.len();

    let mut rows = 0u64;
    let mut rejected_at: Vec<(u64, u64, String)> = Vec::new();
    loop {
        let start = rdr.position().byte();
        if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
            break;
        }
        rows += 1;
        if rows % PROGRESS_EVERY == 0 {
            report(rows);
        }
        let line = record.position().map_or(0, |p| p.line());
        let record_start = record.position().map_or(start, |p| p.byte());
        if record.len() != width {
            rejected_at.push((
                line,
                record_start,
                format!(
                    "expected {width} fields as in the header, found {}",
                    record.len()
                ),
            ));
            continue;
        }
        let cells: Vec<Cell> = positions
            .iter()
            .map(|&p| match std::str::from_utf8(&record[p]) {
                Ok(s) => Cell::Text(s),
                Err(_) => Cell::NotUtf8,
            })
            .collect();
        if let Err(e) = on_row(&Row { cells: &cells }) {
            rejected_at.push((line, record_start, reason(columns, &e)));
        }
    }
    let sha256 = hex(&rdr.into_inner().hash.finalize());

    // Raw text of the rejected records, read back from their byte offsets.
    let mut rejected = Vec::with_capacity(rejected_at.len());
    if !rejected_at.is_empty() {
        let mut f = File::open(&source.path).map_err(|e| IngestError::io(file, e))?;
        for (line, offset, reason) in rejected_at {
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| IngestError::io(file, e))?;
            let mut buf = Vec::new();
            (&mut f)
                .take(4 * MAX_RAW_CHARS as u64 + 1024)
                .read_to_end(&mut buf)
                .map_err(|e| IngestError::io(file, e))?;
            let (skipped_lines, raw) = raw_record(&buf);
            rejected.push(RejectedRow {
                file: file.clone(),
                line: line + skipped_lines,
                reason,
                raw,
            });
        }
    }
    Ok(TableStats {
        source: source.clone(),
        rows,
        sha256,
        rejected,
    })
}

/// The csv crate positions a record before the line ends and blank lines it skips
/// on the way to it (the `\n` of a CRLF, empty lines). From such a position: how
/// many lines to skip to where the record really starts, and the record's text up to
/// its line end outside quotes, lossily decoded, escaped and bounded.
fn raw_record(bytes: &[u8]) -> (u64, String) {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let skipped = bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64;
    let bytes = &bytes[start..];
    let mut quoted = false;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    (
        skipped,
        excerpt(&String::from_utf8_lossy(&bytes[..end]), MAX_RAW_CHARS),
    )
}

/// Positions of the SPEC's columns among the file's; a missing one is an error.
fn map_columns(
    file: &str,
    line: u64,
    names: &[String],
    columns: &[&str],
) -> Result<Vec<usize>, IngestError> {
    columns
        .iter()
        .map(|c| {
            names.iter().position(|n| n == c).ok_or_else(|| IngestError::Line {
                file: file.to_string(),
                line,
                message: format!(
                    "missing column {c:?}; the header must name {} (order free, names exact and case-sensitive)",
                    columns.join(", ")
                ),
            })
        })
        .collect()
}

/// A Parquet column converted once to what [`Cell`]s are read from.
enum Col {
    Str(StringChunked),
    Int(Int128Chunked),
    /// Physical values and how many of them make a second.
    Time(Int64Chunked, i64),
    Dec(Int128Chunked, u32),
}

impl Col {
    fn cell(&self, i: usize) -> Cell<'_> {
        let opt = match self {
            Col::Str(c) => c.get(i).map(Cell::Text),
            Col::Int(c) => c.get(i).map(Cell::Int),
            Col::Time(c, per_second) => c.get(i).map(|v| Cell::Time(v.div_euclid(*per_second))),
            Col::Dec(c, scale) => c.get(i).map(|v| Cell::Dec(v, *scale)),
        };
        opt.unwrap_or(Cell::Null)
    }
}

fn read_parquet(
    source: &Source,
    columns: &[&str],
    mut on_row: impl FnMut(&Row) -> Result<(), RowError>,
    report: &dyn Fn(u64),
) -> Result<TableStats, IngestError> {
    let file = &source.file;
    let sha256 = sha256_file(&source.path, file)?;
    let f = File::open(&source.path).map_err(|e| IngestError::io(file, e))?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(|e| IngestError::file(file, format!("not a readable Parquet file: {e}")))?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    map_columns(file, 1, &names, columns)?;
    let cols: Vec<Col> = columns
        .iter()
        .map(|&name| {
            let s = df.column(name).expect("mapped").as_materialized_series().rechunk();
            let wrong = |what: String| {
                IngestError::file(
                    file,
                    format!(
                        "column {name:?} has Parquet type {what}; expected a string, an integer, a timestamp, \
                         or a DECIMAL with scale at most 9 (floating point is refused: it cannot be exact)"
                    ),
                )
            };
            let pe = |e: PolarsError| IngestError::file(file, format!("column {name:?}: {e}"));
            Ok(match s.dtype() {
                DataType::String => Col::Str(s.str().map_err(pe)?.clone()),
                dt if dt.is_integer() => Col::Int(s.cast(&DataType::Int128).map_err(pe)?.i128().map_err(pe)?.clone()),
                DataType::Datetime(unit, _) => {
                    let per_second = match unit {
                        TimeUnit::Nanoseconds => 1_000_000_000,
                        TimeUnit::Microseconds => 1_000_000,
                        TimeUnit::Milliseconds => 1_000,
                    };
                    Col::Time(s.datetime().map_err(pe)?.physical().clone(), per_second)
                }
                DataType::Decimal(_, scale) if *scale <= 9 => {
                    Col::Dec(s.decimal().map_err(pe)?.physical().clone(), *scale as u32)
                }
                other => return Err(wrong(other.to_string())),
            })
        })
        .collect::<Result<_, IngestError>>()?;

    let mut rejected = Vec::new();
    let mut cells: Vec<Cell> = Vec::with_capacity(columns.len());
    for i in 0..df.height() {
        if i > 0 && i as u64 % PROGRESS_EVERY == 0 {
            report(i as u64);
        }
        cells.clear();
        cells.extend(cols.iter().map(|c| c.cell(i)));
        if let Err(e) = on_row(&Row { cells: &cells }) {
            let raw = cells.iter().map(Cell::render).collect::<Vec<_>>().join(",");
            rejected.push(RejectedRow {
                file: file.clone(),
                line: i as u64 + 1,
                reason: reason(columns, &e),
                raw: excerpt(&raw, MAX_RAW_CHARS),
            });
        }
    }
    Ok(TableStats {
        source: source.clone(),
        rows: df.height() as u64,
        sha256,
        rejected,
    })
}
