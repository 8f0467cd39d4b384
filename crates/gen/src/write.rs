//! Writing one table as CSV or Parquet, row by row, in bounded memory.
//!
//! Both formats receive the same typed rows, so a CSV epoch and a Parquet epoch of
//! one seed hold the same data. The only difference is a malformed timestamp: CSV
//! writes its bad text, Parquet (whose timestamp column cannot hold text) a null;
//! both are rejected rows.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use polars::prelude::*;

use crate::GenError;

/// Rows per Parquet row group, fixed so that output does not depend on anything
/// but the data.
pub const ROW_GROUP: usize = 1 << 21;

/// CSV bytes buffered before a write.
const CSV_BUFFER: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// The type of a column: Parquet's physical choice; in CSV all are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Identifiers, IPs, decimals (text keeps them exact), free text.
    Str,
    /// `Datetime(Milliseconds)` in Parquet, `YYYY-MM-DDTHH:MM:SSZ` in CSV.
    Time,
    /// `Int32`.
    Int,
}

/// One value of a row.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Str(&'a str),
    /// Unix seconds.
    Time(i64),
    /// A malformed timestamp: this text in CSV, null in Parquet.
    BadTime(&'a str),
    Int(i32),
}

pub struct Table {
    path: PathBuf,
    rows: u64,
    sink: Sink,
}

enum Sink {
    Csv(CsvSink),
    Parquet(ParquetSink),
}

impl Table {
    pub fn create(
        dir: &Path,
        stem: &str,
        format: Format,
        columns: &'static [(&'static str, Kind)],
    ) -> Result<Table, GenError> {
        let path = dir.join(format!("{stem}.{}", format.extension()));
        let file = File::create(&path).map_err(GenError::io(&path))?;
        let sink = match format {
            Format::Csv => {
                let mut sink = CsvSink::new(file, &path);
                for (k, (name, _)) in columns.iter().enumerate() {
                    if k > 0 {
                        sink.buf.push(b',');
                    }
                    sink.buf.extend_from_slice(name.as_bytes());
                }
                sink.buf.push(b'\n');
                Sink::Csv(sink)
            }
            Format::Parquet => Sink::Parquet(ParquetSink::new(file, columns, &path)?),
        };
        Ok(Table {
            path,
            rows: 0,
            sink,
        })
    }

    /// Appends one row; `vals` follow the table's columns.
    #[inline]
    pub fn row(&mut self, vals: &[Val]) -> Result<(), GenError> {
        self.rows += 1;
        match &mut self.sink {
            Sink::Csv(s) => {
                s.row(vals);
                if s.buf.len() >= CSV_BUFFER {
                    s.flush()?;
                }
                Ok(())
            }
            Sink::Parquet(s) => s.row(vals, &self.path),
        }
    }

    /// Writes what is buffered and closes the file: its rows and bytes.
    pub fn finish(self) -> Result<(u64, u64), GenError> {
        let bytes = match self.sink {
            Sink::Csv(mut s) => {
                s.flush()?;
                s.writer.finish()?
            }
            Sink::Parquet(s) => s.finish(&self.path)?,
        };
        Ok((self.rows, bytes))
    }
}

/// A thread that writes what the generator hands it, so that generating the next
/// rows overlaps with encoding and writing the previous ones (on 2 cores this
/// halves the time). One channel and one thread: the bytes are those of a
/// single-threaded writer. At most two items wait, which bounds memory.
struct Background<T> {
    tx: Option<SyncSender<T>>,
    thread: Option<JoinHandle<Result<u64, GenError>>>,
}

impl<T: Send + 'static> Background<T> {
    /// `write` consumes every item sent, then returns the bytes written.
    fn spawn(
        write: impl FnOnce(Receiver<T>) -> Result<u64, GenError> + Send + 'static,
    ) -> Background<T> {
        let (tx, rx) = sync_channel(1);
        Background {
            tx: Some(tx),
            thread: Some(std::thread::spawn(move || write(rx))),
        }
    }

    fn send(&mut self, item: T) -> Result<(), GenError> {
        let sent = self.tx.as_ref().expect("not finished").send(item);
        match sent {
            Ok(()) => Ok(()),
            // The writer stopped: it has an error to tell.
            Err(_) => self.join().map(|_| ()),
        }
    }

    fn join(&mut self) -> Result<u64, GenError> {
        self.tx = None;
        match self.thread.take().expect("joined once").join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn finish(mut self) -> Result<u64, GenError> {
        self.join()
    }
}

struct CsvSink {
    writer: Background<Vec<u8>>,
    /// Buffers the writer is done with, to fill again.
    spare: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    /// The day whose `YYYY-MM-DDT` is in `date`: consecutive timestamps mostly
    /// share a day, so formatting one is a copy and three two-digit numbers.
    day: i64,
    date: [u8; 11],
}

/// `00`..`99`.
const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn push2(buf: &mut Vec<u8>, n: usize) {
    buf.extend_from_slice(&DIGITS2[2 * n..2 * n + 2]);
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, for `epoch.toml` and messages.
pub fn format_ts(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

impl CsvSink {
    fn new(mut file: File, path: &Path) -> CsvSink {
        let (back, spare) = channel();
        let path = path.to_path_buf();
        let writer = Background::spawn(move |full: Receiver<Vec<u8>>| {
            let mut bytes = 0;
            for mut buf in full {
                file.write_all(&buf).map_err(GenError::io(&path))?;
                bytes += buf.len() as u64;
                buf.clear();
                let _ = back.send(buf);
            }
            Ok(bytes)
        });
        CsvSink {
            writer,
            spare,
            buf: Vec::with_capacity(CSV_BUFFER + 4096),
            day: i64::MIN,
            date: [0; 11],
        }
    }

    #[inline]
    fn row(&mut self, vals: &[Val]) {
        for (k, v) in vals.iter().enumerate() {
            if k > 0 {
                self.buf.push(b',');
            }
            match *v {
                Val::Str(s) | Val::BadTime(s) => self.text(s),
                Val::Time(t) => self.time(t),
                Val::Int(i) => self.buf.extend_from_slice(i.to_string().as_bytes()),
            }
        }
        self.buf.push(b'\n');
    }

    /// RFC 4180: quoted only if it must be.
    fn text(&mut self, s: &str) {
        if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
            self.buf.push(b'"');
            for b in s.bytes() {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(s.as_bytes());
        }
    }

    #[inline]
    fn time(&mut self, t: i64) {
        let day = t.div_euclid(86_400);
        if day != self.day {
            self.day = day;
            let (y, m, d) = civil_from_days(day);
            let text = format!("{y:04}-{m:02}-{d:02}T");
            self.date.copy_from_slice(text.as_bytes());
        }
        let s = t.rem_euclid(86_400) as usize;
        self.buf.extend_from_slice(&self.date);
        push2(&mut self.buf, s / 3_600);
        self.buf.push(b':');
        push2(&mut self.buf, s / 60 % 60);
        self.buf.push(b':');
        push2(&mut self.buf, s % 60);
        self.buf.push(b'Z');
    }

    fn flush(&mut self) -> Result<(), GenError> {
        let empty = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CSV_BUFFER + 4096));
        let full = std::mem::replace(&mut self.buf, empty);
        self.writer.send(full)
    }
}

/// One column being filled for the next row group.
enum Col {
    Str(StringChunkedBuilder),
    Time(Vec<Option<i64>>),
    Int(Vec<i32>),
}

struct ParquetSink {
    writer: Background<DataFrame>,
    columns: &'static [(&'static str, Kind)],
    cols: Vec<Col>,
    len: usize,
}

fn polars_err(path: &Path) -> impl Fn(PolarsError) -> GenError + '_ {
    move |e| GenError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl ParquetSink {
    fn new(
        file: File,
        columns: &'static [(&'static str, Kind)],
        path: &Path,
    ) -> Result<ParquetSink, GenError> {
        let schema = Schema::from_iter(columns.iter().map(|&(name, kind)| {
            let dtype = match kind {
                Kind::Str => DataType::String,
                Kind::Time => DataType::Datetime(TimeUnit::Milliseconds, None),
                Kind::Int => DataType::Int32,
            };
            Field::new(name.into(), dtype)
        }));
        // Every setting fixed: zstd at its default level (3), statistics on, one
        // row group per ROW_GROUP rows.
        // Unbuffered: polars writes whole pages, and a buffer would flush on drop,
        // where an error cannot be seen.
        let writer = ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::default())
            .with_row_group_size(Some(ROW_GROUP))
            .batched(&schema)
            .map_err(polars_err(path))?;
        let path = path.to_path_buf();
        let writer = Background::spawn(move |chunks: Receiver<DataFrame>| {
            let mut writer = writer;
            for df in chunks {
                writer.write_batch(&df).map_err(polars_err(&path))?;
            }
            writer.finish().map_err(polars_err(&path))
        });
        let mut sink = ParquetSink {
            writer,
            columns,
            cols: Vec::new(),
            len: 0,
        };
        sink.cols = sink.empty_columns();
        Ok(sink)
    }

    fn empty_columns(&self) -> Vec<Col> {
        self.columns
            .iter()
            .map(|&(name, kind)| match kind {
                Kind::Str => Col::Str(StringChunkedBuilder::new(name.into(), ROW_GROUP)),
                Kind::Time => Col::Time(Vec::with_capacity(ROW_GROUP)),
                Kind::Int => Col::Int(Vec::with_capacity(ROW_GROUP)),
            })
            .collect()
    }

    #[inline]
    fn row(&mut self, vals: &[Val], path: &Path) -> Result<(), GenError> {
        for (col, v) in self.cols.iter_mut().zip(vals) {
            match (col, *v) {
                (Col::Str(b), Val::Str(s)) => b.append_value(s),
                (Col::Time(c), Val::Time(t)) => c.push(Some(t * 1_000)),
                (Col::Time(c), Val::BadTime(_)) => c.push(None),
                (Col::Int(c), Val::Int(i)) => c.push(i),
                (_, v) => unreachable!("value {v:?} does not fit its column"),
            }
        }
        self.len += 1;
        if self.len == ROW_GROUP {
            self.flush(path)?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn flush(&mut self, path: &Path) -> Result<(), GenError> {
        if self.len == 0 {
            return Ok(());
        }
        let empty = self.empty_columns();
        let cols = std::mem::replace(&mut self.cols, empty);
        let columns: Vec<Column> = cols
            .into_iter()
            .zip(self.columns)
            .map(|(c, &(name, _))| match c {
                Col::Str(b) => b.finish().into_column(),
                Col::Time(v) => Int64Chunked::from_slice_options(name.into(), &v)
                    .into_datetime(TimeUnit::Milliseconds, None)
                    .into_column(),
                Col::Int(v) => Int32Chunked::from_vec(name.into(), v).into_column(),
            })
            .collect();
        let df = DataFrame::new(self.len, columns).map_err(polars_err(path))?;
        self.len = 0;
        self.writer.send(df)
    }

    fn finish(mut self, path: &Path) -> Result<u64, GenError> {
        self.flush(path)?;
        self.writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_ts(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(format_ts(253_402_300_799), "9999-12-31T23:59:59Z");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut s = CsvSink::new(File::create(&path).unwrap(), &path);
        for t in [0, 59, 86_399, 86_400, 951_782_400, 1_709_251_207] {
            s.buf.clear();
            s.time(t);
            assert_eq!(String::from_utf8(s.buf.clone()).unwrap(), format_ts(t));
        }
    }
}
