//! One input value, whichever format it came from, and the SPEC 2 checks of each
//! column kind. CSV gives text cells; Parquet gives text or natively typed cells.

use tally_core::value::{
    self, excerpt, format_ts, parse_decimal, parse_gpu_count, parse_timestamp, to_scaled,
    ValueError, DEC_SCALE,
};

/// Largest Unix-seconds value: 11 digits (SPEC 2.1).
const MAX_UNIX_SECONDS: i128 = 99_999_999_999;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Text(&'a str),
    /// A Parquet integer column.
    Int(i128),
    /// A Parquet timestamp column, floored to Unix seconds.
    Time(i64),
    /// A Parquet DECIMAL column: mantissa and scale (at most 9).
    Dec(i128, u32),
    Null,
    /// CSV bytes that are not UTF-8.
    NotUtf8,
}

impl Cell<'_> {
    /// The value as text, for `raw` and error messages.
    pub fn render(&self) -> String {
        match *self {
            Cell::Text(s) => s.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Time(t) => format_ts(t),
            Cell::Dec(m, s) => rust_decimal::Decimal::try_from_i128_with_scale(m, s)
                .map_or_else(|_| format!("{m}e-{s}"), |d| d.to_string()),
            Cell::Null => String::new(),
            Cell::NotUtf8 => "<not UTF-8>".to_string(),
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
            Cell::NotUtf8 => "bytes that are not UTF-8".to_string(),
            c => format!("{:?}", excerpt(&c.render(), 64)),
        };
        RowError {
            column,
            message: format!("{e}; got {got}"),
        }
    }

    fn text(&self, column: usize, e: ValueError) -> Result<&'a str, RowError> {
        match self.cells[column] {
            Cell::Text(s) => Ok(s),
            Cell::Null => Err(self.bad(column, ValueError::Null)),
            _ => Err(self.bad(column, e)),
        }
    }

    pub fn identifier(&self, column: usize) -> Result<&'a str, RowError> {
        let s = self.text(column, ValueError::Identifier)?;
        value::parse_identifier(s).map_err(|e| self.bad(column, e))
    }

    pub fn timestamp(&self, column: usize) -> Result<i64, RowError> {
        let e = ValueError::Timestamp;
        match self.cells[column] {
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
            Cell::Text(s) => {
                return parse_decimal(s)
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
            Cell::Text(s) => parse_gpu_count(s).map_err(|e| self.bad(column, e)),
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

    /// Free text (SPEC 7): any string; a null is empty.
    pub fn note(&self, column: usize) -> Result<&'a str, RowError> {
        match self.cells[column] {
            Cell::Text(s) => Ok(s),
            Cell::Null => Ok(""),
            _ => Err(RowError {
                column,
                message: "expected text".into(),
            }),
        }
    }
}
