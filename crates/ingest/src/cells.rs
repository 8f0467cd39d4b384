//! One input value, whichever format it came from, and the SPEC 2 checks of each
//! column kind. CSV gives raw bytes, checked for UTF-8 only where text is needed;
//! Parquet gives text or natively typed cells.

use tally_core::limits::MAX_NOTE_CHARS;
use tally_core::value::{
    self, excerpt, format_ts, parse_decimal, parse_gpu_count, parse_timestamp,
    parse_timestamp_bytes, to_scaled, ValueError, DEC_SCALE,
};

/// Largest Unix-seconds value: 11 digits (SPEC 2.1).
const MAX_UNIX_SECONDS: i128 = 99_999_999_999;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A CSV field as it is in the file, not yet known to be UTF-8.
    Bytes(&'a [u8]),
    /// A Parquet string.
    Text(&'a str),
    /// A Parquet integer column.
    Int(i128),
    /// A Parquet timestamp column, floored to Unix seconds.
    Time(i64),
    /// A Parquet DECIMAL column: mantissa and scale (at most 9).
    Dec(i128, u32),
    Null,
}

/// The registry's device ids and their positions in it (dictionary encoding: every
/// event row's id becomes a `u32` once, here). Every event row is looked up, so this is
/// built for speed: the ids sit in one contiguous arena in registry order, the map
/// uses a fast hasher (it is never iterated, so its order does not matter), and a
/// lookup first tries the device after the one the same worker found last, which
/// logs written device by device (or minute by minute in device order) hit almost
/// always. A hit is an exact byte comparison, so the hint changes only the speed.
pub struct DeviceIndex {
    arena: Vec<u8>,
    /// `ends[i]`: where id `i` ends in the arena.
    ends: Vec<usize>,
    /// Positions, found by the hash of their id.
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

impl DeviceIndex {
    /// `ids` in registry order.
    pub fn new<'a>(ids: impl Iterator<Item = &'a str>) -> DeviceIndex {
        let mut arena = Vec::new();
        let mut ends = Vec::new();
        for id in ids {
            arena.extend_from_slice(id.as_bytes());
            ends.push(arena.len());
        }
        let mut index = DeviceIndex {
            arena,
            ends,
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::default(),
        };
        let mut table = hashbrown::HashTable::with_capacity(index.ends.len());
        for i in 0..index.ends.len() as u32 {
            table.insert_unique(index.hash(index.id(i)), i, |&j| index.hash(index.id(j)));
        }
        index.table = table;
        index
    }

    fn id(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(bytes)
    }

    /// The position of `bytes` in the registry; `hint` is the caller's last find.
    pub fn find(&self, bytes: &[u8], hint: &mut u32) -> Option<u32> {
        let next = hint.wrapping_add(1);
        if (next as usize) < self.ends.len() && self.id(next) == bytes {
            *hint = next;
            return Some(next);
        }
        let found = *self
            .table
            .find(self.hash(bytes), |&i| self.id(i) == bytes)?;
        *hint = found;
        Some(found)
    }
}

impl Cell<'_> {
    /// The value as text, for `raw` and error messages.
    pub fn render(&self) -> String {
        match *self {
            Cell::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Cell::Text(s) => s.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Time(t) => format_ts(t),
            Cell::Dec(m, s) => rust_decimal::Decimal::try_from_i128_with_scale(m, s)
                .map_or_else(|_| format!("{m}e-{s}"), |d| d.to_string()),
            Cell::Null => String::new(),
        }
    }
}

/// A bad value: which column of the table, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub column: usize,
    pub message: String,
}

/// The cells of one record, in the table's column order.
pub struct Row<'r, 'a> {
    pub cells: &'r [Cell<'a>],
}

impl<'a> Row<'_, 'a> {
    fn bad(&self, column: usize, e: ValueError) -> RowError {
        let got = match self.cells[column] {
            Cell::Null => "null".to_string(),
            Cell::Bytes(b) if std::str::from_utf8(b).is_err() => {
                "bytes that are not UTF-8".to_string()
            }
            c => format!("{:?}", excerpt(&c.render(), 64)),
        };
        RowError {
            column,
            message: format!("{e}; got {got}"),
        }
    }

    fn text(&self, column: usize, e: ValueError) -> Result<&'a str, RowError> {
        match self.cells[column] {
            Cell::Bytes(b) => std::str::from_utf8(b).map_err(|_| self.bad(column, e)),
            Cell::Text(s) => Ok(s),
            Cell::Null => Err(self.bad(column, ValueError::Null)),
            _ => Err(self.bad(column, e)),
        }
    }

    /// A `device_id` that must be in the registry, as its position there. The lookup
    /// comes first: an id found in the registry is valid, since the registry is.
    pub fn device(
        &self,
        column: usize,
        index: &DeviceIndex,
        hint: &mut u32,
    ) -> Result<u32, RowError> {
        let bytes = match self.cells[column] {
            Cell::Bytes(b) => b,
            Cell::Text(s) => s.as_bytes(),
            _ => &[],
        };
        if let Some(i) = index.find(bytes, hint) {
            return Ok(i);
        }
        let id = self.identifier(column)?;
        Err(RowError {
            column,
            message: format!("{:?} is not in the registry", excerpt(id, 64)),
        })
    }

    pub fn identifier(&self, column: usize) -> Result<&'a str, RowError> {
        let s = self.text(column, ValueError::Identifier)?;
        value::parse_identifier(s).map_err(|e| self.bad(column, e))
    }

    pub fn timestamp(&self, column: usize) -> Result<i64, RowError> {
        let e = ValueError::Timestamp;
        match self.cells[column] {
            Cell::Bytes(b) => parse_timestamp_bytes(b).map_err(|e| self.bad(column, e)),
            Cell::Text(s) => parse_timestamp(s).map_err(|e| self.bad(column, e)),
            Cell::Time(t) if (value::MIN_TIMESTAMP..=value::MAX_TIMESTAMP).contains(&t) => Ok(t),
            Cell::Int(i) if (0..=MAX_UNIX_SECONDS).contains(&i) => Ok(i as i64),
            Cell::Null => Err(self.bad(column, ValueError::Null)),
            _ => Err(self.bad(column, e)),
        }
    }

    /// A SPEC 2.1 decimal as an integer at scale 9.
    pub fn decimal(&self, column: usize) -> Result<i128, RowError> {
        let e = ValueError::Decimal;
        let scaled = match self.cells[column] {
            Cell::Bytes(_) | Cell::Text(_) => {
                return parse_decimal(self.text(column, e)?)
                    .map(to_scaled)
                    .map_err(|e| self.bad(column, e))
            }
            Cell::Int(i) => i.checked_mul(10i128.pow(DEC_SCALE)),
            Cell::Dec(m, s) if s <= DEC_SCALE => m.checked_mul(10i128.pow(DEC_SCALE - s)),
            Cell::Null => return Err(self.bad(column, ValueError::Null)),
            _ => None,
        };
        scaled
            .filter(|&n| value::scaled_in_domain(n))
            .ok_or_else(|| self.bad(column, e))
    }

    pub fn gpu_count(&self, column: usize) -> Result<u32, RowError> {
        match self.cells[column] {
            Cell::Bytes(_) | Cell::Text(_) => {
                parse_gpu_count(self.text(column, ValueError::GpuCount)?)
                    .map_err(|e| self.bad(column, e))
            }
            Cell::Int(i) if (1..=i128::from(tally_core::limits::MAX_GPU_COUNT)).contains(&i) => {
                Ok(i as u32)
            }
            Cell::Null => Err(self.bad(column, ValueError::Null)),
            _ => Err(self.bad(column, ValueError::GpuCount)),
        }
    }

    pub fn ip(&self, column: usize) -> Result<std::net::IpAddr, RowError> {
        let s = self.text(column, ValueError::Ip)?;
        value::parse_ip(s).map_err(|e| self.bad(column, e))
    }

    pub fn action(&self, column: usize) -> Result<tally_core::Action, RowError> {
        let s = self.text(column, ValueError::Action)?;
        tally_core::Action::parse(s).ok_or_else(|| self.bad(column, ValueError::Action))
    }

    /// Free text (SPEC 7): printable text, tabs and line breaks, at most
    /// [`MAX_NOTE_CHARS`] characters; a null is empty.
    pub fn note(&self, column: usize) -> Result<&'a str, RowError> {
        match self.cells[column] {
            Cell::Bytes(_) | Cell::Text(_) => {
                let note = self
                    .text(column, ValueError::Identifier)
                    .map_err(|_| RowError {
                        column,
                        message: "expected UTF-8 text".into(),
                    })?;
                if note.chars().count() > MAX_NOTE_CHARS {
                    return Err(RowError {
                        column,
                        message: format!("expected at most {MAX_NOTE_CHARS} characters of text"),
                    });
                }
                // A note is published in exclusions.csv, which people `cat`: a control
                // character (an ESC sequence, a lone CR that rewrites the line) would
                // act on their terminal. Tabs and line breaks (LF, CRLF) are text.
                let mut chars = note.chars().peekable();
                while let Some(c) = chars.next() {
                    let line_break = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
                    if c.is_control() && c != '\t' && !line_break {
                        return Err(RowError {
                            column,
                            message: format!(
                                "expected printable text (tabs and line breaks allowed); \
                                 found the control character {c:?}"
                            ),
                        });
                    }
                }
                Ok(note)
            }
            Cell::Null => Ok(""),
            _ => Err(RowError {
                column,
                message: "expected text".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_index_finds_every_id_and_only_those_whatever_the_hint() {
        let ids = ["a", "ab", "b", "d-0001", "d-0002", "d-0010", "zz"];
        let index = DeviceIndex::new(ids.iter().copied());
        for hint_start in [0, 1, 5, 6, u32::MAX] {
            let mut hint = hint_start;
            // In order, backwards, and jumping about.
            let order = [0, 1, 2, 3, 4, 5, 6, 6, 5, 3, 0, 4, 4, 2];
            for &i in &order {
                assert_eq!(index.find(ids[i].as_bytes(), &mut hint), Some(i as u32));
                assert_eq!(hint, i as u32);
            }
            for missing in ["", "A", "d-000", "d-00010", "zzz", "a\0"] {
                let before = hint;
                assert_eq!(index.find(missing.as_bytes(), &mut hint), None);
                assert_eq!(hint, before);
            }
        }
        let empty = DeviceIndex::new(std::iter::empty());
        assert_eq!(empty.find(b"a", &mut 0), None);
    }
}
