//! What a run read, besides the tables it scores: plain data handed from ingestion to
//! the reports, so that neither depends on the other.

/// A row left out of the run (SPEC 2.2), for `rejected_rows.csv`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectedRow {
    /// File name, never a path.
    pub file: String,
    /// Physical line the CSV record starts on (the header is line 1); for Parquet,
    /// the row's 1-based position in the file.
    pub line: u64,
    pub reason: String,
    /// The record as written (bounded, control characters escaped).
    pub raw: String,
}

/// One input file, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// File name, never a path.
    pub file: String,
    pub sha256: String,
    /// Data rows, for tables.
    pub rows: Option<u64>,
}

/// Row counts of one table, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCounts {
    pub table: &'static str,
    /// The file it was read from; `None` for an absent optional table.
    pub file: Option<String>,
    pub read: u64,
    pub rejected: u64,
    /// Valid rows left out: outside the epoch, or heartbeats before registration.
    pub ignored: u64,
}
