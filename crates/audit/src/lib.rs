//! tally's auditor verbs, from the published output files alone: anyone holding an
//! OUT_DIR can ask them, without the inputs.
//!
//! - [`explain`]: one account, device by device: every measured value against every
//!   threshold of the rules the run used, every reason and note with its evidence,
//!   the points formula with the numbers filled in, and the split into tokens.
//! - [`diff`]: what changed between two runs, per account and device, largest token
//!   change first, with the inputs of the points formula that caused it.
//!
//! Architecture invariant: reads OUT_DIR files and returns text; never writes a file,
//! never uses floating point (points are `Decimal`, tokens integer units), and every
//! string that came from a file is printed with its control characters escaped.

pub mod campaign;
pub mod diff;
pub mod error;
pub mod explain;
pub mod read;

pub use error::{AuditError, Result};
pub use read::Published;
