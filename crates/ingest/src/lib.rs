//! Reading an epoch directory (SPEC 2) and aggregating its event logs into the
//! per-device measurement table (stage 1 of 2; scoring is `tally-core`).
//!
//! Architecture invariant: this is the only crate that reads input files. It
//! validates every row before anything else (SPEC 2.2), so what it hands to the
//! scoring core is valid by construction, and it never writes anything.

mod aggregate;
mod cells;
mod error;
mod parquet_checks;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rust_decimal::Decimal;
use tally_core::limits::{
    MAX_DEVICES, MAX_DEVICES_PER_ACCOUNT, MAX_KEPT_ROWS, MAX_TEXT_FILE_BYTES,
};
use tally_core::{Device, Epoch, Measurement, Override, Rules};

pub use aggregate::{Ignored, Window};
pub use error::IngestError;
pub use table::{hex, panic_is_contained, sha256_file, Format};
pub use tally_core::run::{InputFile, RejectedRow, TableCounts};

/// The tables of an epoch directory, in the order they are read and reported.
pub const TABLES: [&str; 6] = [
    "devices",
    "heartbeats",
    "speedtests",
    "benchmarks",
    "rentals",
    "overrides",
];

/// The registry's columns (SPEC 2.1), in the order `devices.csv` must have them.
pub const DEVICE_COLUMNS: [&str; 7] = [
    "device_id",
    "account_id",
    "gpu_model",
    "gpu_count",
    "hardware_id",
    "ip",
    "registered_at",
];

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A rules file to use instead of `<rules_dir>/<epoch rules>.toml`.
    pub rules_file: Option<PathBuf>,
    /// Where published rules live (`rules/` of the repository).
    pub rules_dir: PathBuf,
    /// Fail on any rejected row.
    pub strict: bool,
    /// Told what ingestion is doing, for a progress display.
    pub progress: Option<ProgressHook>,
    /// Worker threads reading the event tables; 0 for one per core. Outputs do not
    /// depend on it.
    pub threads: usize,
}

/// What ingestion is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// `rows` records of `file` read so far (every 2^20 rows, and at the end).
    Rows { file: &'a str, rows: u64 },
    /// A stage begins.
    Stage(&'a str),
}

/// A progress display: a plain function, so that [`Options`] stays simple data.
pub type ProgressHook = fn(Progress<'_>);

/// Everything read from an epoch directory, validated and aggregated.
#[derive(Debug, Clone)]
pub struct LoadedEpoch {
    pub epoch: Epoch,
    pub rules: Rules,
    pub rules_file: InputFile,
    /// The rules file's text, byte for byte, for the reports to publish.
    pub rules_text: String,
    pub total_slots: u64,
    pub registry: BTreeMap<String, Device>,
    pub measurements: BTreeMap<String, Measurement>,
    pub overrides: BTreeMap<String, Override>,
    /// Sorted by (file, line).
    pub rejected: Vec<RejectedRow>,
    /// One per table, in [`TABLES`] order.
    pub counts: Vec<TableCounts>,
    /// Sorted by file name.
    pub inputs: Vec<InputFile>,
}

impl LoadedEpoch {
    /// Settles the epoch: the scoring core over everything that was read. Pure.
    pub fn settle(&self) -> tally_core::Settlement {
        tally_core::settle(
            &self.epoch,
            &self.rules,
            self.total_slots,
            &self.registry,
            &self.measurements,
            &self.overrides,
        )
    }
}

fn read_text(path: &Path, name: &str) -> Result<(String, String), IngestError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TEXT_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| IngestError::io(name, e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE_BYTES {
        return Err(IngestError::file(
            name,
            format!("larger than {MAX_TEXT_FILE_BYTES} bytes, the most tally reads of a text file"),
        ));
    }
    let sha = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(&bytes))
    };
    let text = String::from_utf8(bytes).map_err(|_| IngestError::file(name, "not UTF-8 text"))?;
    Ok((text, sha))
}

/// The published rules versions, as shipped in `rules/`, built into the binary so
/// that `tally run` works from any directory. Byte for byte the files, so their
/// hashes in a manifest are the same.
pub const PUBLISHED_RULES: &[(&str, &str)] = &[
    ("v1", include_str!("../../../rules/v1.toml")),
    ("v2", include_str!("../../../rules/v2.toml")),
];

/// `rules/SHA256SUMS`: the SHA-256 of every published version (`sha256sum -c` checks
/// it). Published versions are immutable: a rules file that claims one of these
/// versions with another hash is refused.
pub const PUBLISHED_SUMS: &str = include_str!("../../../rules/SHA256SUMS");

/// The published hash of a version, from [`PUBLISHED_SUMS`].
pub fn published_sha256(version: &str) -> Option<&'static str> {
    PUBLISHED_SUMS.lines().find_map(|line| {
        let (hash, file) = line.split_once("  ")?;
        (file.strip_suffix(".toml")? == version).then_some(hash)
    })
}

/// What `tally rules check` says of a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Its version is published with this very hash.
    Matches,
    /// Its version is published with another hash (the published one).
    Differs(&'static str),
    /// Its version is not published.
    NotPublished,
}

/// Where a rules text stands against the published versions.
pub fn publication(rules: &Rules, sha256: &str) -> Publication {
    match published_sha256(&rules.version) {
        Some(h) if h == sha256 => Publication::Matches,
        Some(h) => Publication::Differs(h),
        None => Publication::NotPublished,
    }
}

/// `tally rules check FILE`: parses and validates a rules file, and says whether it
/// matches its published hash.
pub fn check_rules_file(path: &Path) -> Result<(Rules, String, Publication), IngestError> {
    let name = path
        .file_name()
        .map_or_else(|| "rules".to_string(), |n| n.to_string_lossy().into_owned());
    let (text, sha256) = read_text(path, &name)?;
    let rules = Rules::parse(&name, &text)?;
    let p = publication(&rules, &sha256);
    Ok((rules, sha256, p))
}

/// The default rules directory, relative to the working directory.
pub const DEFAULT_RULES_DIR: &str = "rules";

/// Loads the rules file an epoch names (or `opts.rules_file`), validated. A published
/// version missing from the default `rules/` directory is taken from the binary.
pub fn load_rules(
    epoch_rules: &str,
    opts: &Options,
) -> Result<(Rules, InputFile, String), IngestError> {
    let (path, named) = match &opts.rules_file {
        Some(p) => (p.clone(), false),
        None => (opts.rules_dir.join(format!("{epoch_rules}.toml")), true),
    };
    let name = path
        .file_name()
        .map_or_else(|| "rules".to_string(), |n| n.to_string_lossy().into_owned());
    let built_in = PUBLISHED_RULES
        .iter()
        .find(|(v, _)| *v == epoch_rules)
        .map(|(_, text)| *text);
    let (text, sha256) = match built_in {
        Some(text)
            if named && !path.is_file() && opts.rules_dir == Path::new(DEFAULT_RULES_DIR) =>
        {
            use sha2::Digest;
            (
                text.to_string(),
                hex(&sha2::Sha256::digest(text.as_bytes())),
            )
        }
        _ if !path.is_file() => {
            return Err(IngestError::Rules {
                path,
                message: format!("no such rules file (the epoch names rules {epoch_rules:?})"),
            })
        }
        _ => read_text(&path, &name)?,
    };
    let rules = Rules::parse(&name, &text)?;
    if let Publication::Differs(published) = publication(&rules, &sha256) {
        return Err(IngestError::Rules {
            path,
            message: format!(
                "claims the published version {:?}, but its SHA-256 is {sha256} and the published one is \
                 {published}; published versions are immutable: give changed rules a new version",
                rules.version
            ),
        });
    }
    if named && rules.version != epoch_rules {
        return Err(IngestError::Rules {
            path,
            message: format!(
                "declares version {:?}, but the epoch names {epoch_rules:?}",
                rules.version
            ),
        });
    }
    Ok((
        rules,
        InputFile {
            file: name,
            sha256,
            rows: None,
        },
        text,
    ))
}

fn required(dir: &Path, stem: &str) -> Result<table::Source, IngestError> {
    table::find(dir, stem)?.ok_or_else(|| {
        IngestError::file(
            &format!("{stem}.csv"),
            format!("missing: the epoch needs {stem}.csv or {stem}.parquet"),
        )
    })
}

/// Every entry of an epoch directory must be a file tally reads: a misspelt
/// `overides.csv` would otherwise silently drop the dispute decisions, and a stray
/// `heartbeats.csv.bak` would be a table nobody settles. Named entries must be regular
/// files (or symlinks to one): a FIFO would block the run, a directory is no table.
fn check_entries(dir: &Path) -> Result<(), IngestError> {
    const EPOCH_DIR: &str = "epoch directory";
    let entries = std::fs::read_dir(dir).map_err(|e| IngestError::io(EPOCH_DIR, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IngestError::io(EPOCH_DIR, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let known = |name: &str| {
        name == "epoch.toml"
            || name.rsplit_once('.').is_some_and(|(stem, ext)| {
                TABLES.contains(&stem) && (ext == "csv" || ext == "parquet")
            })
    };
    for name in names {
        let shown = tally_core::value::excerpt(&name, 64);
        if !known(&name) {
            return Err(IngestError::file(
                &shown,
                "unexpected entry in the epoch directory: it holds only epoch.toml and the tables \
                 devices, heartbeats, speedtests, benchmarks, rentals and overrides (each .csv or .parquet); \
                 a misspelt name would be ignored silently, so tally refuses it",
            ));
        }
        match std::fs::metadata(dir.join(&name)) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(IngestError::file(
                    &shown,
                    "not a regular file (a directory, FIFO or device); expected the table's bytes",
                ))
            }
            Err(e) => return Err(IngestError::io(&shown, e)),
        }
    }
    Ok(())
}

/// Reads, validates and aggregates the epoch in `dir`.
pub fn load(dir: &Path, opts: &Options) -> Result<LoadedEpoch, IngestError> {
    check_entries(dir)?;
    let (epoch_text, epoch_sha) = read_text(&dir.join("epoch.toml"), "epoch.toml")?;
    let epoch = Epoch::parse("epoch.toml", &epoch_text)?;
    let (rules, rules_file, rules_text) = load_rules(&epoch.rules, opts)?;
    let total_slots = epoch
        .total_slots(&rules)
        .map_err(|m| IngestError::file("epoch.toml", m))?;
    let mut inputs = vec![InputFile {
        file: "epoch.toml".into(),
        sha256: epoch_sha,
        rows: None,
    }];
    let mut rejected = Vec::new();
    let mut counts = Vec::new();

    let workers = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let table = |source, columns| table::Table {
        source,
        columns,
        workers,
        progress: opts.progress,
    };
    // Tables whose row order matters (the first of two rows is named) get one worker.
    let in_order = |source, columns| table::Table {
        workers: 1,
        ..table(source, columns)
    };

    // The registry: any bad row is an error (SPEC 2.2).
    let src = required(dir, "devices")?;
    #[derive(Default)]
    struct Registry {
        devices: BTreeMap<String, Device>,
        first_line: HashMap<String, u64>,
        duplicate: Option<(String, u64)>,
        per_account: HashMap<String, usize>,
        crowded: Option<(String, u64)>,
        rows: u64,
    }
    let (stats, states) =
        in_order(&src, &DEVICE_COLUMNS).read(Registry::default, |reg: &mut Registry, row| {
            reg.rows += 1;
            let d = Device {
                device_id: row.identifier(0)?.to_string(),
                account_id: row.identifier(1)?.to_string(),
                gpu_model: row.identifier(2)?.to_string(),
                gpu_count: row.gpu_count(3)?,
                hardware_id: row.identifier(4)?.to_string(),
                ip: row.ip(5)?,
                registered_at: row.timestamp(6)?,
            };
            if reg.devices.contains_key(&d.device_id) {
                reg.duplicate.get_or_insert((d.device_id.clone(), reg.rows));
            } else if reg.devices.len() <= MAX_DEVICES {
                let n = reg.per_account.entry(d.account_id.clone()).or_default();
                *n += 1;
                if *n > MAX_DEVICES_PER_ACCOUNT {
                    reg.crowded.get_or_insert((d.account_id.clone(), reg.rows));
                }
                reg.first_line.insert(d.device_id.clone(), reg.rows);
                reg.devices.insert(d.device_id.clone(), d);
            }
            Ok(())
        })?;
    let Registry {
        devices: registry,
        first_line,
        duplicate,
        crowded,
        ..
    } = states.into_iter().next().expect("one worker");
    if let Some(r) = stats.rejected.first() {
        return Err(IngestError::Line {
            file: r.file.clone(),
            line: r.line,
            message: format!(
                "{} (the registry must be valid: nothing can be decided otherwise)",
                r.reason
            ),
        });
    }
    if let Some((id, _)) = duplicate {
        return Err(IngestError::file(
            &src.file,
            format!(
                "device_id {id:?} is registered more than once (first as data row {})",
                first_line[&id]
            ),
        ));
    }
    if registry.len() > MAX_DEVICES {
        return Err(IngestError::file(
            &src.file,
            format!("more than {MAX_DEVICES} devices"),
        ));
    }
    if let Some((account, row)) = crowded {
        return Err(IngestError::file(
            &src.file,
            format!(
                "account_id {account:?} registers more than {MAX_DEVICES_PER_ACCOUNT} devices \
                 (the limit is passed at data row {row})"
            ),
        ));
    }
    if registry.is_empty() {
        return Err(IngestError::file(
            &src.file,
            "the registry has no devices: expected at least one data row (nothing can be settled)",
        ));
    }
    inputs.push(InputFile {
        file: src.file.clone(),
        sha256: stats.sha256,
        rows: Some(stats.rows),
    });
    counts.push(TableCounts {
        table: "devices",
        file: Some(src.file.clone()),
        read: stats.rows,
        rejected: 0,
        ignored: 0,
    });

    let devices: Vec<Device> = registry.values().cloned().collect();
    let index = cells::DeviceIndex::new(devices.iter().map(|d| d.device_id.as_str()));
    let window = Window {
        start: epoch.start,
        end: epoch.end,
        slot_seconds: rules.slot_seconds,
    };
    let bitmap = aggregate::SlotBitmap::new(devices.len(), total_slots).ok_or_else(|| {
        IngestError::file(
            "epoch.toml",
            format!(
                "{} devices × {total_slots} slots need {} MiB of online-slot bitmaps, more than the {} MiB \
                 tally allows; settle the campaign in shorter epochs",
                devices.len(),
                aggregate::SlotBitmap::bytes(devices.len(), total_slots) >> 20,
                tally_core::limits::MAX_SLOT_BITMAP_BYTES >> 20
            ),
        )
    })?;

    let mut tables: Vec<table::TableStats> = Vec::new();
    let mut ignored = Ignored::default();

    // SPEC 3.2.1: heartbeats set the bits of their slots; nothing else of them is kept.
    let registered_at: Vec<i64> = devices.iter().map(|d| d.registered_at).collect();
    let src = required(dir, "heartbeats")?;
    let (stats, states) = table(&src, &["device_id", "ts"]).read(
        || aggregate::HeartbeatCounts::new(devices.len()),
        |c, row| {
            let (d, ts) = (row.device(0, &index, &mut c.hint)?, row.timestamp(1)?);
            if window.contains(ts) && ts >= registered_at[d as usize] {
                c.per_device[d as usize] += 1;
                bitmap.set(d, window.slot(ts));
            } else {
                c.ignored += 1;
            }
            Ok(())
        },
    )?;
    tables.push(stats);
    let mut heartbeats = vec![0u64; devices.len()];
    for c in states {
        ignored.heartbeats += c.ignored;
        for (total, n) in heartbeats.iter_mut().zip(c.per_device) {
            *total += n;
        }
    }

    let src = required(dir, "speedtests")?;
    let columns = [
        "device_id",
        "ts",
        "download_mbps",
        "upload_mbps",
        "latency_ms",
    ];
    let kept = AtomicU64::new(0);
    let (stats, states) = table(&src, &columns).read(Kept::default, |k, row| {
        let (d, ts) = (row.device(0, &index, &mut k.hint)?, row.timestamp(1)?);
        let t = (d, row.decimal(2)?, row.decimal(3)?, row.decimal(4)?);
        if window.contains(ts) {
            k.keep(&kept, t);
        } else {
            k.ignored += 1;
        }
        Ok(())
    })?;
    let speedtests = merge(states, &mut ignored.speedtests, &stats.source.file)?;
    tables.push(stats);

    let src = required(dir, "benchmarks")?;
    let columns = ["device_id", "ts", "gpu_model", "hardware_id", "tflops"];
    let kept = AtomicU64::new(0);
    let (stats, states) = table(&src, &columns).read(Kept::default, |k, row| {
        let (d, ts) = (row.device(0, &index, &mut k.hint)?, row.timestamp(1)?);
        let (model, hardware) = (row.identifier(2)?, row.identifier(3)?);
        let tflops = row.decimal(4)?;
        if window.contains(ts) {
            let reg = &devices[d as usize];
            let other = |v: &str, registered: &str| (v != registered).then(|| v.into());
            k.keep(
                &kept,
                (
                    d,
                    tflops,
                    other(model, &reg.gpu_model),
                    other(hardware, &reg.hardware_id),
                ),
            );
        } else {
            k.ignored += 1;
        }
        Ok(())
    })?;
    let benchmarks = merge(states, &mut ignored.benchmarks, &stats.source.file)?;
    tables.push(stats);

    let src = required(dir, "rentals")?;
    let columns = [
        "device_id",
        "rental_id",
        "renter_account_id",
        "start",
        "end",
    ];
    let kept = AtomicU64::new(0);
    let (stats, states) = table(&src, &columns).read(Kept::default, |k, row| {
        let d = row.device(0, &index, &mut k.hint)?;
        row.identifier(1)?;
        let renter = row.identifier(2)?;
        let (start, end) = (row.timestamp(3)?, row.timestamp(4)?);
        if end <= start {
            return Err(cells::RowError {
                column: 4,
                message: "a rental must end after it starts".into(),
            });
        }
        if end > window.start && start < window.end {
            let own = renter == devices[d as usize].account_id;
            k.keep(
                &kept,
                (
                    d,
                    own,
                    start.clamp(window.start, window.end),
                    end.clamp(window.start, window.end),
                ),
            );
        } else {
            k.ignored += 1;
        }
        Ok(())
    })?;
    let rentals = merge(states, &mut ignored.rentals, &stats.source.file)?;
    tables.push(stats);

    // Dispute decisions (SPEC 7): optional; two for one device is an error.
    #[derive(Default)]
    struct Decisions {
        by_device: BTreeMap<String, Override>,
        twice: Option<String>,
        hint: u32,
    }
    let columns = ["device_id", "action", "ticket", "note"];
    let (overrides, override_stats) = match table::find(dir, "overrides")? {
        None => (BTreeMap::new(), None),
        Some(src) => {
            let (stats, states) =
                in_order(&src, &columns).read(Decisions::default, |o: &mut Decisions, row| {
                    let decision = Override {
                        device_id: devices[row.device(0, &index, &mut o.hint)? as usize]
                            .device_id
                            .clone(),
                        action: row.action(1)?,
                        ticket: row.identifier(2)?.to_string(),
                        note: row.note(3)?.to_string(),
                    };
                    if o.by_device.contains_key(&decision.device_id) {
                        o.twice.get_or_insert(decision.device_id.clone());
                    } else {
                        o.by_device.insert(decision.device_id.clone(), decision);
                    }
                    Ok(())
                })?;
            let o = states.into_iter().next().expect("one worker");
            if let Some(id) = o.twice {
                return Err(IngestError::file(
                    &stats.source.file,
                    format!("device {id:?} has more than one override; a device gets at most one decision"),
                ));
            }
            (o.by_device, Some(stats))
        }
    };
    tables.extend(override_stats);

    // Rejected rows: reported, bounded by max_rejected_ratio, none under --strict.
    for t in &tables {
        if let (true, Some(first)) = (opts.strict, t.rejected.first()) {
            return Err(IngestError::Strict {
                file: first.file.clone(),
                line: first.line,
                reason: first.reason.clone(),
            });
        }
        if too_many(t.rejected.len() as u64, t.rows, rules.max_rejected_ratio) {
            let first = &t.rejected[0];
            return Err(IngestError::TooManyRejected {
                file: t.source.file.clone(),
                rejected: t.rejected.len() as u64,
                rows: t.rows,
                ratio: rules.max_rejected_ratio.to_string(),
                rules: rules.version.clone(),
                first_line: first.line,
                first_reason: first.reason.clone(),
            });
        }
    }

    if let Some(hook) = opts.progress {
        hook(Progress::Stage("aggregating"));
    }
    let measured = aggregate::measure(
        &devices,
        window,
        aggregate::Folded {
            bitmap,
            heartbeats,
            speedtests,
            benchmarks,
            rentals,
        },
    );
    let ignored_by = [
        ignored.heartbeats,
        ignored.speedtests,
        ignored.benchmarks,
        ignored.rentals,
        0,
    ];
    for (t, ignored) in tables.iter().zip(ignored_by) {
        let stem = t
            .source
            .file
            .rsplit_once('.')
            .map_or(t.source.file.as_str(), |s| s.0);
        let name = TABLES
            .iter()
            .find(|&&n| n == stem)
            .copied()
            .expect("known table");
        counts.push(TableCounts {
            table: name,
            file: Some(t.source.file.clone()),
            read: t.rows,
            rejected: t.rejected.len() as u64,
            ignored,
        });
        inputs.push(InputFile {
            file: t.source.file.clone(),
            sha256: t.sha256.clone(),
            rows: Some(t.rows),
        });
        rejected.extend(t.rejected.iter().cloned());
    }
    if !counts.iter().any(|c| c.table == "overrides") {
        counts.push(TableCounts {
            table: "overrides",
            ..TableCounts::default()
        });
    }
    inputs.sort_by(|a, b| a.file.cmp(&b.file));
    rejected.sort();
    let measurements = devices
        .iter()
        .map(|d| d.device_id.clone())
        .zip(measured)
        .collect();
    Ok(LoadedEpoch {
        epoch,
        rules,
        rules_file,
        rules_text,
        total_slots,
        registry,
        measurements,
        overrides,
        rejected,
        counts,
        inputs,
    })
}

/// `rejected > ratio * rows`, exactly (SPEC 2.2).
fn too_many(rejected: u64, rows: u64, ratio: Decimal) -> bool {
    // ratio has at most 6 places and rows < 2^64: the product is exact in rust_decimal.
    Decimal::from(rejected) > ratio * Decimal::from(rows)
}

/// In-epoch rows of a small event table, from any number of workers, at most
/// [`MAX_KEPT_ROWS`] of them in all (`kept` counts them across the workers).
#[derive(Default)]
struct Kept<T> {
    rows: Vec<T>,
    ignored: u64,
    hint: u32,
    full: bool,
}
impl<T> Kept<T> {
    fn keep(&mut self, kept: &AtomicU64, row: T) {
        self.keep_at_most(MAX_KEPT_ROWS, kept, row)
    }
    /// Keeps `row` if fewer than `limit` rows are kept in all, else marks this state
    /// full (the run then fails in [`merge`]). Counting goes on past the limit: it is
    /// a u64 of rows read, which cannot wrap.
    fn keep_at_most(&mut self, limit: u64, kept: &AtomicU64, row: T) {
        if kept.fetch_add(1, Ordering::Relaxed) < limit {
            self.rows.push(row);
        } else {
            self.full = true;
        }
    }
}
fn merge<T>(states: Vec<Kept<T>>, ignored: &mut u64, file: &str) -> Result<Vec<T>, IngestError> {
    if states.iter().any(|k| k.full) {
        return Err(IngestError::file(
            file,
            format!(
                "more than {MAX_KEPT_ROWS} rows inside the epoch, the most tally keeps of one table; \
                 settle the campaign in shorter epochs"
            ),
        ));
    }
    let mut all = Vec::new();
    for mut k in states {
        *ignored += k.ignored;
        all.append(&mut k.rows);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_are_the_published_ones() {
        use sha2::Digest;
        assert_eq!(PUBLISHED_SUMS.lines().count(), PUBLISHED_RULES.len());
        for (version, text) in PUBLISHED_RULES {
            let sha = hex(&sha2::Sha256::digest(text.as_bytes()));
            assert_eq!(published_sha256(version), Some(sha.as_str()), "{version}");
            let rules = Rules::parse("r.toml", text).unwrap();
            assert_eq!(&rules.version, version);
            assert_eq!(publication(&rules, &sha), Publication::Matches);
            assert_eq!(
                publication(&rules, "00"),
                Publication::Differs(published_sha256(version).unwrap())
            );
        }
        assert_eq!(published_sha256("v9"), None);
    }

    /// MAX_KEPT_ROWS is 2^27 rows (gigabytes of CSV): its logic is tested at a small
    /// limit, across two workers sharing the count.
    #[test]
    fn kept_rows_fail_the_table_past_the_limit() {
        let kept = AtomicU64::new(0);
        let (mut a, mut b) = (Kept::default(), Kept::default());
        a.keep_at_most(3, &kept, 1);
        b.keep_at_most(3, &kept, 2);
        a.keep_at_most(3, &kept, 3);
        let mut ignored = 0;
        let all = merge(vec![a, b], &mut ignored, "rentals.csv").unwrap();
        assert_eq!(all, vec![1, 3, 2]);

        let kept = AtomicU64::new(0);
        let (mut a, mut b) = (Kept::default(), Kept::default());
        for row in 0..3 {
            a.keep_at_most(3, &kept, row);
        }
        b.keep_at_most(3, &kept, 3);
        assert!(!a.full && b.full);
        let e = merge(vec![a, b], &mut ignored, "rentals.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "rentals.csv: more than {MAX_KEPT_ROWS} rows inside the epoch, the most tally keeps \
                 of one table; settle the campaign in shorter epochs"
            )
        );
    }
}
