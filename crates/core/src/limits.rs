//! Every bound tally puts on its inputs, in one place, each with the reason for it.
//!
//! The bounds are checked where data enters (rules, `epoch.toml`, the registry), so
//! that the arithmetic of the scoring core provably cannot overflow: with them, every
//! intermediate product fits in 256 bits and every point value in `rust_decimal`'s
//! 96-bit mantissa (see `exact.rs`). A run past a bound fails with an error naming it.

/// Longest identifier (SPEC 2.1).
pub const MAX_ID_LEN: usize = 128;

/// Most devices in one registry. The seeded network claimed 200,000 GPUs; five times
/// that leaves room while keeping the sum of all points inside `rust_decimal`.
pub const MAX_DEVICES: usize = 1_000_000;

/// Longest epoch: one year and a day. Campaign epochs are weeks; the bound keeps slot
/// counts (and later, per-device slot bitmaps) small.
pub const MAX_EPOCH_SECONDS: i64 = 366 * 86_400;

/// Shortest and longest slot a rules file may define. At least a minute, because
/// heartbeats arrive about once a minute; at most a day.
pub const MIN_SLOT_SECONDS: i64 = 60;
pub const MAX_SLOT_SECONDS: i64 = 86_400;

/// Largest `gpu_count` of a device (SPEC 2.2).
pub const MAX_GPU_COUNT: u32 = 64;

/// Most decimal places of any decimal in a rules file. Rule values are printed with
/// six places (multipliers, ratios) and six keeps every product bounded.
pub const MAX_RULE_PLACES: u32 = 6;

/// Largest `base` (points per slot per GPU) and `rental` (points per rented hour per GPU).
pub const MAX_RULE_POINTS: i64 = 1_000_000;

/// Largest bandwidth multiplier.
pub const MAX_MULTIPLIER: i64 = 1_000;

/// Largest value of any other decimal in a rules file (thresholds, reference tflops):
/// the same 12 integer digits as an input decimal.
pub const MAX_RULE_DECIMAL_INT_DIGITS: u32 = 12;

/// `points_decimals` range. Points are `rust_decimal` values with this many places.
pub const MAX_POINTS_DECIMALS: u32 = 9;

/// Most GPU models and bandwidth tiers in a rules file: a table a miner can read.
pub const MAX_MODELS: usize = 1_000;
pub const MAX_TIERS: usize = 16;

/// Token decimals (SPEC 2: 0..=18).
pub const MAX_TOKEN_DECIMALS: u32 = 18;

/// `pool * 10^decimals` must stay below 10^38 so that it fits in `u128` with room.
pub const MAX_POOL_UNITS_DIGITS: usize = 38;

/// Most memory the per-device online-slot bitmaps may take: one bit per device and slot,
/// allocated for every registry device up front so that the memory a run needs is known
/// before the first heartbeat is read, and bounded by the registry, never by the logs.
/// 4 GiB holds 1,000,000 devices for 119 days of 300-second slots.
pub const MAX_SLOT_BITMAP_BYTES: u64 = 4 << 30;

/// Most rows in one Parquet row group. Parquet is read a row group at a time, so this
/// bounds the memory a Parquet table can take (writers default to 0.1M–1M rows).
pub const MAX_PARQUET_ROW_GROUP_ROWS: u64 = 1 << 26;

/// Longest CSV record (one row, quoted line breaks included), and so the longest field.
/// The longest legal record is a few hundred bytes (seven identifiers of 128 and a
/// timestamp); an `overrides.csv` note is at most [`MAX_NOTE_CHARS`]. A longer record
/// is an error at once, before it is buffered: the limit is what keeps a single
/// line from taking the memory of the machine.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most columns in a table's header (CSV or Parquet). The SPEC names at most seven and
/// extra columns are ignored, but a header of a million names is an attack, not data.
pub const MAX_COLUMNS: usize = 1_024;

/// Most rejected rows kept per table. Each is published in `rejected_rows.csv` with its
/// text, so they are held in memory until the run ends; past this many the run fails
/// at once (at the default `max_rejected_ratio` of 0.001 it would fail anyway for any
/// table under a billion rows).
pub const MAX_REJECTED_ROWS: usize = 1_000_000;

/// Most in-epoch rows kept of `speedtests`, `benchmarks` and `rentals` each (medians
/// and interval unions need them all; about 64 bytes a row). Heartbeats are not kept,
/// so their number is unlimited: they only set bits.
pub const MAX_KEPT_ROWS: u64 = 1 << 27;

/// Most devices one account may register. The largest farms of the seeded network ran
/// a few thousand; an account's breakdown must stay readable and disputable.
pub const MAX_DEVICES_PER_ACCOUNT: usize = 100_000;

/// Largest `epoch.toml` or rules file. Both are a screen or two of text.
pub const MAX_TEXT_FILE_BYTES: u64 = 1 << 20;

/// Longest `note` of a dispute decision in `overrides.csv`, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000;

/// Largest Parquet footer (the file's metadata). A footer is about 200 bytes per
/// column chunk: a billion rows in row groups of a million take about 2 MB.
pub const MAX_PARQUET_FOOTER_BYTES: u64 = 64 << 20;

/// Longest Parquet page header tally reads. A header is tens of bytes, more only with
/// statistics of long strings; the page headers are checked before polars decodes a
/// row group (crates/ingest/src/parquet_checks.rs).
pub const MAX_PARQUET_PAGE_HEADER_BYTES: u64 = 1 << 20;

/// Largest uncompressed row group of a Parquet table, as its metadata declares it.
/// With [`MAX_PARQUET_ROW_GROUP_ROWS`] this bounds the memory of decoding a group.
pub const MAX_PARQUET_ROW_GROUP_BYTES: i64 = 1 << 30;
