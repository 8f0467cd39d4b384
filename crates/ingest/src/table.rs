//! Reading one table, CSV or Parquet, record by record into [`Cell`]s. The only
//! place that opens input tables.
//!
//! Memory is bounded by the block size, the row-group size and the number of workers,
//! never by the length of a file: a table of a billion rows streams through. Each
//! worker folds the rows it is given into a state of its own (`S`); the caller merges
//! the states, so what it computes must not depend on which worker saw which row
//! (counts, bitmaps, lists it sorts). With one worker, rows arrive in file order.
//!
//! CSV has two paths that read the same records:
//! - the **block path**: the file is cut into blocks of whole lines, hashed in order by
//!   the reading thread and parsed by the workers. It takes the records of a file that
//!   has no `"` and no CR other than in CRLF: there, every LF ends a record, so a
//!   block boundary is always a record boundary;
//! - the **csv crate**, serially, for everything else (quoting, bare CR, blank lines
//!   before the header, lines longer than a block). The block path hands over to it at
//!   the first block it cannot take, so a file that is quoted only near its end is
//!   still read mostly in parallel. A test checks that both paths read the same
//!   records, line numbers and raw text on random files.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::cells::{Cell, Row, RowError};
use crate::error::IngestError;
use tally_core::limits::{
    MAX_COLUMNS, MAX_PARQUET_ROW_GROUP_BYTES, MAX_PARQUET_ROW_GROUP_ROWS, MAX_RECORD_BYTES,
    MAX_REJECTED_ROWS,
};
use tally_core::run::RejectedRow;
use tally_core::value::excerpt;

/// Longest `raw` excerpt kept for a rejected row.
const MAX_RAW_CHARS: usize = 1_024;

/// Most columns the SPEC names in one table (the registry has seven).
const MAX_SPEC_COLUMNS: usize = 8;

/// Size of a CSV block: large enough that handing blocks to workers costs nothing,
/// small enough that a few per worker stay a few tens of MiB.
/// Unit tests use tiny blocks, so that their small files cross many block boundaries.
const BLOCK_BYTES: usize = if cfg!(test) { 96 } else { 8 << 20 };

/// How often a reader reports how many rows it has read.
const PROGRESS_EVERY: u64 = 1 << 20;

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
    /// In file order.
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

/// One table being read: where from, which columns, how many workers, and who hears
/// of progress.
pub struct Table<'a> {
    pub source: &'a Source,
    pub columns: &'a [&'a str],
    /// Worker threads; 1 keeps rows in file order.
    pub workers: usize,
    pub progress: Option<crate::ProgressHook>,
}

impl Table<'_> {
    /// Reads every record, mapping the SPEC's columns, and folds each into the state
    /// of the worker that reads it. A row `on_row` refuses is collected as rejected.
    /// Returns the states of all workers, in no particular order.
    pub fn read<S: Send>(
        &self,
        init: impl Fn() -> S + Sync,
        on_row: impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync,
    ) -> Result<(TableStats, Vec<S>), IngestError> {
        assert!(self.columns.len() <= MAX_SPEC_COLUMNS);
        let workers = self.workers.max(1);
        let (stats, states) = match self.source.format {
            Format::Csv => self.read_csv(workers, &init, &on_row),
            Format::Parquet => self.read_parquet(workers, &init, &on_row),
        }?;
        self.report(stats.rows);
        Ok((stats, states))
    }

    fn report(&self, rows: u64) {
        if let Some(hook) = self.progress {
            hook(crate::Progress::Rows {
                file: &self.source.file,
                rows,
            });
        }
    }

    fn file(&self) -> &str {
        &self.source.file
    }

    fn reason(&self, e: &RowError) -> String {
        format!("{}: {}", self.columns[e.column], e.message)
    }

    /// More rejected rows than tally keeps: the run fails at once (and would anyway,
    /// unless the table has billions of rows).
    fn too_many_rejected(&self, first_line: u64, first_reason: &str) -> IngestError {
        IngestError::Line {
            file: self.file().to_string(),
            line: first_line,
            message: format!(
                "{first_reason}; and more than {MAX_REJECTED_ROWS} rows of this table are rejected, \
                 the most tally keeps: fix the export"
            ),
        }
    }

    fn reject(&self, line: u64, reason: String, raw: &str) -> RejectedRow {
        RejectedRow {
            file: self.file().to_string(),
            line,
            reason,
            raw: excerpt(raw, MAX_RAW_CHARS),
        }
    }

    /// Positions of the SPEC's columns among the header's names: a missing one or a
    /// repeated one is an error (SPEC 2.2; a repeated extra column is ignored).
    fn layout(&self, line: u64, names: &[&str]) -> Result<Layout, IngestError> {
        let err = |message: String| IngestError::Line {
            file: self.file().to_string(),
            line,
            message,
        };
        if names.len() > MAX_COLUMNS {
            return Err(err(format!(
                "the header names {} columns, more than the {MAX_COLUMNS} tally reads",
                names.len()
            )));
        }
        for (i, name) in names.iter().enumerate() {
            if self.columns.contains(name) && names[..i].contains(name) {
                return Err(err(format!(
                    "column {:?} is named twice in the header",
                    excerpt(name, 64)
                )));
            }
        }
        let positions = self
            .columns
            .iter()
            .map(|c| {
                names.iter().position(|n| n == c).ok_or_else(|| {
                    err(format!(
                        "missing column {c:?}; the header must name {} (order free, names exact and case-sensitive)",
                        self.columns.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Layout {
            positions,
            width: names.len(),
        })
    }

    /// One record's fields, checked against the header and handed to `on_row`.
    fn record<S>(
        &self,
        layout: &Layout,
        fields: &[&[u8]],
        state: &mut S,
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
    ) -> Result<(), String> {
        if fields.len() != layout.width {
            return Err(format!(
                "expected {} fields as in the header, found {}",
                layout.width,
                fields.len()
            ));
        }
        let mut cells = [Cell::Null; MAX_SPEC_COLUMNS];
        for (cell, &p) in cells.iter_mut().zip(&layout.positions) {
            *cell = Cell::Bytes(fields[p]);
        }
        on_row(
            state,
            &Row {
                cells: &cells[..layout.positions.len()],
            },
        )
        .map_err(|e| self.reason(&e))
    }
}

/// Where the SPEC's columns are in a CSV file.
struct Layout {
    positions: Vec<usize>,
    /// Fields per record, as in the header.
    width: usize,
}

/// What a worker found in one block.
struct BlockResult {
    index: usize,
    rows: u64,
    newlines: u64,
    /// Line (counted from the block's first, 0-based), reason, raw text.
    rejected: Vec<(u64, String, String)>,
    /// The line (counted as above) of a record longer than [`MAX_RECORD_BYTES`]: the
    /// block was not read past it.
    too_long: Option<u64>,
}

/// A block the block path can take: no `"`, and every CR is part of a CRLF.
fn block_path_can_take(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_none()
        && memchr::memchr_iter(b'\r', bytes).all(|i| bytes.get(i + 1) == Some(&b'\n'))
}

/// Reads up to `want` more bytes into `buf`, looping over short reads; false at EOF.
/// (`read_to_end` through `take` reads into the spare capacity without zeroing it
/// first: a small file does not pay for a whole block.)
fn fill(f: &mut File, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let n = f.take(want as u64).read_to_end(buf)?;
    Ok(n > 0)
}

impl Table<'_> {
    fn read_csv<S: Send>(
        &self,
        workers: usize,
        init: &(impl Fn() -> S + Sync),
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
    ) -> Result<(TableStats, Vec<S>), IngestError> {
        let file = self.file();
        let io_err = |e| IngestError::io(file, e);
        let mut f = File::open(&self.source.path).map_err(io_err)?;
        let mut hash = Sha256::new();
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK_BYTES);
        fill(&mut f, &mut buf, BLOCK_BYTES).map_err(io_err)?;

        // The header, if the block path can take it: the first line, not blank, no
        // quote, no bare CR. Anything else goes to the csv crate from the start.
        let bom = if buf.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let header = memchr::memchr(b'\n', &buf).map(|nl| {
            let line = &buf[bom..nl];
            (line.strip_suffix(b"\r").unwrap_or(line), nl + 1)
        });
        let Some((header, data_start)) = header
            .filter(|(h, _)| !h.is_empty() && h.len() <= MAX_RECORD_BYTES && block_path_can_take(h))
            .map(|(h, start)| (h.to_vec(), start))
        else {
            let mut states = vec![init()];
            let stats = self.serial_csv(0, 1, None, hash, &mut states[0], on_row, 0)?;
            return Ok((stats, states));
        };
        let names = header
            .split(|&b| b == b',')
            .map(std::str::from_utf8)
            .collect::<Result<Vec<&str>, _>>()
            .map_err(|_| IngestError::Line {
                file: file.to_string(),
                line: 1,
                message: "header is not UTF-8".into(),
            })?;
        let layout = self.layout(1, &names)?;
        hash.update(&buf[..data_start]);
        buf.drain(..data_start);

        // Blocks of whole lines go to the workers; free buffers come back with results.
        let (work_tx, work_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(workers);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<(BlockResult, Vec<u8>)>();
        let mut results: Vec<BlockResult> = Vec::new();
        let mut handover: Option<u64> = None;
        let mut offset = data_start as u64;
        let layout_ref = &layout;
        let states = std::thread::scope(|scope| -> Result<Vec<S>, IngestError> {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (rx, tx) = (work_rx.clone(), done_tx.clone());
                    let layout = layout_ref;
                    scope.spawn(move || {
                        let mut state = init();
                        for (index, block) in rx {
                            let r = self.parse_block(index, &block, layout, &mut state, on_row);
                            if tx.send((r, block)).is_err() {
                                break;
                            }
                        }
                        state
                    })
                })
                .collect();
            drop(done_tx);
            let mut free: Vec<Vec<u8>> = Vec::new();
            let mut rows_seen = 0u64;
            // Reading stops once a block has a record too long or the rejected rows pass
            // MAX_REJECTED_ROWS; the error is built below, from the blocks in order.
            let stop = std::cell::Cell::new(false);
            let mut rejected_seen = 0usize;
            let mut collect = |r: BlockResult, b: Vec<u8>, free: &mut Vec<Vec<u8>>| {
                if (rows_seen + r.rows) / PROGRESS_EVERY > rows_seen / PROGRESS_EVERY {
                    self.report(rows_seen + r.rows);
                }
                rows_seen += r.rows;
                rejected_seen += r.rejected.len();
                if r.too_long.is_some() || rejected_seen > MAX_REJECTED_ROWS {
                    stop.set(true);
                }
                results.push(r);
                free.push(b);
            };
            let mut eof = false;
            let mut index = 0;
            let sent: Result<(), IngestError> = loop {
                if stop.get() {
                    break Ok(());
                }
                if !eof && buf.len() < BLOCK_BYTES {
                    let want = BLOCK_BYTES - buf.len();
                    match fill(&mut f, &mut buf, want) {
                        Ok(more) => eof = !more || buf.len() < BLOCK_BYTES,
                        Err(e) => break Err(io_err(e)),
                    }
                }
                if buf.is_empty() {
                    break Ok(());
                }
                // The block ends after its last LF (at EOF: at the end of the file).
                let end = if eof {
                    buf.len()
                } else {
                    match memchr::memrchr(b'\n', &buf) {
                        Some(nl) => nl + 1,
                        None => {
                            handover = Some(offset);
                            break Ok(());
                        }
                    }
                };
                if !block_path_can_take(&buf[..end]) {
                    handover = Some(offset);
                    break Ok(());
                }
                hash.update(&buf[..end]);
                let mut next = free
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(BLOCK_BYTES));
                next.clear();
                next.extend_from_slice(&buf[end..]);
                buf.truncate(end);
                let block = std::mem::replace(&mut buf, next);
                offset += end as u64;
                if work_tx.send((index, block)).is_err() {
                    break Ok(());
                }
                index += 1;
                while let Ok((r, b)) = done_rx.try_recv() {
                    collect(r, b, &mut free);
                }
            };
            drop(work_tx);
            for (r, b) in done_rx.iter() {
                collect(r, b, &mut free);
            }
            let states = handles
                .into_iter()
                .map(|h| h.join().expect("a CSV worker panicked"))
                .collect();
            sent.map(|()| states)
        })?;

        results.sort_by_key(|r| r.index);
        let mut rows = 0;
        let mut line = 2; // the line the current block starts on; the header is line 1
        let mut rejected = Vec::new();
        for r in &results {
            if let Some(l) = r.too_long {
                return Err(IngestError::Line {
                    file: file.to_string(),
                    line: line + l,
                    message: format!(
                        "a record longer than {MAX_RECORD_BYTES} bytes, the most tally reads"
                    ),
                });
            }
            rows += r.rows;
            rejected.extend(
                r.rejected
                    .iter()
                    .map(|(l, reason, raw)| self.reject(line + l, reason.clone(), raw)),
            );
            if rejected.len() > MAX_REJECTED_ROWS {
                return Err(self.too_many_rejected(rejected[0].line, &rejected[0].reason));
            }
            line += r.newlines;
        }
        let mut states = states;
        let sha256 = match handover {
            Some(offset) => {
                let rest = self.serial_csv(
                    offset,
                    line,
                    Some(layout),
                    hash,
                    &mut states[0],
                    on_row,
                    rows,
                )?;
                rows += rest.rows;
                rejected.extend(rest.rejected);
                rest.sha256
            }
            None => hex(&hash.finalize()),
        };
        Ok((
            TableStats {
                source: self.source.clone(),
                rows,
                sha256,
                rejected,
            },
            states,
        ))
    }

    /// The block path: splits a block of whole lines into records.
    fn parse_block<S>(
        &self,
        index: usize,
        block: &[u8],
        layout: &Layout,
        state: &mut S,
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
    ) -> BlockResult {
        let mut r = BlockResult {
            index,
            rows: 0,
            newlines: 0,
            rejected: Vec::new(),
            too_long: None,
        };
        let mut fields: Vec<&[u8]> = Vec::with_capacity(layout.width);
        let mut start = 0;
        while start < block.len() {
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
            let line = &block[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_RECORD_BYTES {
                r.too_long = Some(r.newlines);
                break;
            }
            if !line.is_empty() {
                r.rows += 1;
                fields.clear();
                fields.extend(line.split(|&b| b == b','));
                if let Err(reason) = self.record(layout, &fields, state, on_row) {
                    r.rejected.push((
                        r.newlines,
                        reason,
                        String::from_utf8_lossy(line).into_owned(),
                    ));
                }
            }
            if end < block.len() {
                r.newlines += 1;
            }
            start = end + 1;
        }
        r
    }

    /// The csv crate, from byte `offset` (a record boundary on line `line`) to the end.
    /// With no `layout`, `offset` is 0 and the header is read first. `hash` holds the
    /// hash of the bytes before `offset`.
    #[allow(clippy::too_many_arguments)]
    fn serial_csv<S>(
        &self,
        offset: u64,
        line: u64,
        layout: Option<Layout>,
        hash: Sha256,
        state: &mut S,
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
        rows_before: u64,
    ) -> Result<TableStats, IngestError> {
        let file = self.file();
        let mut f = File::open(&self.source.path).map_err(|e| IngestError::io(file, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| IngestError::io(file, e))?;
        let guard = Guard::new(io::BufReader::with_capacity(1 << 20, f), hash, line);
        // Resuming inside the file, the csv crate is first given one LF, a blank line it
        // skips: it strips a UTF-8 BOM at the start of what it reads, which is right at
        // the start of the file and wrong anywhere else.
        let prefix: &[u8] = if offset == 0 { b"" } else { b"\n" };
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(prefix.chain(guard));
        let csv_err = |e: csv::Error| match e.into_kind() {
            csv::ErrorKind::Io(e) => match e.get_ref().and_then(|g| g.downcast_ref::<GuardError>())
            {
                Some(g) => IngestError::Line {
                    file: file.to_string(),
                    line: g.line,
                    message: g.message.clone(),
                },
                None => IngestError::io(file, e),
            },
            kind => IngestError::file(file, format!("malformed CSV: {kind:?}")),
        };
        // The csv crate counts lines from 1 where it starts, and bytes from 0.
        let at = |l: u64| line + l - 1 - prefix.len() as u64;
        let byte_at = |b: u64| offset + b - prefix.len() as u64;

        let mut record = csv::ByteRecord::new();
        let layout = match layout {
            Some(l) => l,
            None => {
                if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
                    return Err(IngestError::file(
                        file,
                        "empty file: expected a header row naming the columns",
                    ));
                }
                let header_line = at(record.position().map_or(1, |p| p.line()));
                let names = record
                    .iter()
                    .map(std::str::from_utf8)
                    .collect::<Result<Vec<&str>, _>>()
                    .map_err(|_| IngestError::Line {
                        file: file.to_string(),
                        line: header_line,
                        message: "header is not UTF-8".into(),
                    })?;
                self.layout(header_line, &names)?
            }
        };

        let mut rows = 0u64;
        let mut rejected_at: Vec<(u64, u64, String)> = Vec::new();
        loop {
            let start = rdr.position().byte();
            if !rdr.read_byte_record(&mut record).map_err(csv_err)? {
                break;
            }
            rows += 1;
            if (rows_before + rows).is_multiple_of(PROGRESS_EVERY) {
                self.report(rows_before + rows);
            }
            let line = at(record.position().map_or(1, |p| p.line()));
            let record_start = record.position().map_or(start, |p| p.byte());
            let fields: Vec<&[u8]> = record.iter().collect();
            if let Err(reason) = self.record(&layout, &fields, state, on_row) {
                rejected_at.push((line, byte_at(record_start), reason));
                if rejected_at.len() > MAX_REJECTED_ROWS {
                    let (line, _, reason) = &rejected_at[0];
                    return Err(self.too_many_rejected(*line, reason));
                }
            }
        }
        let sha256 = hex(&rdr.into_inner().into_inner().1.hash.finalize());

        // Raw text of the rejected records, read back from their byte offsets.
        let mut rejected = Vec::with_capacity(rejected_at.len());
        if !rejected_at.is_empty() {
            let mut f = File::open(&self.source.path).map_err(|e| IngestError::io(file, e))?;
            for (line, offset, reason) in rejected_at {
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| IngestError::io(file, e))?;
                let mut buf = Vec::new();
                (&mut f)
                    .take(4 * MAX_RAW_CHARS as u64 + 1024)
                    .read_to_end(&mut buf)
                    .map_err(|e| IngestError::io(file, e))?;
                let (skipped_lines, raw) = raw_record(&buf);
                rejected.push(self.reject(line + skipped_lines, reason, &raw));
            }
        }
        Ok(TableStats {
            source: self.source.clone(),
            rows,
            sha256,
            rejected,
        })
    }
}

/// Where the csv crate is in a record, as far as [`Guard`] needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field: a `"` here opens a quoted field.
    FieldStart,
    /// In an unquoted field: a `"` here is data (as the csv crate reads it).
    Unquoted,
    /// In a quoted field: only a `"` is special.
    Quoted,
    /// A `"` in a quoted field: `""` is an escaped quote; anything else closes it.
    QuoteInQuoted,
}

/// Why [`Guard`] stopped the csv crate: a physical line and what was wrong there.
#[derive(Debug)]
struct GuardError {
    line: u64,
    message: String,
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for GuardError {}

/// The reader under the csv crate: hashes what passes through it and checks, on the
/// raw bytes, what the csv crate does not:
/// - a CR outside quotes ends a line only as part of CRLF (SPEC 2.2: LF or CRLF; the
///   csv crate would take a bare CR as a line end);
/// - no record is longer than [`MAX_RECORD_BYTES`], checked before the csv crate has
///   buffered it, so one endless line cannot take the machine's memory;
/// - a quoted field is closed by the end of the file (the csv crate would end it
///   there silently).
///
/// It follows the csv crate's quoting exactly (a `"` opens a quoted field only at the
/// start of a field), so a stray quote inside an unquoted field stays what it is for
/// the csv crate: data, and at worst a rejected row.
struct Guard<R> {
    inner: R,
    hash: Sha256,
    state: Quoting,
    /// Physical line of the next byte, and of the start of the current record.
    line: u64,
    record_line: u64,
    /// Bytes of the current record so far.
    record_bytes: usize,
    /// Line on which the open quoted field started.
    quote_line: u64,
    /// The previous chunk ended with a CR outside quotes: the next byte must be LF.
    cr_pending: bool,
}

impl<R: Read> Guard<R> {
    fn new(inner: R, hash: Sha256, line: u64) -> Self {
        Guard {
            inner,
            hash,
            state: Quoting::FieldStart,
            line,
            record_line: line,
            record_bytes: 0,
            quote_line: line,
            cr_pending: false,
        }
    }

    fn fail(line: u64, message: String) -> io::Error {
        io::Error::other(GuardError { line, message })
    }

    fn bare_cr(&self) -> io::Error {
        Self::fail(
            self.line,
            "a CR that is not followed by LF, outside quotes; lines must end with LF or CRLF"
                .into(),
        )
    }

    fn scan(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut i = 0;
        if std::mem::take(&mut self.cr_pending) && bytes.first() != Some(&b'\n') {
            return Err(self.bare_cr());
        }
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            self.record_bytes += 1;
            if b == b'\n' {
                self.line += 1;
            }
            self.state = match (self.state, b) {
                (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
                (Quoting::Quoted, _) => Quoting::Quoted,
                (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
                (Quoting::FieldStart, b'"') => {
                    self.quote_line = self.line;
                    Quoting::Quoted
                }
                (_, b',') => Quoting::FieldStart,
                (_, b'\n') => {
                    self.record_bytes = 0;
                    self.record_line = self.line;
                    Quoting::FieldStart
                }
                (_, b'\r') => {
                    match bytes.get(i) {
                        Some(b'\n') => {}
                        Some(_) => return Err(self.bare_cr()),
                        None => self.cr_pending = true,
                    }
                    self.state
                }
                _ => Quoting::Unquoted,
            };
            if self.record_bytes > MAX_RECORD_BYTES {
                return Err(Self::fail(
                    self.record_line,
                    format!("a record longer than {MAX_RECORD_BYTES} bytes, the most tally reads"),
                ));
            }
        }
        Ok(())
    }

    /// At the end of the input: nothing may be left open.
    fn finish(&mut self) -> io::Result<()> {
        if self.cr_pending {
            return Err(self.bare_cr());
        }
        if self.state == Quoting::Quoted {
            return Err(Self::fail(
                self.quote_line,
                "a quoted field opened here is never closed (RFC 4180: a field that starts \
                 with \" ends with \")"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        if n == 0 {
            self.finish()?;
        }
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

/// The csv crate positions a record before the line ends and blank lines it skips
/// on the way to it (the `\n` of a CRLF, empty lines). From such a position: how
/// many lines to skip to where the record really starts, and the record's text up to
/// its line end outside quotes, lossily decoded.
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
    (skipped, String::from_utf8_lossy(&bytes[..end]).into_owned())
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
    /// The column's cells, in order.
    fn cells(&self) -> Box<dyn Iterator<Item = Cell<'_>> + '_> {
        match self {
            Col::Str(c) => Box::new(c.iter().map(move |v| v.map_or(Cell::Null, Cell::Text))),
            Col::Int(c) => Box::new(c.iter().map(move |v| v.map_or(Cell::Null, Cell::Int))),
            Col::Time(c, per_second) => Box::new(
                c.iter()
                    .map(move |v| v.map_or(Cell::Null, |v| Cell::Time(v.div_euclid(*per_second)))),
            ),
            Col::Dec(c, scale) => Box::new(
                c.iter()
                    .map(move |v| v.map_or(Cell::Null, |v| Cell::Dec(v, *scale))),
            ),
        }
    }
}

thread_local! {
    /// Whether this thread is inside [`polars_call`], whose panics become errors.
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a panic now would be caught and turned into an error naming a file (the
/// CLI's panic hook stays quiet then). Only the calling thread is known: a panic on
/// one of polars' own threads is still printed, then caught the same way.
pub fn panic_is_contained() -> bool {
    CONTAINED.get()
}

/// Runs one call into polars' Parquet reader, turning a panic into an error naming the
/// file. polars panics on some malformed files instead of returning an error (found
/// by fuzzing: a column chunk whose byte range, from the footer, lies past the end of
/// the file panics in `mmap_single_column`; corrupt pages panic in the decoders).
/// Validating the metadata up front would catch only the first kind, and tally cannot
/// fix polars, so the decoding calls are the boundary: what panics there is a file
/// polars cannot read. Nothing of tally's own runs inside, so no bug of tally is hidden.
fn polars_call<T>(file: &str, f: impl FnOnce() -> PolarsResult<T>) -> Result<T, IngestError> {
    contained(file, || f().map_err(|e| e.to_string()))
}

/// Runs `f`, a call into polars' Parquet code, with its panics contained (see
/// [`polars_call`]): an error or a panic is `FILE: not a readable Parquet file: ...`.
pub(crate) fn contained<T>(
    file: &str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, IngestError> {
    let unreadable =
        |why: String| IngestError::file(file, format!("not a readable Parquet file: {why}"));
    CONTAINED.set(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.set(false);
    match result {
        Ok(r) => r.map_err(unreadable),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message");
            Err(unreadable(format!(
                "the Parquet reader failed on it ({})",
                excerpt(message, 200)
            )))
        }
    }
}

/// Whether a Parquet column of type `dt` can hold a SPEC column: text, an integer, a
/// timestamp or an exact DECIMAL (what `parquet_rows` converts).
fn readable_type(dt: &DataType) -> bool {
    match dt {
        DataType::String | DataType::Datetime(..) => true,
        DataType::Decimal(_, scale) => *scale <= 9,
        dt => dt.is_integer(),
    }
}

fn wrong_type(file: &str, name: &str, dt: &DataType) -> IngestError {
    IngestError::file(
        file,
        format!(
            "column {name:?} has Parquet type {dt}; expected a string, an integer, a timestamp, \
             or a DECIMAL with scale at most 9 (floating point is refused: it cannot be exact)"
        ),
    )
}

/// A Parquet row group is decoded whole: its rows and its declared uncompressed bytes
/// are bounded ([`MAX_PARQUET_ROW_GROUP_ROWS`], [`MAX_PARQUET_ROW_GROUP_BYTES`]) before
/// any of it is read.
fn row_group_within_limits(file: &str, rows: u64, declared: i64) -> Result<(), IngestError> {
    if rows > MAX_PARQUET_ROW_GROUP_ROWS {
        return Err(IngestError::file(
            file,
            format!(
                "a row group holds {rows} rows, more than the {MAX_PARQUET_ROW_GROUP_ROWS} tally reads at once; \
                 write the file with smaller row groups"
            ),
        ));
    }
    if declared > MAX_PARQUET_ROW_GROUP_BYTES {
        return Err(IngestError::file(
            file,
            format!(
                "a row group declares {declared} bytes uncompressed, more than the \
                 {MAX_PARQUET_ROW_GROUP_BYTES} tally decodes at once; write the file with smaller row groups"
            ),
        ));
    }
    Ok(())
}

impl Table<'_> {
    /// Parquet, a row group at a time: workers take row groups in turn.
    fn read_parquet<S: Send>(
        &self,
        workers: usize,
        init: &(impl Fn() -> S + Sync),
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
    ) -> Result<(TableStats, Vec<S>), IngestError> {
        let file = self.file();
        let open = || File::open(&self.source.path).map_err(|e| IngestError::io(file, e));
        // polars trusts the footer's counts: it decodes the footer checked and
        // re-encoded, never the file's own bytes.
        let footer = crate::parquet_checks::footer(file, &mut open()?)?;
        let mut reader = ParquetReader::new(open()?);
        reader.set_metadata(footer);
        let schema = polars_call(file, || reader.schema())?;
        let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
        self.layout(1, &names)?;
        // Types are refused before any row group is decoded (a list column would
        // otherwise fail the page checks with a less useful message).
        for &name in self.columns {
            if let Some(field) = schema.get(name) {
                let dt = contained(file, || Ok(DataType::from_arrow_field(field)))?;
                if !readable_type(&dt) {
                    return Err(wrong_type(file, name, &dt));
                }
            }
        }
        let metadata = polars_call(file, || reader.get_metadata().cloned())?;
        let mut groups = Vec::with_capacity(metadata.row_groups.len());
        let mut first_row = 0usize;
        for g in &metadata.row_groups {
            // What decoding the group will take, as the metadata declares it (a file
            // that lies is caught by the decoder, which checks what it decompresses).
            let declared = g
                .parquet_columns()
                .iter()
                .map(|c| c.uncompressed_size().max(0))
                .fold(0i64, i64::saturating_add)
                .max(g.total_byte_size().try_into().unwrap_or(i64::MAX));
            row_group_within_limits(file, g.num_rows() as u64, declared)?;
            groups.push((first_row, g.num_rows()));
            first_row += g.num_rows();
        }
        let columns: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();

        let next = AtomicUsize::new(0);
        // Per row group: its index, and its rejected rows or why it could not be read.
        type Found = Vec<(usize, Result<Vec<RejectedRow>, IngestError>)>;
        let found: Mutex<Found> = Mutex::new(Vec::new());
        let rows_done = AtomicUsize::new(0);
        let rejected_seen = AtomicUsize::new(0);
        let (sha256, states) = std::thread::scope(|scope| {
            // The file's hash, alongside the reading.
            let sha = scope.spawn(|| sha256_file(&self.source.path, file));
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut state = init();
                        loop {
                            let g = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&(first, n)) = groups.get(g) else {
                                break;
                            };
                            let r = (|| {
                                // polars trusts the page headers: check them first.
                                crate::parquet_checks::check_row_group(
                                    file,
                                    &mut open()?,
                                    &metadata,
                                    g,
                                    &columns,
                                )?;
                                let mut reader = ParquetReader::new(open()?);
                                reader.set_metadata(metadata.clone());
                                let df = polars_call(file, || {
                                    reader
                                        .with_columns(Some(columns.clone()))
                                        .with_slice(Some((first, n)))
                                        .read_parallel(ParallelStrategy::None)
                                        .finish()
                                })?;
                                let r = self.parquet_rows(
                                    &df,
                                    first,
                                    &mut state,
                                    on_row,
                                    &rejected_seen,
                                );
                                let done = rows_done.fetch_add(n, Ordering::Relaxed) + n;
                                if (done - n) as u64 / PROGRESS_EVERY
                                    != done as u64 / PROGRESS_EVERY
                                {
                                    self.report(done as u64);
                                }
                                r
                            })();
                            let failed = r.is_err();
                            found.lock().expect("no worker panics").push((g, r));
                            if failed {
                                break;
                            }
                        }
                        state
                    })
                })
                .collect();
            let states: Vec<S> = handles
                .into_iter()
                .map(|h| h.join().expect("a Parquet worker panicked"))
                .collect();
            (sha.join().expect("hashing does not panic"), states)
        });
        let mut found = found.into_inner().expect("no worker panics");
        found.sort_by_key(|(g, _)| *g);
        let mut rejected = Vec::new();
        for (_, r) in found {
            rejected.extend(r?);
        }
        Ok((
            TableStats {
                source: self.source.clone(),
                rows: first_row as u64,
                sha256: sha256?,
                rejected,
            },
            states,
        ))
    }

    /// The rows of one row group, whose first row is row `first` of the file.
    fn parquet_rows<S>(
        &self,
        df: &DataFrame,
        first: usize,
        state: &mut S,
        on_row: &(impl Fn(&mut S, &Row) -> Result<(), RowError> + Sync),
        rejected_seen: &AtomicUsize,
    ) -> Result<Vec<RejectedRow>, IngestError> {
        let file = self.file();
        let cols: Vec<Col> = self
            .columns
            .iter()
            .map(|&name| {
                let s = df
                    .column(name)
                    .map_err(|e| IngestError::file(file, format!("column {name:?}: {e}")))?
                    .as_materialized_series()
                    .rechunk();
                let pe = |e: PolarsError| IngestError::file(file, format!("column {name:?}: {e}"));
                Ok(match s.dtype() {
                    DataType::String => Col::Str(s.str().map_err(pe)?.clone()),
                    dt if dt.is_integer() => Col::Int(
                        s.cast(&DataType::Int128)
                            .map_err(pe)?
                            .i128()
                            .map_err(pe)?
                            .clone(),
                    ),
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
                    other => return Err(wrong_type(file, name, other)),
                })
            })
            .collect::<Result<_, IngestError>>()?;
        let mut rejected = Vec::new();
        let mut cells = [Cell::Null; MAX_SPEC_COLUMNS];
        let mut columns: Vec<_> = cols.iter().map(Col::cells).collect();
        for i in 0..df.height() {
            for (cell, c) in cells.iter_mut().zip(columns.iter_mut()) {
                *cell = c.next().expect("columns of one row group are equally long");
            }
            let row = Row {
                cells: &cells[..cols.len()],
            };
            if let Err(e) = on_row(state, &row) {
                let raw = row
                    .cells
                    .iter()
                    .map(Cell::render)
                    .collect::<Vec<_>>()
                    .join(",");
                rejected.push(self.reject((first + i) as u64 + 1, self.reason(&e), &raw));
                if rejected_seen.fetch_add(1, Ordering::Relaxed) >= MAX_REJECTED_ROWS {
                    return Err(self.too_many_rejected(rejected[0].line, &rejected[0].reason));
                }
            }
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row-group limits at their boundaries (a file that reaches them is gigabytes).
    #[test]
    fn row_group_limits() {
        let (rows, bytes) = (MAX_PARQUET_ROW_GROUP_ROWS, MAX_PARQUET_ROW_GROUP_BYTES);
        assert!(row_group_within_limits("h.parquet", rows, bytes).is_ok());
        let e = row_group_within_limits("h.parquet", rows + 1, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "h.parquet: a row group holds {} rows, more than the {rows} tally reads at once; \
                 write the file with smaller row groups",
                rows + 1
            )
        );
        let e = row_group_within_limits("h.parquet", 1, bytes + 1).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "h.parquet: a row group declares {} bytes",
                bytes + 1
            )),
            "{e}"
        );
    }

    /// What a reader saw: the records it accepted (cells as text), and the rejected.
    fn read_all(
        path: &Path,
        workers: usize,
        serial: bool,
    ) -> Result<(Vec<Vec<String>>, TableStats), String> {
        let source = Source {
            file: "t.csv".into(),
            path: path.to_path_buf(),
            format: Format::Csv,
        };
        let table = Table {
            source: &source,
            columns: &["c1", "c2"],
            workers,
            progress: None,
        };
        let on_row = |seen: &mut Vec<Vec<String>>, row: &Row| {
            let cells: Vec<String> = row.cells.iter().map(Cell::render).collect();
            if cells[0].starts_with('x') {
                return Err(RowError {
                    column: 0,
                    message: "starts with x".into(),
                });
            }
            seen.push(cells);
            Ok(())
        };
        let (stats, states) = if serial {
            let mut seen = Vec::new();
            let stats = table
                .serial_csv(0, 1, None, Sha256::new(), &mut seen, &on_row, 0)
                .map_err(|e| e.to_string())?;
            (stats, vec![seen])
        } else {
            table.read(Vec::new, on_row).map_err(|e| e.to_string())?
        };
        let mut seen: Vec<Vec<String>> = states.into_iter().flatten().collect();
        if workers > 1 {
            seen.sort();
        }
        Ok((seen, stats))
    }

    /// The block path and the csv crate read the same records, line numbers, raw text
    /// and hash, whatever the file holds: quoting, CRLF, bare CR, blank lines, a BOM,
    /// bytes that are not UTF-8, wrong field counts, long lines.
    #[test]
    fn block_path_reads_what_the_csv_crate_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let pieces: [&[u8]; 12] = [
            b"a",
            b"b1",
            b"x9",
            b"",
            b" s",
            "\u{e9}".as_bytes(),
            b"\xff",
            b"\0",
            b"dev-000001",
            b"2024-03-01T00:00:00Z",
            b"yy",
            b"0123456789abcdef0123456789",
        ];
        for case in 0..400 {
            let mut f: Vec<u8> = Vec::new();
            if next(8) == 0 {
                f.extend_from_slice(b"\xEF\xBB\xBF");
            }
            if next(10) == 0 {
                f.extend_from_slice(b"\n");
            }
            f.extend_from_slice(if next(6) == 0 {
                b"c2,c1,extra"
            } else {
                b"c1,c2"
            });
            // Most files are plain, so that the block path takes them whole or in part.
            let plain = next(3) != 0;
            let lines = next(60);
            for _ in 0..lines {
                f.extend_from_slice(if next(12) == 0 { b"\r\n" } else { b"\n" });
                let fields = if next(15) == 0 {
                    next(4)
                } else {
                    2 + next(5) / 4
                };
                for i in 0..fields {
                    if i > 0 {
                        f.push(b',');
                    }
                    if !plain && next(10) == 0 {
                        f.extend_from_slice(b"\"q,\"\"\n\"");
                    } else {
                        f.extend_from_slice(pieces[next(pieces.len() as u64) as usize]);
                    }
                    if !plain && next(40) == 0 {
                        f.push(b'\r');
                    }
                }
                if next(20) == 0 {
                    f.extend_from_slice(&[b'z'; 150]);
                }
            }
            if next(2) == 0 {
                f.push(b'\n');
            }
            std::fs::write(&path, &f).unwrap();
            let serial = read_all(&path, 1, true);
            for workers in [1, 3] {
                let blocks = read_all(&path, workers, false);
                match (&serial, &blocks) {
                    (Ok((s_seen, s)), Ok((b_seen, b))) => {
                        let mut s_seen = s_seen.clone();
                        if workers > 1 {
                            s_seen.sort();
                        }
                        assert_eq!(
                            &s_seen,
                            b_seen,
                            "case {case}: {:?}",
                            String::from_utf8_lossy(&f)
                        );
                        assert_eq!(s.rows, b.rows, "case {case}");
                        assert_eq!(
                            s.rejected,
                            b.rejected,
                            "case {case}: {:?}",
                            String::from_utf8_lossy(&f)
                        );
                        assert_eq!(s.sha256, b.sha256, "case {case}");
                        assert_eq!(s.sha256, sha256_file(&path, "t.csv").unwrap());
                    }
                    (Err(s), Err(b)) => assert_eq!(s, b, "case {case}"),
                    _ => panic!("case {case}: {serial:?} vs {blocks:?}"),
                }
            }
        }
    }
}
