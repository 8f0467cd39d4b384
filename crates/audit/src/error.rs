//! What can go wrong when reading a published output directory. Every error names
//! the file, and the line when there is one.

use tally_core::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A value, a record or a cross-file total that is not what `tally run` writes.
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: u64,
        message: String,
    },
    /// A problem of a whole file (a missing column, a total that does not add up).
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{0}")]
    Rules(#[from] ConfigError),
    #[error("account {account} is not in {file} (it lists {accounts} accounts)")]
    UnknownAccount {
        account: String,
        file: String,
        accounts: usize,
    },
    #[error("{0}")]
    Incomparable(String),
}

pub type Result<T> = std::result::Result<T, AuditError>;
