//! tally's scoring core: pure functions from validated tables to points, exclusions
//! and the exact split.
//!
//! Architecture invariant: this crate does no I/O (no files, no clock, no
//! environment) and does not depend on polars. Given values that passed the
//! validation of [`value`], [`rules`] and [`epoch`], [`score::settle`] cannot fail.
//!
//! Where to find a SPEC rule: value formats (SPEC 2.1) in [`value`]; rules files in
//! [`rules`]; `epoch.toml` in [`epoch`]; the measurement table between aggregation
//! and scoring in [`model`]; every step and reason code of SPEC 3.2 in [`score`];
//! the split of SPEC 4 in [`split`]; exact rounding in [`exact`]; every bound in
//! [`limits`].

pub mod epoch;
pub mod exact;
pub mod limits;
pub mod model;
pub mod rules;
pub mod run;
pub mod score;
pub mod split;
pub mod value;

pub use epoch::Epoch;
pub use model::{Action, Device, Measurement, Override};
pub use rules::{ConfigError, Rules};
pub use score::{settle, AccountScore, DeviceScore, Exclusion, Note, Reason, Settlement};
