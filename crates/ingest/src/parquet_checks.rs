//! A Parquet file's footer and page headers, checked before polars reads them.
//!
//! polars trusts the counts in a file. Two kinds of count made it ask the allocator
//! for more than any machine has, which is not a panic that can be caught but an
//! abort of the process (both found by fuzzing `parquet_table`):
//! - a list length in the footer's thrift: polars reserves room for that many
//!   entries before reading them (a 4 KiB file asked for 347 GB);
//! - a data page declaring -11 values: cast to 2^64 - 11, and the decoder asked for
//!   2^61 bytes.
//!
//! So before polars sees a file, [`footer`] parses its footer with
//! `polars-parquet-format`'s thrift reader under a byte budget that bounds what a list
//! may reserve, writes it back out with the same crate's writer, and hands polars'
//! decoder those bytes, never the file's own. polars' decoder reads the fields it
//! knows with their types from the format and skips others by the type the bytes
//! declare; two decoders can therefore read one crafted footer differently (a review
//! found a footer that the first accepts and that makes polars reserve more than
//! 100 GiB). The re-encoded footer is what polars' own writer would produce for the
//! same metadata: every list is as long as it says. And before polars decodes a row
//! group, [`check_row_group`] reads the page headers of its column chunks with the
//! same walk polars makes (an optional dictionary page, then data pages until the
//! chunk's values are all seen) and checks every count that sizes an allocation. A
//! count that does not fit is an error naming the row group, the column and the byte
//! where the page starts.
//!
//! Only the footer and the page headers are read (one small read per page; pages are
//! about a megabyte), not the data: no second pass over the file. The exception is a
//! page of delta-encoded text, whose own count lies inside its (compressed) values.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use polars::prelude::*;
use polars_parquet::parquet::compression::{decompress, Compression, DecompressionContext};
use polars_parquet::parquet::encoding::{delta_byte_array, uleb128};
use polars_parquet::parquet::read::deserialize_metadata;
use polars_parquet::parquet::schema::types::PhysicalType;
use polars_parquet_format::thrift;
use polars_parquet_format::thrift::protocol::{TCompactInputProtocol, TCompactOutputProtocol};
use polars_parquet_format::{Encoding, FileMetaData, PageHeader, PageType};
use tally_core::limits::{
    MAX_PARQUET_FOOTER_BYTES, MAX_PARQUET_PAGE_HEADER_BYTES, MAX_PARQUET_ROW_GROUP_BYTES,
};

use crate::error::IngestError;
use crate::table::contained;

/// The first read of a page header: headers are tens of bytes unless they carry
/// statistics of long strings.
const FIRST_HEADER_READ: u64 = 4_096;

/// What the thrift reader may reserve per byte of footer. It charges 8 per list entry,
/// 2 per struct and 1 per byte of a string; an entry takes at least one byte of the
/// footer, so a well-formed footer never needs more than 10 per byte (a list of
/// structs with no fields set).
const FOOTER_BUDGET_PER_BYTE: u64 = 16;

/// The metadata of the Parquet file `f` for polars: its footer must be where its last
/// 8 bytes say, at most [`MAX_PARQUET_FOOTER_BYTES`], and parse as thrift within a
/// budget of [`FOOTER_BUDGET_PER_BYTE`] per byte; polars decodes it re-encoded.
pub(crate) fn footer(file: &str, f: &mut File) -> Result<FileMetadataRef, IngestError> {
    let unreadable =
        |why: String| IngestError::file(file, format!("not a readable Parquet file: {why}"));
    let len = f.metadata().map_err(|e| IngestError::io(file, e))?.len();
    // "PAR1", the footer, its length (4 bytes, little-endian), "PAR1".
    if len < 12 {
        return Err(unreadable(format!(
            "{len} bytes, too short for a Parquet file"
        )));
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::Start(len - 8))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| IngestError::io(file, e))?;
    if &tail[4..] != b"PAR1" {
        return Err(unreadable("it does not end with PAR1".into()));
    }
    let footer_len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if footer_len > len - 12 || footer_len > MAX_PARQUET_FOOTER_BYTES {
        return Err(unreadable(format!(
            "its footer declares {footer_len} bytes; expected at most {}",
            (len - 12).min(MAX_PARQUET_FOOTER_BYTES)
        )));
    }
    let mut footer = Vec::new();
    f.seek(SeekFrom::Start(len - 8 - footer_len))
        .and_then(|_| (&mut *f).take(footer_len).read_to_end(&mut footer))
        .map_err(|e| IngestError::io(file, e))?;
    let budget = footer.len() as u64 * FOOTER_BUDGET_PER_BYTE;
    let parsed = contained(file, || {
        let mut rest: &[u8] = &footer;
        let mut protocol = TCompactInputProtocol::new(&mut rest, budget as usize);
        Ok(FileMetaData::read_from_in_protocol(&mut protocol))
    })?;
    let parsed = parsed.map_err(|e| match e {
        thrift::Error::Protocol(p) if p.kind == thrift::ProtocolErrorKind::SizeLimit => {
            unreadable("its footer declares more entries than it holds".into())
        }
        e => unreadable(format!("its footer is not valid thrift ({e})")),
    })?;
    let mut canonical = Vec::with_capacity(footer.len());
    parsed
        .write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut canonical))
        .map_err(|e| unreadable(format!("its footer cannot be written back ({e})")))?;
    let metadata = contained(file, || {
        deserialize_metadata(canonical.into()).map_err(|e| e.to_string())
    })?;
    Ok(Arc::new(metadata))
}

/// Checks the page headers of the column chunks of `columns` in row group `group`
/// (counted from 0) of `file`, whose metadata polars has read.
pub(crate) fn check_row_group(
    file: &str,
    f: &mut File,
    metadata: &FileMetadata,
    group: usize,
    columns: &[String],
) -> Result<(), IngestError> {
    let file_len = f.metadata().map_err(|e| IngestError::io(file, e))?.len();
    let g = &metadata.row_groups[group];
    let rows = g.num_rows() as u64;
    for name in columns {
        let Some(chunks) = g.columns_under_root_iter(name) else {
            // A missing column is reported by the reader, which names it.
            continue;
        };
        for chunk in chunks {
            let bad = |what: String| {
                IngestError::file(
                    file,
                    format!(
                        "not a readable Parquet file: row group {group} (counting from 0), \
                         column {name:?}: {what}"
                    ),
                )
            };
            // byte_range() adds offset and length with an unwrap: contained.
            let range = contained(file, || Ok(chunk.byte_range()))?;
            if range.end > file_len {
                return Err(bad(format!(
                    "its pages lie at bytes {}..{}, past the end of the file ({file_len} bytes)",
                    range.start, range.end
                )));
            }
            let values = chunk.num_values();
            if u64::try_from(values) != Ok(rows) {
                return Err(bad(format!(
                    "the column chunk declares {values} values for a row group of {rows} rows"
                )));
            }
            let descriptor = &chunk.descriptor().descriptor;
            let values = Values {
                compression: chunk.compression(),
                optional: descriptor.max_def_level > 0,
                entry_bits: match descriptor.primitive_type.physical_type {
                    PhysicalType::Boolean => 1,
                    PhysicalType::Int32 | PhysicalType::Float => 32,
                    PhysicalType::Int64 | PhysicalType::Double => 64,
                    PhysicalType::Int96 => 96,
                    // A length (4 bytes) before each string.
                    PhysicalType::ByteArray => 32,
                    PhysicalType::FixedLenByteArray(n) => (n as u64).max(1) * 8,
                },
            };
            walk_pages(file, f, range, rows, &values, &bad)?;
        }
    }
    Ok(())
}

/// How a column chunk's pages hold their values.
struct Values {
    compression: Compression,
    /// Whether its pages carry definition levels (a column that may be null).
    optional: bool,
    /// The least room one value takes in a dictionary page, in bits.
    entry_bits: u64,
}

/// Walks the pages of one column chunk at `range` holding `rows` values.
fn walk_pages(
    file: &str,
    f: &mut File,
    range: std::ops::Range<u64>,
    rows: u64,
    values: &Values,
    bad: &impl Fn(String) -> IngestError,
) -> Result<(), IngestError> {
    let mut pos = range.start;
    let mut seen = 0u64;
    let mut first = true;
    while seen < rows {
        if pos >= range.end {
            return Err(bad(format!(
                "its pages hold {seen} values where the column chunk declares {rows}"
            )));
        }
        let (header, header_len) = read_header(file, f, pos, range.end, bad)?;
        let at = |what: String| bad(format!("the page at byte {pos} {what}"));
        let compressed = u64::try_from(header.compressed_page_size).map_err(|_| {
            at(format!(
                "declares a compressed size of {}",
                header.compressed_page_size
            ))
        })?;
        let body = pos + header_len;
        if body + compressed > range.end {
            return Err(at(format!(
                "declares {compressed} bytes, past the end of its column chunk (byte {})",
                range.end
            )));
        }
        if !(0..=MAX_PARQUET_ROW_GROUP_BYTES).contains(&i64::from(header.uncompressed_page_size)) {
            return Err(at(format!(
                "declares an uncompressed size of {} bytes; expected 0 to {MAX_PARQUET_ROW_GROUP_BYTES}",
                header.uncompressed_page_size
            )));
        }
        let left = rows - seen;
        // A count of values in a page: 0 to what is left of the chunk.
        let count = |what: &str, n: i32, most: u64| {
            u64::try_from(n)
                .ok()
                .filter(|&n| n <= most)
                .ok_or_else(|| at(format!("declares {n} {what}; expected 0 to {most}")))
        };
        match header.type_ {
            PageType::DICTIONARY_PAGE if first => {
                let Some(d) = &header.dictionary_page_header else {
                    return Err(at("is a dictionary page without its header".into()));
                };
                // Entries are stored plain, each taking at least `entry_bits`; polars
                // reserves room for them all (16 bytes each for text) before decoding.
                // Not bounded by the chunk's rows: a writer may store a whole Arrow
                // dictionary, entries unused in this chunk included.
                let bits = u64::try_from(header.uncompressed_page_size).unwrap_or(0) * 8;
                count("dictionary entries", d.num_values, bits / values.entry_bits)?;
            }
            PageType::DATA_PAGE => {
                let Some(d) = &header.data_page_header else {
                    return Err(at("is a data page without its header".into()));
                };
                let n = count("values", d.num_values, left)?;
                if is_delta_text(d.encoding) {
                    let page = read_values(file, f, body, &header, values, Layout::V1, &at)?;
                    delta_count(file, d.encoding, &page, n, &at)?;
                }
                seen += n;
            }
            PageType::DATA_PAGE_V2 => {
                let Some(d) = &header.data_page_header_v2 else {
                    return Err(at("is a data page without its header".into()));
                };
                let n = count("values", d.num_values, left)?;
                count("nulls", d.num_nulls, n)?;
                count("rows", d.num_rows, n)?;
                let levels = count(
                    "bytes of definition levels",
                    d.definition_levels_byte_length,
                    compressed,
                )? + count(
                    "bytes of repetition levels",
                    d.repetition_levels_byte_length,
                    compressed,
                )?;
                if levels > compressed {
                    return Err(at(format!(
                        "declares {levels} bytes of levels in a page of {compressed}"
                    )));
                }
                if is_delta_text(d.encoding) {
                    let layout = Layout::V2 {
                        levels,
                        compressed: d.is_compressed.unwrap_or(true),
                    };
                    let page = read_values(file, f, body, &header, values, layout, &at)?;
                    delta_count(file, d.encoding, &page, n, &at)?;
                }
                seen += n;
            }
            other => {
                return Err(at(format!(
                    "is of type {}; expected {}data pages",
                    other.0,
                    if first { "a dictionary page or " } else { "" }
                )));
            }
        }
        first = false;
        pos = body + compressed;
    }
    Ok(())
}

/// Whether a page of this encoding stores text as delta-encoded lengths, whose own
/// header says how many values there are.
fn is_delta_text(encoding: Encoding) -> bool {
    encoding == Encoding::DELTA_LENGTH_BYTE_ARRAY || encoding == Encoding::DELTA_BYTE_ARRAY
}

/// Where a data page keeps its levels.
#[derive(Clone, Copy)]
enum Layout {
    /// Compressed with the values; definition levels (of an optional column) first,
    /// after their length.
    V1,
    /// `levels` bytes before the values, never compressed; the values compressed or
    /// not as the header says.
    V2 { levels: u64, compressed: bool },
}

/// The values section of the data page whose body starts at `body`, decompressed.
fn read_values(
    file: &str,
    f: &mut File,
    body: u64,
    header: &PageHeader,
    values: &Values,
    layout: Layout,
    at: &impl Fn(String) -> IngestError,
) -> Result<Vec<u8>, IngestError> {
    // Both sizes were checked by the caller: inside the chunk, at most 1 GiB.
    let size = header.compressed_page_size as usize;
    let mut raw = vec![0u8; size];
    f.seek(SeekFrom::Start(body))
        .and_then(|_| f.read_exact(&mut raw))
        .map_err(|e| IngestError::io(file, e))?;
    let (levels, compressed_values) = match layout {
        Layout::V1 => (0, true),
        Layout::V2 { levels, compressed } => (levels as usize, compressed),
    };
    let mut page = if compressed_values && values.compression != Compression::Uncompressed {
        let out_size = (header.uncompressed_page_size as usize).saturating_sub(levels);
        let mut out = vec![0u8; out_size];
        contained(file, || {
            decompress(
                values.compression,
                &raw[levels..],
                &mut out,
                &mut DecompressionContext::Unset,
            )
            .map_err(|e| e.to_string())
        })
        .map_err(|e| at(format!("cannot be decompressed ({e})")))?;
        out
    } else {
        raw.split_off(levels)
    };
    if matches!(layout, Layout::V1) && values.optional {
        // The definition levels lead the page, after their length (4 bytes).
        let len = page
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .filter(|&len| len <= page.len() - 4)
            .ok_or_else(|| at("has definition levels longer than the page".into()))?;
        page.drain(..4 + len);
    }
    Ok(page)
}

/// Checks that the count a delta encoding's header declares (polars reserves room for
/// that many) is at most the page's `n` values.
fn delta_count(
    file: &str,
    encoding: Encoding,
    page: &[u8],
    n: u64,
    at: &impl Fn(String) -> IngestError,
) -> Result<(), IngestError> {
    let declared = if encoding == Encoding::DELTA_BYTE_ARRAY {
        // polars' own decoder of the two headers; it walks the first stream's
        // blocks without allocating.
        contained(file, || {
            delta_byte_array::Decoder::try_new(page)
                .map(|d| d.len() as u64)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| at(format!("has an unreadable delta encoding ({e})")))?
    } else {
        // Block size, miniblocks per block, then the count.
        let mut rest = page;
        let mut next = || {
            let (v, used) = uleb128::decode(rest);
            rest = &rest[used.min(rest.len())..];
            (used > 0).then_some(v)
        };
        let (_, _, count) = (next(), next(), next());
        count.ok_or_else(|| at("has an unreadable delta encoding".into()))?
    };
    if declared > n {
        return Err(at(format!(
            "has a delta encoding declaring {declared} values in a page of {n}"
        )));
    }
    Ok(())
}

/// The page header at `pos` and its length in bytes: read with a small window, then
/// larger ones up to [`MAX_PARQUET_PAGE_HEADER_BYTES`] if it is longer.
fn read_header(
    file: &str,
    f: &mut File,
    pos: u64,
    end: u64,
    bad: &impl Fn(String) -> IngestError,
) -> Result<(PageHeader, u64), IngestError> {
    let most = (end - pos).min(MAX_PARQUET_PAGE_HEADER_BYTES);
    let mut window = FIRST_HEADER_READ.min(most);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.seek(SeekFrom::Start(pos))
            .and_then(|_| (&mut *f).take(window).read_to_end(&mut buf))
            .map_err(|e| IngestError::io(file, e))?;
        let mut rest: &[u8] = &buf;
        // The thrift reader is polars' own; like the rest of polars, contained.
        let parsed = contained(file, || {
            let mut protocol = TCompactInputProtocol::new(&mut rest, buf.len());
            Ok(PageHeader::read_from_in_protocol(&mut protocol))
        })?;
        match parsed {
            Ok(header) => return Ok((header, (buf.len() - rest.len()) as u64)),
            Err(_) if window < most => window = (window * 16).min(most),
            Err(e) => {
                return Err(bad(format!(
                    "the page header at byte {pos} is not readable ({e})"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars_parquet_format::{DataPageHeader, DataPageHeaderV2, DictionaryPageHeader, Encoding};

    /// A page: its header, with `body` bytes after it.
    fn page(header: PageHeader) -> (PageHeader, usize) {
        let body = header.compressed_page_size.max(0) as usize;
        (header, body)
    }
    fn v1(values: i32, bytes: i32) -> PageHeader {
        let d = DataPageHeader::new(values, Encoding::PLAIN, Encoding::RLE, Encoding::RLE, None);
        PageHeader::new(PageType::DATA_PAGE, bytes, bytes, None, d, None, None, None)
    }
    fn v2(values: i32, nulls: i32, rows: i32, levels: (i32, i32), bytes: i32) -> PageHeader {
        let d = DataPageHeaderV2::new(
            values,
            nulls,
            rows,
            Encoding::PLAIN,
            levels.0,
            levels.1,
            None,
            None,
        );
        PageHeader::new(
            PageType::DATA_PAGE_V2,
            bytes,
            bytes,
            None,
            None,
            None,
            None,
            d,
        )
    }
    fn dict(values: i32) -> PageHeader {
        let d = DictionaryPageHeader::new(values, Encoding::PLAIN, None);
        PageHeader::new(PageType::DICTIONARY_PAGE, 8, 8, None, None, None, d, None)
    }

    /// Writes the pages as one column chunk after 4 bytes of file header ("PAR1") and
    /// walks it for `rows` values; the error's text, or "ok".
    fn walk(pages: &[(PageHeader, usize)], rows: u64) -> String {
        walk_entries_of(pages, rows, 8)
    }

    /// [`walk`] for a column whose dictionary entries take `entry_bits` each.
    fn walk_entries_of(pages: &[(PageHeader, usize)], rows: u64, entry_bits: u64) -> String {
        let mut bytes = b"PAR1".to_vec();
        for (header, body) in pages {
            let mut out = TCompactOutputProtocol::new(&mut bytes);
            header.write_to_out_protocol(&mut out).unwrap();
            bytes.extend(std::iter::repeat_n(0u8, *body));
        }
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        let bad = |what: String| IngestError::file("t.parquet", what);
        let values = Values {
            compression: Compression::Uncompressed,
            optional: false,
            entry_bits,
        };
        match walk_pages(
            "t.parquet",
            &mut f,
            4..bytes.len() as u64,
            rows,
            &values,
            &bad,
        ) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn well_formed_chunks_pass() {
        assert_eq!(walk(&[page(v1(10, 80))], 10), "ok");
        assert_eq!(
            walk(&[page(dict(3)), page(v1(6, 8)), page(v1(4, 8))], 10),
            "ok"
        );
        // Entries of 32 bits (strings' lengths, INT32): 8 bytes hold at most 2.
        assert_eq!(
            walk_entries_of(&[page(dict(2)), page(v1(10, 8))], 10, 32),
            "ok"
        );
        assert!(walk_entries_of(&[page(dict(3)), page(v1(10, 8))], 10, 32)
            .contains("declares 3 dictionary entries; expected 0 to 2"));
        // More dictionary entries than rows: a whole Arrow dictionary.
        assert_eq!(walk(&[page(dict(8)), page(v1(2, 8))], 2), "ok");
        assert_eq!(walk(&[page(v2(10, 2, 10, (2, 0), 40))], 10), "ok");
        assert_eq!(walk(&[], 0), "ok");
    }

    #[test]
    fn every_count_that_sizes_an_allocation_is_checked() {
        // The fuzzer's abort: a data page declaring a negative number of values.
        assert_eq!(
            walk(&[page(v1(-11, 8))], 14),
            "t.parquet: the page at byte 4 declares -11 values; expected 0 to 14"
        );
        // The pages, the chunk's rows, what the error says.
        type Case<'a> = (&'a [(PageHeader, usize)], u64, &'a str);
        let cases: [Case; 12] = [
            (
                &[page(v1(11, 8))],
                10,
                "declares 11 values; expected 0 to 10",
            ),
            (
                &[page(v1(6, 8)), page(v1(5, 8))],
                10,
                "declares 5 values; expected 0 to 4",
            ),
            (
                &[page(v1(6, 8))],
                10,
                "its pages hold 6 values where the column chunk declares 10",
            ),
            (
                &[page(dict(9)), page(v1(10, 8))],
                10,
                "declares 9 dictionary entries; expected 0 to 8",
            ),
            (&[page(dict(-1))], 10, "declares -1 dictionary entries"),
            (
                &[page(v1(5, 8)), page(dict(3))],
                10,
                "is of type 2; expected data pages",
            ),
            (
                &[page(v2(10, 11, 10, (0, 0), 8))],
                10,
                "declares 11 nulls; expected 0 to 10",
            ),
            (&[page(v2(10, 0, -1, (0, 0), 8))], 10, "declares -1 rows"),
            (
                &[page(v2(10, 0, 10, (-4, 0), 8))],
                10,
                "declares -4 bytes of definition levels",
            ),
            (
                &[page(v2(10, 0, 10, (5, 5), 8))],
                10,
                "declares 10 bytes of levels in a page of 8",
            ),
            (
                &[(v1(10, 100), 10)],
                10,
                "declares 100 bytes, past the end of its column chunk",
            ),
            (&[(v1(10, -1), 0)], 10, "declares a compressed size of -1"),
        ];
        for (pages, rows, expected) in cases {
            let e = walk(pages, rows);
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
        let mut huge = v1(10, 8);
        huge.uncompressed_page_size = i32::MAX;
        assert!(walk(&[page(huge)], 10).contains("declares an uncompressed size of 2147483647"));
        let mut headless = v1(10, 8);
        headless.data_page_header = None;
        assert!(walk(&[page(headless)], 10).contains("is a data page without its header"));
        let mut index = v1(10, 8);
        index.type_ = PageType::INDEX_PAGE;
        assert!(walk(&[page(index)], 10)
            .contains("is of type 1; expected a dictionary page or data pages"));
    }

    /// `footer` as a Parquet file's footer, after "PAR1" and `body`; the error, or "ok".
    fn footer_check(body: &[u8], meta: &[u8], declared: Option<u32>) -> String {
        let mut bytes = b"PAR1".to_vec();
        bytes.extend(body);
        bytes.extend(meta);
        let len = declared.unwrap_or(meta.len() as u32);
        bytes.extend(len.to_le_bytes());
        bytes.extend(b"PAR1");
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        match footer("t.parquet", &mut f) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn footers_are_checked_before_polars_reads_them() {
        // A real file's footer (written by polars), as the format crate reads it.
        let (body, real) = {
            let mut df = polars::df!("device_id" => ["d1", "d2"], "ts" => [0i64, 300]).unwrap();
            let mut file = Vec::new();
            ParquetWriter::new(&mut file).finish(&mut df).unwrap();
            let n = file.len();
            let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
            let mut rest = &file[n - 8 - len..n - 8];
            let mut protocol = TCompactInputProtocol::new(&mut rest, usize::MAX);
            let meta = FileMetaData::read_from_in_protocol(&mut protocol).unwrap();
            (file[4..n - 8 - len].to_vec(), meta)
        };
        let encode = |meta: &FileMetaData| {
            let mut out = Vec::new();
            meta.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut out))
                .unwrap();
            out
        };
        assert_eq!(footer_check(&body, &encode(&real), None), "ok");
        // The review's footer: fields 1 to 4, then `59 08 | 09 08 FC FF FF FF FF 07 |
        // 00`. The format crate reads field 9 as 8 bytes of binary. polars' decoder
        // skips field 9 as an empty list, then reads a long-form field 4: a list of
        // 2^31 - 1 row groups, for which it reserves more than 100 GiB at once.
        // Decoded re-encoded, it is field 9 as binary, which polars skips.
        let mut four = real.clone();
        (four.key_value_metadata, four.created_by, four.column_orders) = (None, None, None);
        let mut disagree = encode(&four);
        assert_eq!(disagree.pop(), Some(0), "the stop byte");
        disagree.extend([
            0x59, 0x08, 0x09, 0x08, 0xfc, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00,
        ]);
        assert_eq!(footer_check(&body, &disagree, None), "ok");
        let minimal = encode(&FileMetaData::new(
            1,
            vec![],
            0,
            vec![],
            None,
            None,
            None,
            None,
            None,
        ));
        let unreadable = "t.parquet: not a readable Parquet file: ";
        // Field 2 (the schema, a list of structs) declaring 2^28 entries in 7 bytes:
        // polars reserved room for them all before reading one.
        let list = [0x29, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(
            footer_check(b"", &list, None),
            format!("{unreadable}its footer declares more entries than it holds")
        );
        let e = footer_check(b"", &[0xff; 20], None);
        assert!(
            e.starts_with(&format!("{unreadable}its footer is not valid thrift")),
            "{e}"
        );
        assert_eq!(
            footer_check(b"", &minimal, Some(1000)),
            format!(
                "{unreadable}its footer declares 1000 bytes; expected at most {}",
                minimal.len()
            )
        );
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"PAR1PAR1").unwrap();
        assert_eq!(
            footer("t.parquet", &mut f).unwrap_err().to_string(),
            format!("{unreadable}8 bytes, too short for a Parquet file")
        );
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"device_id,ts\nd1,0\n").unwrap();
        assert_eq!(
            footer("t.parquet", &mut f).unwrap_err().to_string(),
            format!("{unreadable}it does not end with PAR1")
        );
    }

    fn uleb(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A delta-encoded stream header: one block of `count` values of width 0 (which
    /// costs polars' validation walk a few bytes whatever the count).
    fn delta_stream(count: u64) -> Vec<u8> {
        let block = count.div_ceil(128).max(1) * 128;
        let mut out = [uleb(block), uleb(1), uleb(count), vec![0]].concat();
        out.extend([0, 0]); // the block's min delta (zigzag 0) and its miniblock's width
        out
    }

    /// A V1 data page of `values` values with `payload` as its (uncompressed) body,
    /// walked as one chunk of `rows`, optional or not.
    fn walk_delta(encoding: Encoding, values: i32, payload: &[u8], optional: bool) -> String {
        let mut d = v1(values, payload.len() as i32);
        d.data_page_header.as_mut().unwrap().encoding = encoding;
        let mut bytes = b"PAR1".to_vec();
        d.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut bytes))
            .unwrap();
        bytes.extend(payload);
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        let bad = |what: String| IngestError::file("t.parquet", what);
        let chunk = Values {
            compression: Compression::Uncompressed,
            optional,
            entry_bits: 8,
        };
        match walk_pages(
            "t.parquet",
            &mut f,
            4..bytes.len() as u64,
            values as u64,
            &chunk,
            &bad,
        ) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    /// polars reserves room for as many strings as a delta encoding's own header
    /// declares: 2^37 lengths from a page of a few bytes is a terabyte (the review's).
    #[test]
    fn delta_encoded_text_declares_no_more_values_than_its_page() {
        let length = Encoding::DELTA_LENGTH_BYTE_ARRAY;
        assert_eq!(walk_delta(length, 10, &delta_stream(10), false), "ok");
        assert_eq!(
            walk_delta(length, 10, &delta_stream(1 << 37), false),
            "t.parquet: the page at byte 4 has a delta encoding declaring 137438953472 values \
             in a page of 10"
        );
        // An optional column: the definition levels come first, after their length.
        let levels = [vec![2, 0, 0, 0, 0x14, 0x01], delta_stream(1 << 37)].concat();
        assert!(walk_delta(length, 10, &levels, true).contains("declaring 137438953472"));
        let levels = [vec![2, 0, 0, 0, 0x14, 0x01], delta_stream(10)].concat();
        assert_eq!(walk_delta(length, 10, &levels, true), "ok");
        assert!(walk_delta(length, 10, &[9, 9, 9, 0xff], true).contains("definition levels"));
        // Prefix lengths, then suffix lengths.
        let prefix = Encoding::DELTA_BYTE_ARRAY;
        let both = |n| [delta_stream(n), delta_stream(n)].concat();
        assert_eq!(walk_delta(prefix, 10, &both(10), false), "ok");
        assert!(
            walk_delta(prefix, 10, &both(1 << 37), false).contains("declaring 137438953472"),
            "{}",
            walk_delta(prefix, 10, &both(1 << 37), false)
        );
    }

    #[test]
    fn an_unreadable_header_names_its_byte() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"PAR1\xff\xff\xff\xff\xff\xff").unwrap();
        let bad = |what: String| IngestError::file("t.parquet", what);
        let values = Values {
            compression: Compression::Uncompressed,
            optional: false,
            entry_bits: 8,
        };
        let e = walk_pages("t.parquet", &mut f, 4..10, 1, &values, &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.parquet: the page header at byte 4 is not readable"),
            "{e}"
        );
    }
}
