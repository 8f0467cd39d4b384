//! Writing tally's outputs: the CSV reports, `summary.json` and `manifest.json`.
//!
//! Architecture invariant: this is the only crate that writes files. Rendering is
//! pure (`render`); writing (`write_atomically`) is all or nothing: files are built
//! in a temporary directory beside the output directory, fsynced, and renamed into
//! place, so a failed or killed run leaves no output directory.

pub mod cells;
pub mod render;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use cells::{escape_cell, unescape_cell, CsvOut};
pub use render::Run;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("output directory {0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every output file of a run, in memory, with the manifest last. File names sorted.
pub fn render_all(
    run: &Run,
    engine_version: &'static str,
    emit_measurements: bool,
) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("allocations.csv".to_string(), render::allocations(run)),
        ("devices.csv".to_string(), render::devices(run)),
        ("exclusions.csv".to_string(), render::exclusions(run)),
        ("rejected_rows.csv".to_string(), render::rejected_rows(run)),
        ("rules.toml".to_string(), run.rules_text.as_bytes().to_vec()),
        ("summary.json".to_string(), render::summary(run)),
    ];
    if emit_measurements {
        files.push(("measurements.csv".to_string(), render::measurements(run)));
    }
    files.sort();
    let hashes: Vec<(String, String)> = files
        .iter()
        .map(|(n, b)| (n.clone(), sha256_hex(b)))
        .collect();
    files.push((
        "manifest.json".to_string(),
        render::manifest(run, engine_version, &hashes),
    ));
    files
}

/// Refuses an existing `out` unless `force`: checked before a run starts, so an
/// operator learns it before waiting for the run.
pub fn check_target(out: &Path, force: bool) -> Result<(), ReportError> {
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(ReportError::Exists(out.to_path_buf()));
    }
    Ok(())
}

/// Writes `files` into a new directory `out`, all or nothing.
pub fn write_atomically(
    out: &Path,
    force: bool,
    files: &[(String, Vec<u8>)],
) -> Result<(), ReportError> {
    check_target(out, force)?;
    let staging = Staging::new(out)?;
    for (file, bytes) in files {
        let path = staging.path().join(file);
        let mut f = fs::File::create(&path).map_err(io(&path))?;
        f.write_all(bytes).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
    }
    staging.publish(force)
}

/// A directory built beside its final place `out` and renamed into it whole, so that
/// `out` never exists half-written. Dropped unpublished, it is removed.
pub struct Staging {
    tmp: tempfile::TempDir,
    out: PathBuf,
    parent: PathBuf,
    name: String,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Staging, ReportError> {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tally-tmp-"))
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        Ok(Staging {
            tmp,
            out: out.to_path_buf(),
            parent,
            name,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the directory and renames it to `out`; an existing `out` (only with
    /// `force`) is moved aside first and removed after, or put back on failure.
    pub fn publish(self, force: bool) -> Result<(), ReportError> {
        let Staging {
            tmp,
            out,
            parent,
            name,
        } = self;
        fs::File::open(tmp.path())
            .and_then(|d| d.sync_all())
            .map_err(io(tmp.path()))?;
        let old = match fs::symlink_metadata(&out) {
            Ok(meta) if force => {
                let aside = tempfile::Builder::new()
                    .prefix(&format!(".{name}.tally-old-"))
                    .tempdir_in(&parent)
                    .map_err(io(&parent))?
                    .keep();
                fs::remove_dir(&aside).map_err(io(&aside))?;
                fs::rename(&out, &aside).map_err(io(&out))?;
                Some((aside, meta.is_dir()))
            }
            Ok(_) => return Err(ReportError::Exists(out)),
            Err(_) => None,
        };
        let built = tmp.keep();
        if let Err(e) = fs::rename(&built, &out) {
            let _ = fs::remove_dir_all(&built);
            if let Some((old, _)) = &old {
                let _ = fs::rename(old, &out);
            }
            return Err(ReportError::Io {
                path: out,
                source: e,
            });
        }
        fs::File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(io(&parent))?;
        match old {
            Some((old, true)) => {
                let _ = fs::remove_dir_all(old);
            }
            Some((old, false)) => {
                let _ = fs::remove_file(old);
            }
            None => {}
        }
        Ok(())
    }
}
