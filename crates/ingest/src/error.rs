use std::path::PathBuf;

use tally_core::ConfigError;

/// Why an epoch could not be read. Every variant names the file (by file name, as the
/// reports do) and, where there is one, the line and column.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: u64,
        message: String,
    },
    #[error(
        "{file}: {rejected} of {rows} rows rejected, more than max_rejected_ratio {ratio} of rules {rules} allows; \
         first: line {first_line}: {first_reason}"
    )]
    TooManyRejected {
        file: String,
        rejected: u64,
        rows: u64,
        ratio: String,
        rules: String,
        first_line: u64,
        first_reason: String,
    },
    #[error("--strict: {file}:{line}: rejected row: {reason}")]
    Strict {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("rules file {path}: {message}")]
    Rules { path: PathBuf, message: String },
}

impl IngestError {
    pub(crate) fn io(file: &str, source: std::io::Error) -> Self {
        IngestError::Io {
            file: file.to_string(),
            source,
        }
    }

    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        IngestError::File {
            file: file.to_string(),
            message: message.into(),
        }
    }
}
